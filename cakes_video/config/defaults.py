"""Assembles the default config from one module per group."""
from fvcore.common.config import CfgNode

from . import data, model, solver, test, train

# Every config group, in the order its keys are added and validated. Each module defines
# ``add_config(cfg)`` and ``validate(cfg)``.
GROUPS = (model, data, solver, train, test)


def get_cfg() -> CfgNode:
    """A fresh copy of the project defaults (never shared between callers)."""
    cfg = CfgNode()
    cfg.OUTPUT_DIR = "output/default"
    cfg.SEED = 0
    cfg.DEVICE = "cpu"  # "cpu", "cuda", or "auto" (cuda when available)
    # Deterministic kernels; exact resume depends on it.
    cfg.DETERMINISTIC = False
    cfg.NUM_THREADS = 0  # torch intra-op threads; 0 keeps torch's default
    for group in GROUPS:
        group.add_config(cfg)
    return cfg
