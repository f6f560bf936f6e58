"""Models: the ResNet3D family, its per-block temporal convolutions, CAKES, heads, and the
inference form. ``build_model(cfg)`` builds ``cfg.MODEL.ARCH`` from MODEL_REGISTRY."""
from . import resnet3d  # noqa: F401  (registers the architectures)
from .registry import MODEL_REGISTRY, build_model

__all__ = ["MODEL_REGISTRY", "build_model"]
