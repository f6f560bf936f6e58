"""SEARCH group: the supernet search that produces CAKES channel configs (later issue)."""
from fvcore.common.config import CfgNode


def add_config(cfg: CfgNode) -> None:
    cfg.SEARCH = CfgNode()
    cfg.SEARCH.ENABLE = False
