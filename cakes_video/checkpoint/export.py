"""Weights to ship: a trained checkpoint reduced to its model state and the MODEL part of its
config, in half precision if asked."""
import torch
from fvcore.common.config import CfgNode

from .schema import HALF_FIELD, MODEL_CFG_FIELD, CheckpointError, float_state, load_checkpoint, save_checkpoint


def export_weights(checkpoint_path: str, out_path: str, half: bool = True) -> str:
    """Writes the model state of ``checkpoint_path`` and the MODEL node of its config (no optimizer,
    data paths or metrics) to ``out_path`` in the project's format; with ``half`` its
    floating-point tensors are stored as float16 and the file says so (``"half": True``;
    loading casts them back to float32).

    Raises CheckpointError naming the tensors a float16 cannot hold (values beyond +-65504).
    Returns ``out_path``.
    """
    ckpt = load_checkpoint(checkpoint_path)
    state = ckpt["model"]
    if half:
        limit = torch.finfo(torch.float16).max
        too_large = [k for k, v in state.items() if v.is_floating_point() and (v.abs() > limit).any()]
        if too_large:
            raise CheckpointError(f"{checkpoint_path}: tensors out of float16 range: {', '.join(too_large)}")
        state = float_state(state, torch.float16)
    fields = {HALF_FIELD: half}
    cfg = CfgNode.load_cfg(ckpt["cfg"]) if ckpt.get("cfg") else {}
    if "MODEL" in cfg:  # what the weights were built as, so a loader can check it fits
        fields[MODEL_CFG_FIELD] = cfg.MODEL.dump()
    return save_checkpoint(out_path, state, **fields)
