"""A trained model from its config and a project checkpoint."""
from typing import Sequence

import torch

from ..config_loader import load_config
from ..models import build_model
from .schema import load_checkpoint, load_model_state


def load_model(config_path: str, checkpoint_path: str, overrides: Sequence[str] = ()) -> torch.nn.Module:
    """Builds the model of a YAML config (a file or a packaged config's name) and loads a project
    checkpoint into it, in eval mode.

    Any missing, unexpected or mis-shaped key raises CheckpointError: never random weights.
    """
    model = build_model(load_config(config_path, overrides))
    load_model_state(model, load_checkpoint(checkpoint_path)["model"], source=checkpoint_path)
    return model.eval()
