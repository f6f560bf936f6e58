"""Models: the ResNet3D family, its per-block temporal convolutions, CAKES, heads."""
import torch

from . import resnet3d  # noqa: F401  (registers the architectures)
from .registry import MODEL_REGISTRY, build_model


def load_model(config_path: str, checkpoint_path: str, overrides=()) -> torch.nn.Module:
    """Builds the model of a YAML config and loads a project checkpoint into it, in eval mode.

    Any missing, unexpected or mis-shaped key raises CheckpointError: never random weights.
    """
    from ..checkpoint import load_checkpoint, load_model_state
    from ..config import load_config

    model = build_model(load_config(config_path, overrides))
    load_model_state(model, load_checkpoint(checkpoint_path)["model"], source=checkpoint_path)
    return model.eval()


__all__ = ["MODEL_REGISTRY", "build_model", "load_model"]
