"""The one checkpoint schema (schema.py), converters from published formats (convert.py),
trained models from a config and a checkpoint (loading.py), and weights to ship (export.py)."""
from .export import export_weights
from .loading import load_model
from .schema import CheckpointError, load_checkpoint, load_model_state, save_checkpoint

__all__ = ["CheckpointError", "export_weights", "load_checkpoint", "load_model", "load_model_state", "save_checkpoint"]
