"""The one config loader every tool and API calls: config/ merges the YAML file and the
overrides and checks ranges, then each owner of a choice checks it, before any work starts.

Owners: ``models.config_checks`` (architecture, op codes, stems, heads, channel configs),
``datasets.config_checks`` (formats, decoders, sampling, protocols), ``solver`` (optimizers, LR
policies), ``utils.metrics`` (view aggregation), ``utils.modes`` (mixed precision) and
``utils.distributed`` (devices).
"""
from typing import Optional, Sequence

from fvcore.common.config import CfgNode

from .config import check_choice, check_ranges, merge_config
from .datasets.config_checks import check_data_config
from .models.config_checks import check_model_config
from .solver import LR_POLICIES, OPTIMIZERS
from .utils.distributed import DEVICES
from .utils.metrics import AGGREGATIONS
from .utils.modes import AMP_DTYPES


def check_config(cfg: CfgNode) -> CfgNode:
    """Ranges, then every owner's choices; returns ``cfg`` or raises ConfigError naming the key."""
    return check_choices(check_ranges(cfg))


def check_choices(cfg: CfgNode) -> CfgNode:
    """Every owner's choices (the ranges are :func:`cakes_video.config.check_ranges`')."""
    check_model_config(cfg)
    check_data_config(cfg)
    check_choice(cfg, "SOLVER.OPTIMIZER", OPTIMIZERS)
    check_choice(cfg, "SOLVER.LR_POLICY", LR_POLICIES)
    check_choice(cfg, "TEST.AGGREGATION", AGGREGATIONS)
    check_choice(cfg, "TRAIN.MIXED_PRECISION", AMP_DTYPES)
    check_choice(cfg, "DEVICE", DEVICES)
    return cfg


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the YAML file ``path`` (a file, or a packaged config's name, with its
    ``_BASE_`` chain), then the ``KEY VALUE`` overrides; checked completely and frozen.

    Raises:
        ConfigError: naming the file or key when anything does not fit; nothing has run yet.
    """
    cfg = check_choices(merge_config(path, overrides))  # merge_config checked the ranges
    cfg.freeze()
    return cfg
