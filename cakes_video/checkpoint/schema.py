"""The project's one checkpoint format (``*.pyth``), atomic saving and strict loading.

A checkpoint is a dict::

    {"format": "cakes-video/1", "model": state_dict, "cfg": YAML str,
     "optimizer": ..., "scheduler": ..., "scaler": ..., "epoch": int, "iteration": int,
     "metrics": {name: float}}

Only ``format`` and ``model`` are required; converted weights carry ``cfg`` too. Shipped
weights (:func:`~.export.export_weights`) carry ``"half": True``: their floating-point tensors
are stored as float16, and :func:`load_checkpoint` returns them as float32. Every value is a
tensor, number, string, or container of those, so ``torch.load(weights_only=True)`` reads it.
"""
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn

from ..utils.io import path_manager, replace_atomically

FORMAT = "cakes-video/1"
HALF_FIELD = "half"  # True: the floating-point tensors of "model" are stored as float16
MODEL_CFG_FIELD = "model_cfg"  # YAML of the config's MODEL node, in exported weights (training checkpoints: "cfg")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read, or whose weights do not fit the model."""


def save_checkpoint(path: str, model_state: Dict[str, torch.Tensor], **fields) -> str:
    """Writes ``{"format", "model", **fields}`` to ``path`` atomically; returns ``path``.

    The bytes go to a temporary file beside ``path`` which is then renamed over it, so a crash
    mid-save leaves any previous file at ``path`` intact.
    """
    local = path_manager.get_local_path(path) if "://" in path else path

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            torch.save({"format": FORMAT, "model": model_state, **fields}, f)

    replace_atomically(local, write)
    return path


def float_state(state: Dict[str, torch.Tensor], dtype: torch.dtype) -> Dict[str, torch.Tensor]:
    """``state`` with every floating-point tensor cast to ``dtype`` (integer tensors, such as
    BatchNorm's ``num_batches_tracked``, unchanged)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}


def load_checkpoint(path: str) -> dict:
    """Reads a checkpoint of this project's format (local path or URL) onto the CPU; the
    weights of a half-precision file (``"half": True``) come back as float32."""
    try:
        with path_manager.open(path, "rb") as f:
            ckpt = torch.load(f, map_location="cpu", weights_only=True)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint not found: {path}") from e
    except Exception as e:  # torch raises several types for a corrupt or foreign file
        raise CheckpointError(f"cannot read checkpoint {path}: {e}") from e
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "model" not in ckpt:
        raise CheckpointError(f"{path} is not a {FORMAT} checkpoint (convert published weights with "
                              "tools/convert_checkpoint.py)")
    if ckpt.get(HALF_FIELD):
        ckpt["model"] = float_state(ckpt["model"], torch.float32)
    return ckpt


def diff_state(model: nn.Module, state: Dict[str, torch.Tensor]) -> Tuple[List[str], List[str], List[str]]:
    """(missing, unexpected, mis-shaped) keys of ``state`` against ``model.state_dict()``."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    misshaped = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
                 for k in own if k in state and own[k].shape != state[k].shape]
    return missing, unexpected, misshaped


def load_model_state(model: nn.Module, state: Dict[str, torch.Tensor], source: str = "checkpoint",
                     allow_missing: Optional[List[str]] = None) -> None:
    """Copies ``state`` into ``model``; any missing, unexpected or mis-shaped key is an error.

    ``allow_missing`` lists key prefixes the caller re-initialises on purpose (e.g. a new head).
    The error lists every offending key, so a wrong checkpoint never loads partially.
    """
    allow = tuple(allow_missing or ())
    missing, unexpected, misshaped = diff_state(model, state)
    missing = [k for k in missing if not k.startswith(allow)] if allow else missing
    if missing or unexpected or misshaped:
        lines = [f"{source} does not fit {type(model).__name__}:"]
        for title, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped)):
            if keys:
                lines.append(f"  {title} ({len(keys)}): " + ", ".join(keys[:20]) + (" ..." if len(keys) > 20 else ""))
        raise CheckpointError("\n".join(lines))
    model.load_state_dict(state, strict=not allow)
