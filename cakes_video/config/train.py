"""TRAIN group: batch, checkpointing, periodic validation."""
from fvcore.common.config import CfgNode


def add_config(cfg: CfgNode) -> None:
    cfg.TRAIN = CfgNode()
    cfg.TRAIN.ENABLE = True
    cfg.TRAIN.BATCH_SIZE = 8  # global, over all processes
    cfg.TRAIN.CHECKPOINT_FILE = ""  # weights to start from (fine-tuning)
