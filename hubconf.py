"""torch.hub entry points, one per model of the zoo, made from the zoo manifest
(cakes_video/zoo/manifest.yaml) when torch.hub imports this file, so they cannot drift::

    model = torch.hub.load("path/to/cakes-video", "r3d_18", source="local")   # eval mode
    model = torch.hub.load(..., "r3d_18", source="local", pretrained=False)    # random weights

Each entry point is ``cakes_video.get_model(name, pretrained=True, weights_path=None)``.
"""
import os as _os

import cakes_video.zoo as _zoo

_HERE = _os.path.dirname(_os.path.abspath(__file__))
if not _os.path.abspath(_zoo.__file__).startswith(_os.path.join(_HERE, "cakes_video") + _os.sep):
    # another cakes_video was imported first (an installed copy): its zoo may not be this repository's
    raise ImportError(f"hubconf.py in {_HERE} found cakes_video at {_zoo.__file__}, not in this repository; "
                      "load it in a fresh process, or use that copy's cakes_video.get_model")

dependencies = ["torch", "torchvision", "av", "fvcore", "iopath", "yaml", "tqdm"]


def _entry_point(name: str):
    def load(pretrained: bool = True, weights_path=None):
        return _zoo.get_model(name, pretrained=pretrained, weights_path=weights_path)

    load.__name__ = load.__qualname__ = name
    load.__doc__ = f"Zoo model {name!r}: {_zoo.get_weights(name).entry.dataset}; see model_zoo/MODEL_ZOO.md."
    return load


globals().update({name: _entry_point(name) for name in _zoo.list_models()})
