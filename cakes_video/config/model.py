"""MODEL group: architecture, per-block temporal convolution, CAKES channel configs, head."""
from fvcore.common.config import CfgNode

from .validate import check


def add_config(cfg: CfgNode) -> None:
    cfg.MODEL = CfgNode()
    cfg.MODEL.ARCH = "resnet3d"  # key in MODEL_REGISTRY (cakes_video.models)
    cfg.MODEL.DEPTH = 18  # 10, 18, 34 (basic block), 50, 101 (bottleneck)
    # Stem output channels; stage widths are BASE_WIDTH x (1, 2, 4, 8). 64 = the published networks
    # (their weights and the official / packaged CAKES channel configs are for 64; "uniform" fits any).
    cfg.MODEL.BASE_WIDTH = 64
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
    cfg.MODEL.KERNEL_SIZE = 3  # kernel size k of every block's temporal conv (CAKES sub-kernels and the other ops)

    cfg.MODEL.CAKES = CfgNode()
    # "uniform", an official name (CAKES123D_P, ...), or a path to a YAML/JSON list; one entry
    # per block temporal conv of the network (resnet3d.cakes_layer_widths order). A name of a file in
    # the packaged channel_configs/ folder works too (e.g. "cakes_18_block16").
    cfg.MODEL.CAKES.CONV_CONFIG = "uniform"
    cfg.MODEL.CAKES.SUBKERNELS = ["kxkxk", "1xkxk", "kx1x1"]  # vocabulary for "uniform"
    cfg.MODEL.CAKES.IMPL = "reference"  # "reference" or "efficient"


def check_ranges(cfg: CfgNode) -> None:
    """Lengths and ranges; the op codes, stems, heads, depths and channel configs are checked by
    the models package (``cakes_video.models.config_checks``), which owns them."""
    m = cfg.MODEL
    check(len(m.STAGE_TEMPORAL_OPS) in (0, 4), "MODEL.STAGE_TEMPORAL_OPS",
          f"needs 4 entries, got {len(m.STAGE_TEMPORAL_OPS)}")
    check(0 <= m.MC_NUM_3D_STAGES <= 4, "MODEL.MC_NUM_3D_STAGES", "must be in 0..4")
    check(len(m.P3D_VARIANTS) > 0, "MODEL.P3D_VARIANTS", "needs a non-empty list")
    check(len(m.TEMPORAL_STRIDES) == 4, "MODEL.TEMPORAL_STRIDES", "needs 4 entries")
    check(all(isinstance(s, int) and s >= 1 for s in m.TEMPORAL_STRIDES), "MODEL.TEMPORAL_STRIDES",
          f"entries must be positive ints, got {list(m.TEMPORAL_STRIDES)}")
    check(m.NUM_CLASSES > 0, "MODEL.NUM_CLASSES", "must be positive")
    check(isinstance(m.BASE_WIDTH, int) and m.BASE_WIDTH >= 1, "MODEL.BASE_WIDTH",
          f"must be a positive int, got {m.BASE_WIDTH!r} (64 = the published networks; a CAKES channel "
          "config other than 'uniform' must also fit the widths it gives, and pretrained weights need "
          "the width they were trained with)")
    check(0.0 <= m.DROPOUT < 1.0, "MODEL.DROPOUT", "must be in [0, 1)")
    k = m.KERNEL_SIZE
    check(k >= 1 and k % 2 == 1, "MODEL.KERNEL_SIZE", f"must be a positive odd int, got {k}")
