"""SEARCH group: the CAKES search (supernet training, derivation under a budget, latency table).

The choices (modes, initialisations, slicing rules, budget kinds) are checked by
``cakes_video.search``, which owns them; this module declares the keys and their ranges.
"""
from fvcore.common.config import CfgNode

from .validate import check


def add_config(cfg: CfgNode) -> None:
    cfg.SEARCH = CfgNode()
    # "cost": cost-weighted sparsity on the shared BN scales (the paper's cost priority);
    # "performance": each step keeps exactly C of the N x C candidate channels (performance priority).
    cfg.SEARCH.MODE = "performance"
    # The candidate sub-kernels of every searched layer (any subset of models.subkernels.SUBKERNELS).
    cfg.SEARCH.CANDIDATES = ["kxkxk", "1xkxk", "kx1x1"]
    # Cost mode: s of grad(gamma) += s * w_k * sign(gamma); w_k from the cost model when REWEIGHT.
    cfg.SEARCH.SPARSITY = 1e-4
    cfg.SEARCH.REWEIGHT = True
    # Supernet initialisation: "scratch", "imagenet" (inflate INIT_CHECKPOINT, a 2D ResNet) or
    # "checkpoint" (slice a trained 3D model of INIT_CHECKPOINT into its sub-kernels, SLICE_RULE).
    cfg.SEARCH.INIT = "scratch"
    cfg.SEARCH.INIT_CHECKPOINT = ""
    cfg.SEARCH.SLICE_RULE = "sum"

    cfg.SEARCH.DERIVE = CfgNode()
    # "" = the paper's per-layer top-C (every layer keeps its width); else "gflops", "params" or
    # "latency_ms" for the whole network at DERIVE.INPUT_SHAPE, hit within the tolerance below.
    cfg.SEARCH.DERIVE.BUDGET_KIND = ""
    cfg.SEARCH.DERIVE.BUDGET = 0.0
    cfg.SEARCH.DERIVE.INPUT_SHAPE = []  # (C, T, H, W); [] = 3 x DATA.NUM_FRAMES x DATA.CROP_SIZE^2
    # Channel counts are multiples of this (16 fills oneDNN's output blocks on the CPU).
    cfg.SEARCH.DERIVE.GRANULARITY = 1
    # The derived network's initial weights: "inflate" (as the supernet was) or "inherit"
    # (the supernet's weights of the kept channels).
    cfg.SEARCH.DERIVE.INIT = "inherit"

    cfg.SEARCH.LATENCY = CfgNode()
    cfg.SEARCH.LATENCY.TABLE = ""  # JSON file; "" = OUTPUT_DIR/latency_table.json
    cfg.SEARCH.LATENCY.BATCH_SIZE = 1
    cfg.SEARCH.LATENCY.THREADS = 0  # 0 = NUM_THREADS
    cfg.SEARCH.LATENCY.REPEATS = 5

    # After the search: train the derived network (TRAIN / SOLVER settings) and test it.
    cfg.SEARCH.TRAIN_DERIVED = False


def check_ranges(cfg: CfgNode) -> None:
    s = cfg.SEARCH
    check(len(s.CANDIDATES) >= 2 and len(set(s.CANDIDATES)) == len(s.CANDIDATES), "SEARCH.CANDIDATES",
          f"needs two or more distinct sub-kernels, got {list(s.CANDIDATES)}")
    check(s.SPARSITY >= 0, "SEARCH.SPARSITY", f"must be >= 0, got {s.SPARSITY}")
    check(s.DERIVE.BUDGET >= 0, "SEARCH.DERIVE.BUDGET", f"must be >= 0, got {s.DERIVE.BUDGET}")
    check(not s.DERIVE.BUDGET_KIND or s.DERIVE.BUDGET > 0, "SEARCH.DERIVE.BUDGET",
          f"must be positive with SEARCH.DERIVE.BUDGET_KIND {s.DERIVE.BUDGET_KIND!r}")
    check(len(s.DERIVE.INPUT_SHAPE) in (0, 4), "SEARCH.DERIVE.INPUT_SHAPE",
          f"needs (C, T, H, W) or nothing, got {list(s.DERIVE.INPUT_SHAPE)}")
    check(isinstance(s.DERIVE.GRANULARITY, int) and s.DERIVE.GRANULARITY >= 1, "SEARCH.DERIVE.GRANULARITY",
          f"must be a positive int, got {s.DERIVE.GRANULARITY!r}")
    check(s.LATENCY.BATCH_SIZE >= 1, "SEARCH.LATENCY.BATCH_SIZE", "must be >= 1")
    check(s.LATENCY.THREADS >= 0, "SEARCH.LATENCY.THREADS", "must be >= 0")
    check(s.LATENCY.REPEATS >= 1, "SEARCH.LATENCY.REPEATS", "must be >= 1")
