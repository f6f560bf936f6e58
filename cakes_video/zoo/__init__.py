"""The model zoo: a manifest of pretrained models (``manifest.yaml``), verified downloads through
a cache (:mod:`.download`), and the API::

    list_models()                  # every zoo name
    get_weights(name)              # metadata, config, class names, transforms()
    get_model(name, pretrained=True)   # the model in eval mode, weights loaded strictly
"""
from .api import ZOO_PREFIX, ZooWeights, checkpoint_file, get_model, get_weights, list_models, prefetch, resolve_checkpoint
from .download import ChecksumError, DownloadError

__all__ = ["ZOO_PREFIX", "ChecksumError", "DownloadError", "ZooWeights", "checkpoint_file", "get_model",
           "get_weights", "list_models", "prefetch", "resolve_checkpoint"]
