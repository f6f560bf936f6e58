"""Assembles the default config from one module per group, and runs their range checks."""
from fvcore.common.config import CfgNode

from . import data, model, search, solver, test, train
from .validate import check

# Keys renamed since configs were first written: old -> (new, why). A YAML file that still uses
# an old key (an earlier run's config.yaml) is read with a warning; an override fails naming the new key.
RENAMED_KEYS = {
    "MODEL.CAKES.KERNEL_SIZE": ("MODEL.KERNEL_SIZE", "it sets the kernel size of every block's temporal conv, "
                                "not only CAKES layers"),
}

# Every config group, in the order its keys are added and checked. Each module defines
# ``add_config(cfg)`` and ``check_ranges(cfg)``.
GROUPS = (model, data, solver, train, test, search)


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
    for old, (new, why) in RENAMED_KEYS.items():  # yacs' check: an override with it names the new key
        cfg.register_renamed_key(old, new, why)
    return cfg


def check_ranges(cfg: CfgNode) -> CfgNode:
    """Every group's ``check_ranges``: values in range, lengths, combinations of keys. Choices
    that code owns (op codes, registries) are checked by their owners (``cakes_video.config_loader``).
    Returns ``cfg`` or raises ConfigError naming the key."""
    check(cfg.NUM_THREADS >= 0, "NUM_THREADS", f"must be >= 0 (0 keeps torch's default), got {cfg.NUM_THREADS}")
    for group in GROUPS:
        group.check_ranges(cfg)
    return cfg
