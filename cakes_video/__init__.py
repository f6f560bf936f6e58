"""cakes-video: video action recognition with CAKES and a 3D ResNet model zoo.

The names most users need::

    from cakes_video import get_cfg, load_config, build_model, load_model, get_config_file
    from cakes_video import list_models, get_model, get_weights     # the model zoo

They are imported on first use, so that ``import cakes_video.config`` (or reading a YAML
file) does not import torch, the models or the video decoders.
"""
import importlib

# Public name -> the module that owns it.
_API = {
    "build_model": "cakes_video.models",
    "get_cfg": "cakes_video.config",
    "get_config_file": "cakes_video.config",
    "load_config": "cakes_video.config_loader",
    "load_model": "cakes_video.checkpoint",
    "list_models": "cakes_video.zoo",
    "get_model": "cakes_video.zoo",
    "get_weights": "cakes_video.zoo",
}

__all__ = sorted(_API)
__version__ = "0.1.0"


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'cakes_video' has no attribute {name!r}")
    return getattr(importlib.import_module(_API[name]), name)


def __dir__():
    return sorted(list(globals()) + list(_API))
