"""SOLVER group: optimizer, parameter groups, learning-rate schedule, loss, gradient handling."""
from fvcore.common.config import CfgNode

from .validate import check


def add_config(cfg: CfgNode) -> None:
    cfg.SOLVER = CfgNode()
    cfg.SOLVER.OPTIMIZER = "sgd"  # "sgd" or "adamw" (solver.OPTIMIZERS)
    cfg.SOLVER.BASE_LR = 0.1  # for the global batch TRAIN.BATCH_SIZE (no automatic scaling)
    cfg.SOLVER.MOMENTUM = 0.9  # SGD only
    cfg.SOLVER.NESTEROV = True  # SGD only; needs MOMENTUM > 0
    cfg.SOLVER.ADAMW_BETAS = [0.9, 0.999]  # AdamW only
    cfg.SOLVER.ADAMW_EPS = 1e-8  # AdamW only
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    # True: normalisation-layer parameters and biases get no weight decay (a second group).
    cfg.SOLVER.ZERO_WD_NORM_BIAS = False
    cfg.SOLVER.LR_POLICY = "cosine"  # "cosine" or "steps" (solver.LR_POLICIES); set every optimizer step
    cfg.SOLVER.MAX_EPOCH = 10
    cfg.SOLVER.COSINE_END_LR = 0.0  # cosine: the LR reached at the last iteration
    cfg.SOLVER.STEPS = []  # steps: epochs (may be fractional) where the LR is multiplied by GAMMA
    cfg.SOLVER.GAMMA = 0.1  # steps: decay factor
    # Linear warm-up from WARMUP_START_LR to the schedule's value at WARMUP_EPOCHS.
    cfg.SOLVER.WARMUP_EPOCHS = 0.0
    cfg.SOLVER.WARMUP_START_LR = 0.01
    cfg.SOLVER.CLIP_GRAD_NORM = 0.0  # max global gradient L2 norm; 0 disables clipping
    # Micro-batches summed before one optimizer step (effective batch = BATCH_SIZE x this).
    cfg.SOLVER.GRAD_ACCUM_STEPS = 1
    cfg.SOLVER.LABEL_SMOOTHING = 0.0  # cross-entropy label smoothing in [0, 1)


def check_ranges(cfg: CfgNode) -> None:
    """Ranges; SOLVER.OPTIMIZER and SOLVER.LR_POLICY are checked by cakes_video.solver, which owns them."""
    s = cfg.SOLVER
    check(s.BASE_LR > 0, "SOLVER.BASE_LR", f"must be positive, got {s.BASE_LR}")
    check(s.MOMENTUM >= 0, "SOLVER.MOMENTUM", "must be >= 0")
    check(not (s.OPTIMIZER == "sgd" and s.NESTEROV and s.MOMENTUM <= 0), "SOLVER.NESTEROV",
          "Nesterov SGD needs SOLVER.MOMENTUM > 0")
    check(len(s.ADAMW_BETAS) == 2 and all(0 <= b < 1 for b in s.ADAMW_BETAS), "SOLVER.ADAMW_BETAS",
          f"needs two values in [0, 1), got {list(s.ADAMW_BETAS)}")
    check(s.WEIGHT_DECAY >= 0, "SOLVER.WEIGHT_DECAY", "must be >= 0")
    check(s.MAX_EPOCH >= 1, "SOLVER.MAX_EPOCH", "must be >= 1")
    check(0 <= s.WARMUP_EPOCHS <= s.MAX_EPOCH, "SOLVER.WARMUP_EPOCHS", "must be in [0, SOLVER.MAX_EPOCH]")
    check(s.WARMUP_START_LR >= 0, "SOLVER.WARMUP_START_LR", "must be >= 0")
    check(list(s.STEPS) == sorted(s.STEPS), "SOLVER.STEPS", f"must be increasing, got {list(s.STEPS)}")
    check(s.GAMMA > 0, "SOLVER.GAMMA", "must be positive")
    check(s.CLIP_GRAD_NORM >= 0, "SOLVER.CLIP_GRAD_NORM", "must be >= 0 (0 disables)")
    check(s.GRAD_ACCUM_STEPS >= 1, "SOLVER.GRAD_ACCUM_STEPS", "must be >= 1")
    check(0 <= s.LABEL_SMOOTHING < 1, "SOLVER.LABEL_SMOOTHING", "must be in [0, 1)")
