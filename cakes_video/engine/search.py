"""The CAKES search as a run: the supernet trained with the ordinary loop (engine/setup.train:
checkpoints, resume, DDP, validation and metrics as for any run; the search's own work is two
hooks), then the derivation, its files, and optionally the derived network trained and tested.
The math lives in cakes_video/search/; this module plugs it into the loop
(:func:`search`, what tools/search_net.py runs)."""
import logging
import os
from typing import Callable, Dict, Optional, Sequence

from torch import nn

from ..config import check, check_choice
from ..config_loader import load_config
from ..models import build_model
from ..models.complexity import count_gflops, count_params
from ..search.build import build_supernet, check_supernet_config, shrunk_network, supernet_shape
from ..search.costs import build_derived_model, cakes_model_cfg, derive_input_shape
from ..search.derive import Derivation, budget_cost, derive
from ..search.export import export
from ..search.latency import measure_network_ms
from ..search.supernet import MODES, Scores, apply_sparsity, inherit_weights, supernet_scores
from ..utils.distributed import barrier, broadcast_object, is_main, unwrap
from ..utils.io import write_json
from .checkpointer import load_weights
from .monitor import progress
from .setup import train
from .testing import run_test
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


SUMMARY_FILE = "search_summary.json"
DERIVED_DIR = "derived"  # under OUTPUT_DIR: one folder per derivation (its files, its trained runs)


def derivation_dir(cfg) -> str:
    """OUTPUT_DIR/derived/NAME, NAME the derivation's settings (``gflops_0.144``, ``top_c``,
    ``latency_ms_7_g16``): a rerun at another budget, granularity or input on the same supernet
    writes beside the first."""
    d = cfg.SEARCH.DERIVE
    name = f"{d.BUDGET_KIND}_{d.BUDGET:.12g}" if d.BUDGET_KIND else "top_c"
    if d.GRANULARITY > 1:
        name += f"_g{d.GRANULARITY}"
    if d.INPUT_SHAPE:
        name += "_" + "x".join(str(n) for n in d.INPUT_SHAPE)
    return os.path.join(cfg.OUTPUT_DIR, DERIVED_DIR, name)


def _trained_supernet(cfg, checkpoint: str) -> nn.Module:
    supernet = supernet_shape(cfg)
    load_weights(supernet, checkpoint, action="inheriting the kept channels of")
    return supernet


# SEARCH.DERIVE.INIT -> the supernet whose kept channels start the derived network: the trained
# one, or the one the search started from (SEARCH.INIT: scratch, ImageNet inflation, a sliced 3D model).
DERIVED_INITS = {"inherit": _trained_supernet, "inflate": lambda cfg, checkpoint: build_supernet(cfg)}


def derived_network(cfg, derivation: Derivation, supernet_checkpoint: str) -> nn.Module:
    """The derived CAKES network of ``derivation`` with the kept channels' weights of the supernet
    SEARCH.DERIVE.INIT names (:func:`~cakes_video.search.supernet.inherit_weights`)."""
    supernet = DERIVED_INITS[cfg.SEARCH.DERIVE.INIT](cfg, supernet_checkpoint)
    derived = build_derived_model(cfg, derivation.channel_config)
    return inherit_weights(supernet, derived, derivation.selection)


def search(cfg, loader_fn: Optional[Callable] = None) -> Dict:
    """Trains the supernet (:func:`train_supernet`), derives under SEARCH.DERIVE, writes the
    derived configs, report and plot to :func:`derivation_dir` and, with SEARCH.TRAIN_DERIVED,
    trains the derived network in its ``run_<SEARCH.DERIVE.INIT>`` folder and tests it. Every choice and the budget are
    checked first (an impossible budget fails naming the smallest reachable value; a latency
    budget builds or reuses its table). A killed search reruns with the same command and resumes.

    Returns the summary written to OUTPUT_DIR/search_summary.json: ``derived_config`` (the channel
    config YAML; ``derived_config_json``, ``derived_model_config``, ``report``, ``plot`` beside it),
    ``params``, ``gflops`` (one view at SEARCH.DERIVE.INPUT_SHAPE), ``latency_ms`` (measured,
    SEARCH.LATENCY settings) and ``predicted_latency_ms`` under a latency budget, ``budget``
    (``kind``, ``value``), ``supernet_checkpoint`` and, when trained, ``derived_run`` and ``top1``.
    """
    check_supernet_config(cfg)
    check_choice(cfg, "SEARCH.DERIVE.INIT", DERIVED_INITS)
    def bar(iterable, desc):
        return progress(iterable, desc, enabled=cfg.TRAIN.PROGRESS_BAR)

    cost = budget_cost(cfg, bar)
    supernet = train_supernet(cfg, loader_fn)
    derivation = derive(cfg, supernet["scores"], cost, bar)
    summary = _describe(cfg, derivation, supernet["checkpoint"])
    if cfg.SEARCH.TRAIN_DERIVED:
        summary.update(train_derived(cfg, derivation, summary["derived_model_config"], supernet["checkpoint"],
                                     loader_fn))
    if is_main():  # the latest search's summary, and each derivation's beside its files
        write_json(os.path.join(cfg.OUTPUT_DIR, SUMMARY_FILE), summary)
        write_json(os.path.join(derivation_dir(cfg), SUMMARY_FILE), summary)
    return summary


