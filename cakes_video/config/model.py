"""MODEL group: architecture, per-block temporal convolution, CAKES channel configs, head."""
from fvcore.common.config import CfgNode

from .validate import ConfigError, check, check_choice


def add_config(cfg: CfgNode) -> None:
    cfg.MODEL = CfgNode()
    cfg.MODEL.ARCH = "resnet3d"  # key in MODEL_REGISTRY
    cfg.MODEL.DEPTH = 18  # 10, 18, 34 (basic block), 50, 101 (bottleneck)
    cfg.MODEL.NUM_CLASSES = 400
    # "3x7x7" (R3D), "1x7x7" (C2D / official CAKES), "2plus1d" (R(2+1)D stem).
    cfg.MODEL.STEM = "3x7x7"
    cfg.MODEL.STEM_POOL = False  # 1x3x3 max-pool, stride (1,2,2), after the stem
    # Temporal convolution of every block: "3d", "2d", "2plus1d", "mc", "p3d", "cakes".
    # "mc" is MC3: 3d in the first MC_NUM_3D_STAGES stages, 2d after.
    cfg.MODEL.TEMPORAL_OP = "3d"
    cfg.MODEL.MC_NUM_3D_STAGES = 1
    # Per-stage ops override TEMPORAL_OP when given (4 entries).
    cfg.MODEL.STAGE_TEMPORAL_OPS = []
    cfg.MODEL.TEMPORAL_STRIDES = [1, 2, 2, 2]  # per stage (spatial strides are 1,2,2,2)
    cfg.MODEL.TEMPORAL_POOL = False  # temporal max-pool (stride 2) after stage 1
    cfg.MODEL.HEAD = "clip"  # "clip" (global pool) or "tsn" (per-frame logits averaged)
    cfg.MODEL.DROPOUT = 0.0

    cfg.MODEL.CAKES = CfgNode()
    # "uniform", an official name (CAKES123D_P, ...), or a path to a YAML/JSON list.
    cfg.MODEL.CAKES.CONV_CONFIG = "uniform"
    cfg.MODEL.CAKES.SUBKERNELS = ["kxkxk", "1xkxk", "kx1x1"]  # vocabulary for "uniform"
    cfg.MODEL.CAKES.KERNEL_SIZE = 3
    cfg.MODEL.CAKES.IMPL = "reference"  # "reference" or "efficient"


TEMPORAL_OPS = ("3d", "2d", "2plus1d", "mc", "p3d", "cakes")


def validate(cfg: CfgNode) -> None:
    check_choice(cfg, "MODEL.DEPTH", (10, 18, 34, 50, 101))
    check_choice(cfg, "MODEL.STEM", ("3x7x7", "1x7x7", "2plus1d"))
    check_choice(cfg, "MODEL.TEMPORAL_OP", TEMPORAL_OPS)
    check_choice(cfg, "MODEL.HEAD", ("clip", "tsn"))
    check_choice(cfg, "MODEL.CAKES.IMPL", ("reference", "efficient"))
    stage_ops = cfg.MODEL.STAGE_TEMPORAL_OPS
    check(len(stage_ops) in (0, 4), "MODEL.STAGE_TEMPORAL_OPS", f"needs 4 entries, got {len(stage_ops)}")
    for op in stage_ops:
        check(op in TEMPORAL_OPS and op != "mc", "MODEL.STAGE_TEMPORAL_OPS",
              f"unknown op code {op!r}; expected one of {[o for o in TEMPORAL_OPS if o != 'mc']}")
    check(len(cfg.MODEL.TEMPORAL_STRIDES) == 4, "MODEL.TEMPORAL_STRIDES", "needs 4 entries")
    check(cfg.MODEL.NUM_CLASSES > 0, "MODEL.NUM_CLASSES", "must be positive")
    check(0.0 <= cfg.MODEL.DROPOUT < 1.0, "MODEL.DROPOUT", "must be in [0, 1)")
    if "cakes" in (list(stage_ops) or [cfg.MODEL.TEMPORAL_OP]):
        from ..models.cakes import resolve_channel_config, stage_widths_of_blocks

        try:
            resolve_channel_config(cfg.MODEL.CAKES.CONV_CONFIG, stage_widths_of_blocks(cfg.MODEL.DEPTH),
                                   cfg.MODEL.CAKES.SUBKERNELS)
        except ValueError as e:
            raise ConfigError(f"MODEL.CAKES.CONV_CONFIG: {e}") from e

