"""TEST group: multi-view testing protocol."""
from fvcore.common.config import CfgNode


def add_config(cfg: CfgNode) -> None:
    cfg.TEST = CfgNode()
    cfg.TEST.ENABLE = True
    cfg.TEST.BATCH_SIZE = 8
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 10
    cfg.TEST.NUM_SPATIAL_CROPS = 3
    cfg.TEST.CHECKPOINT_FILE = ""
