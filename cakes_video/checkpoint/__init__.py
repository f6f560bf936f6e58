"""The one checkpoint schema (schema.py) and converters from published formats (convert.py)."""
from .schema import (
    CheckpointError,
    load_checkpoint,
    load_model_state,
    save_checkpoint,
)

__all__ = ["CheckpointError", "load_checkpoint", "load_model_state", "save_checkpoint"]
