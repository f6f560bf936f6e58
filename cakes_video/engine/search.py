"""Training a CAKES supernet with the ordinary loop (engine/setup.train): checkpoints, resume,
DDP, validation and metrics as for any run; the search's own work is two hooks. The math lives
in cakes_video/search/; this module only plugs it into the loop."""
import logging
from typing import Callable, Dict, Optional, Sequence

from ..search.build import build_supernet, check_supernet_config
from ..search.supernet import MODES, Scores, apply_sparsity, supernet_scores
from ..utils.distributed import unwrap
from .setup import train
from .train import Hook, Trainer

logger = logging.getLogger(__name__)


class CostSparsity(Hook):
    """Cost priority: after every backward, the cost-weighted L1 subgradient on the supernet's BN
    scales (:func:`~cakes_video.search.supernet.apply_sparsity`, s = SEARCH.SPARSITY)."""

    def __init__(self, sparsity: float, reweight: bool):
        self.sparsity, self.reweight = sparsity, reweight

    def after_backward(self, trainer: Trainer, totals) -> None:
        # The gradients are still multiplied by the fp16 loss scale here (1 when it is off).
        apply_sparsity(unwrap(trainer.model), self.sparsity, self.reweight, trainer.scaler.get_scale())


class SupernetScores(Hook):
    """Keeps the trained supernet's scores (``scores``) when the run ends."""

    def __init__(self):
        self.scores: Optional[Scores] = None

    def after_train(self, trainer: Trainer) -> None:
        self.scores = supernet_scores(unwrap(trainer.model))


def supernet_training_config(cfg):
    """``cfg`` with SOLVER.ZERO_WD_NORM_BIAS on: the BN scales are the search's scores, so no weight
    decay shrinks them (the official setting); a frozen copy, ``cfg`` itself when already so."""
    if cfg.SOLVER.ZERO_WD_NORM_BIAS:
        return cfg
    logger.info("search: SOLVER.ZERO_WD_NORM_BIAS set to True (no weight decay on the BN scales it scores)")
    cfg = cfg.clone()
    cfg.defrost()
    cfg.SOLVER.ZERO_WD_NORM_BIAS = True
    cfg.freeze()
    return cfg


def train_supernet(cfg, loader_fn: Optional[Callable] = None, hooks: Sequence[Hook] = ()) -> Dict:
    """Trains the supernet of ``cfg`` (:func:`~cakes_video.search.build.build_supernet`) for
    SOLVER.MAX_EPOCH in OUTPUT_DIR, resuming like any training run; SEARCH.MODE "cost" adds
    :class:`CostSparsity`. ``loader_fn`` and ``hooks`` as for :func:`~.setup.train`.

    Returns ``{"scores": scores (per searched layer, candidate -> |gamma| [C] on the CPU),
    "checkpoint": the last checkpoint's path, "history": the epoch records of this process}``.
    """
    check_supernet_config(cfg)  # before any work: the search's choices are not load_config's
    cfg = supernet_training_config(cfg)
    search_hooks = [CostSparsity(cfg.SEARCH.SPARSITY, cfg.SEARCH.REWEIGHT)] if MODES[cfg.SEARCH.MODE].sparsity else []
    scores = SupernetScores()
    result = train(cfg, loader_fn, hooks=[*search_hooks, scores, *hooks], model_fn=build_supernet)
    return {"scores": scores.scores, "checkpoint": result["last_checkpoint"], "history": result["history"]}
