"""MODEL_REGISTRY and build_model: a new architecture is a registry entry, not a branch."""
import torch
from fvcore.common.registry import Registry

MODEL_REGISTRY = Registry("MODEL")
MODEL_REGISTRY.__doc__ = """Architectures by cfg.MODEL.ARCH; each entry is called as ``entry(cfg) -> nn.Module``."""


def build_model(cfg) -> torch.nn.Module:
    """Builds ``cfg.MODEL.ARCH`` with randomly initialised weights (load weights separately)."""
    name = cfg.MODEL.ARCH
    try:
        builder = MODEL_REGISTRY.get(name)
    except KeyError:
        registered = sorted(k for k, _ in MODEL_REGISTRY)
        raise KeyError(f"MODEL.ARCH: unknown model {name!r}; registered: {registered}") from None
    return builder(cfg)
