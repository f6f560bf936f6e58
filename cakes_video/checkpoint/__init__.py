"""The one checkpoint schema (schema.py), converters from published formats (convert.py), and
trained models from a config and a checkpoint (loading.py)."""
from .loading import load_model
from .schema import CheckpointError, load_checkpoint, load_model_state, save_checkpoint

__all__ = ["CheckpointError", "load_checkpoint", "load_model", "load_model_state", "save_checkpoint"]
