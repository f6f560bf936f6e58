"""cakes-video: video action recognition with CAKES and a 3D ResNet model zoo.

The names most users need::

    from cakes_video import get_cfg, load_config, build_model, load_model, get_config_file
"""
from .checkpoint import load_model
from .config import get_cfg, get_config_file
from .config_loader import load_config
from .models import build_model

__all__ = ["build_model", "get_cfg", "get_config_file", "load_config", "load_model"]
__version__ = "0.1.0"
