"""TRAIN group: batch, mixed precision, checkpointing, periodic validation, logging."""
from fvcore.common.config import CfgNode

from .validate import check, check_choice

# TRAIN.BEST_METRIC -> whether a higher value is better.
BEST_METRICS = {"val_top1": True, "train_loss": False}


def add_config(cfg: CfgNode) -> None:
    cfg.TRAIN = CfgNode()
    cfg.TRAIN.ENABLE = True
    cfg.TRAIN.BATCH_SIZE = 8  # global, over all processes; must divide by the number of processes
    # Weights to start from (fine-tuning): a project checkpoint or converted weights. A head of
    # another shape (different MODEL.NUM_CLASSES) is re-initialised. Ignored when resuming.
    cfg.TRAIN.CHECKPOINT_FILE = ""  # or "zoo:NAME", a zoo model's weights (cakes_video.list_models())
    cfg.TRAIN.AUTO_RESUME = True  # continue from the newest OUTPUT_DIR/checkpoints/*.pyth
    # Resume even though keys that change results differ from the run's OUTPUT_DIR/config.yaml
    # (config/resume.py says which): the run logs and records the changes, keeps the old config.
    cfg.TRAIN.RESUME_CHANGED_CONFIG = False
    cfg.TRAIN.CHECKPOINT_PERIOD = 1  # save every N epochs (and always after the last)
    cfg.TRAIN.CHECKPOINT_KEEP_LAST = 3  # epoch checkpoints kept on disk (0 keeps all); best.pyth is extra
    cfg.TRAIN.EVAL_PERIOD = 1  # validate on the val split every N epochs (0 disables)
    # "val_top1" (needs validation) or "train_loss": what chooses checkpoints/best.pyth.
    cfg.TRAIN.BEST_METRIC = "val_top1"
    # "off", "bf16" or "fp16": autocast on CUDA only; on the CPU it is always off.
    cfg.TRAIN.MIXED_PRECISION = "off"  # utils.modes.AMP_DTYPES
    cfg.TRAIN.SYNC_BN = False  # convert BatchNorm to SyncBatchNorm under multi-GPU DDP (CUDA only)
    # Recompute BatchNorm running statistics with fvcore precise BN before each validation.
    cfg.TRAIN.PRECISE_BN = False
    cfg.TRAIN.PRECISE_BN_ITERS = 50  # batches used for precise BN
    cfg.TRAIN.LOG_PERIOD = 10  # iterations between per-iteration metric lines
    cfg.TRAIN.TENSORBOARD = True  # also write TensorBoard events when tensorboard is installed
    cfg.TRAIN.PROGRESS_BAR = True  # tqdm bars over the train and val batches on rank 0


def check_ranges(cfg: CfgNode) -> None:
    """Ranges; TRAIN.MIXED_PRECISION is checked against utils.modes.AMP_DTYPES by the loader."""
    t = cfg.TRAIN
    check(t.BATCH_SIZE >= 1, "TRAIN.BATCH_SIZE", "must be >= 1")
    check(t.CHECKPOINT_PERIOD >= 1, "TRAIN.CHECKPOINT_PERIOD", "must be >= 1")
    check(t.CHECKPOINT_KEEP_LAST >= 0, "TRAIN.CHECKPOINT_KEEP_LAST", "must be >= 0 (0 keeps all)")
    check(t.EVAL_PERIOD >= 0, "TRAIN.EVAL_PERIOD", "must be >= 0 (0 disables)")
    check_choice(cfg, "TRAIN.BEST_METRIC", BEST_METRICS)
    check(not (t.BEST_METRIC == "val_top1" and t.EVAL_PERIOD == 0), "TRAIN.BEST_METRIC",
          "'val_top1' needs validation; set TRAIN.EVAL_PERIOD > 0 or use 'train_loss'")
    check(t.PRECISE_BN_ITERS >= 1, "TRAIN.PRECISE_BN_ITERS", "must be >= 1")
    check(t.LOG_PERIOD >= 1, "TRAIN.LOG_PERIOD", "must be >= 1")