def _describe(cfg, derivation: Derivation, supernet_checkpoint: str) -> Dict:
    """The derivation's files (rank 0 writes them) and figures: exact params and GFLOPs of the
    derived network, its measured latency."""
    input_shape = derive_input_shape(cfg)
    model = build_derived_model(cfg, derivation.channel_config)
    # measured once, on rank 0 (every rank timing at once would slow each other down)
    measured = broadcast_object(derivation.measured_latency_ms or (
        measure_network_ms(cfg, derivation.channel_config, input_shape) if is_main() else None))
    out = derivation_dir(cfg)
    files = export(out, cfg, derivation, measured_latency_ms=measured) if is_main() else {}
    barrier()  # the other ranks read derived_model.yaml next
    summary = {"derived_config": files.get("yaml", os.path.join(out, "derived.yaml")),
               "derived_config_json": files.get("json"), "derived_model_config": files.get("model", os.path.join(
                   out, "derived_model.yaml")), "report": files.get("report"), "plot": files.get("plot"),
               "params": count_params(model), "gflops": count_gflops(model, input_shape)["gflops"],
               "input_shape": list(input_shape), "latency_ms": measured,
               "budget": {"kind": derivation.budget_kind or "top_c", "value": derivation.budget},
               "supernet_checkpoint": supernet_checkpoint}
    if derivation.budget_kind == "latency_ms":
        summary["predicted_latency_ms"] = derivation.predicted
    logger.info("derived network: %s params, %.4g GFLOPs, %.4g ms measured (%s)", f"{summary['params']:,}",
                summary["gflops"], measured, summary["derived_config"])
    return summary


def train_derived(cfg, derivation: Derivation, model_config: str, supernet_checkpoint: str,
                  loader_fn: Optional[Callable] = None) -> Dict:
    """Trains the derived network (its config ``model_config``, the search's TRAIN / SOLVER /
    DATA settings) in ``derivation_dir/run_<SEARCH.DERIVE.INIT>`` from :func:`derived_network`'s
    weights, resuming like any run, then tests it when DATA.TEST_LIST is set; returns
    ``derived_run`` and ``top1``."""
    run_dir = os.path.join(derivation_dir(cfg), f"run_{cfg.SEARCH.DERIVE.INIT}")
    derived_cfg = load_config(model_config, ["OUTPUT_DIR", run_dir])
    tested = _train_and_test(derived_cfg, loader_fn, lambda c: derived_network(cfg, derivation, supernet_checkpoint))
    return {"derived_run": run_dir, **tested}


def _train_and_test(cfg, loader_fn: Optional[Callable], model_fn: Callable) -> Dict:
    """Trains ``model_fn(cfg)`` in OUTPUT_DIR, then tests it when DATA.TEST_LIST is set: ``{"top1"}`` or ``{}``."""
    train(cfg, loader_fn, model_fn=model_fn)
    if cfg.TEST.ENABLE and cfg.DATA.TEST_LIST:
        return {"top1": run_test(cfg, loader_fn)["top1"]}
    return {}


def shrink_to_config(cfg, loader_fn: Optional[Callable] = None) -> Dict:
    """A trained 3D model shrunk into a CAKES network without a search (the baseline of a searched
    shrink): SEARCH.INIT "checkpoint" slices SEARCH.INIT_CHECKPOINT into the supernet of ``cfg``
    (SEARCH.SLICE_RULE), whose channels at their own positions start the CAKES network of
    MODEL.CAKES.CONV_CONFIG over SEARCH.CANDIDATES ("uniform" splits every layer evenly;
    :func:`~cakes_video.search.build.shrunk_network`): every output channel keeps the sub-kernel
    sliced from its own 3D kernel. Fine-tuned in OUTPUT_DIR (TRAIN / SOLVER, resuming
    like any run), then tested when DATA.TEST_LIST is set; returns ``{"run", "top1"}``."""
    check(cfg.SEARCH.INIT == "checkpoint", "SEARCH.INIT", f"shrinking starts from a trained 3D model: "
          f"set 'checkpoint' and SEARCH.INIT_CHECKPOINT, got {cfg.SEARCH.INIT!r}")
    check_supernet_config(cfg)
    cakes_cfg = cakes_model_cfg(cfg, cfg.MODEL.CAKES.CONV_CONFIG)
    cakes_cfg.freeze()
    tested = _train_and_test(cakes_cfg, loader_fn, lambda c: shrunk_network(cfg, build_model(c)))
    return {"run": cakes_cfg.OUTPUT_DIR, **tested}
