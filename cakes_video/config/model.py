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
    # P3D variants cycled over consecutive blocks ("A" serial, "B" parallel, "C" serial + skip).
    cfg.MODEL.P3D_VARIANTS = ["A", "B", "C"]
    cfg.MODEL.TEMPORAL_STRIDES = [1, 2, 2, 2]  # per stage (spatial strides are 1,2,2,2)
    cfg.MODEL.TEMPORAL_POOL = False  # temporal max-pool 3x1x1, stride 2, after stage 1
    cfg.MODEL.HEAD = "clip"  # "clip" (global pool) or "tsn" (per-frame logits averaged)
    cfg.MODEL.DROPOUT = 0.0

    cfg.MODEL.CAKES = CfgNode()
    # "uniform", an official name (CAKES123D_P, ...), or a path to a YAML/JSON list; one entry
    # per block temporal conv of the network (cakes.cakes_layer_widths order).
    cfg.MODEL.CAKES.CONV_CONFIG = "uniform"
    cfg.MODEL.CAKES.SUBKERNELS = ["kxkxk", "1xkxk", "kx1x1"]  # vocabulary for "uniform"
    # Kernel size k of every block's temporal conv (CAKES sub-kernels and the other ops alike).
    cfg.MODEL.CAKES.KERNEL_SIZE = 3
    cfg.MODEL.CAKES.IMPL = "reference"  # "reference" or "efficient"


def validate(cfg: CfgNode) -> None:
    # The choices come from the model modules, so a new op, stem or head is added in one place.
    from ..models.cakes import CAKES_IMPLS
    from ..models.heads import HEADS
    from ..models.resnet3d import BLOCKS_PER_STAGE, STEMS
    from ..models.temporal_ops import P3D_VARIANTS, TEMPORAL_OPS

    _validate_arch(cfg)
    check_choice(cfg, "MODEL.DEPTH", BLOCKS_PER_STAGE)
    check_choice(cfg, "MODEL.STEM", STEMS)
    check_choice(cfg, "MODEL.TEMPORAL_OP", TEMPORAL_OPS + ("mc",))  # "mc" resolves per stage
    check_choice(cfg, "MODEL.HEAD", HEADS)
    check_choice(cfg, "MODEL.CAKES.IMPL", CAKES_IMPLS)
    stage_ops = cfg.MODEL.STAGE_TEMPORAL_OPS
    check(len(stage_ops) in (0, 4), "MODEL.STAGE_TEMPORAL_OPS", f"needs 4 entries, got {len(stage_ops)}")
    for op in stage_ops:
        check(op in TEMPORAL_OPS, "MODEL.STAGE_TEMPORAL_OPS",
              f"unknown op code {op!r}; expected one of {list(TEMPORAL_OPS)}")
    check(0 <= cfg.MODEL.MC_NUM_3D_STAGES <= 4, "MODEL.MC_NUM_3D_STAGES", "must be in 0..4")
    variants = cfg.MODEL.P3D_VARIANTS
    check(len(variants) > 0 and all(v in P3D_VARIANTS for v in variants), "MODEL.P3D_VARIANTS",
          f"needs a non-empty list of {sorted(P3D_VARIANTS)}, got {list(variants)}")
    strides = cfg.MODEL.TEMPORAL_STRIDES
    check(len(strides) == 4, "MODEL.TEMPORAL_STRIDES", "needs 4 entries")
    check(all(isinstance(s, int) and s >= 1 for s in strides), "MODEL.TEMPORAL_STRIDES",
          f"entries must be positive ints, got {list(strides)}")
    check(cfg.MODEL.NUM_CLASSES > 0, "MODEL.NUM_CLASSES", "must be positive")
    check(0.0 <= cfg.MODEL.DROPOUT < 1.0, "MODEL.DROPOUT", "must be in [0, 1)")
    k = cfg.MODEL.CAKES.KERNEL_SIZE
    check(k >= 1 and k % 2 == 1, "MODEL.CAKES.KERNEL_SIZE", f"must be a positive odd int, got {k}")
    if "cakes" in (list(stage_ops) or [cfg.MODEL.TEMPORAL_OP]):
        _validate_channel_config(cfg)


def _validate_arch(cfg: CfgNode) -> None:
    from ..models import MODEL_REGISTRY  # importing the package registers the architectures

    names = sorted(name for name, _ in MODEL_REGISTRY)
    check(cfg.MODEL.ARCH in names, "MODEL.ARCH", f"unknown model {cfg.MODEL.ARCH!r}; registered: {names}")


def _validate_channel_config(cfg: CfgNode) -> None:
    from ..models.cakes import cakes_layer_widths, kernel_shape, resolve_channel_config

    for name in cfg.MODEL.CAKES.SUBKERNELS:
        try:
            kernel_shape(name)
        except ValueError as e:
            raise ConfigError(f"MODEL.CAKES.SUBKERNELS: {e}") from e
    try:
        resolve_channel_config(cfg.MODEL.CAKES.CONV_CONFIG, cakes_layer_widths(cfg.MODEL.DEPTH),
                               cfg.MODEL.CAKES.SUBKERNELS)
    except ValueError as e:
        raise ConfigError(f"MODEL.CAKES.CONV_CONFIG: {e}") from e
