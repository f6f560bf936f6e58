"""Assembles a training run from a config and runs it: ``train(cfg)`` is all a tool calls.

Checks first, then the OUTPUT_DIR lock and, when resuming, the config against the one the
checkpoint was trained with and its schedule (engine/rundir.py), then loaders, model, weights
(resume or fine-tune), DDP, optimizer, schedule, writers; then the
:class:`~cakes_video.engine.train.Trainer` with its hooks in order (:func:`default_hooks`, then
the caller's)."""
import logging
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..models import build_model
from ..solver import IterationScheduler, build_optimizer, lr_function
from ..utils.distributed import get_rank, get_world_size, unwrap, wrap_model
from .checkpointer import Checkpointer, load_for_finetuning, load_weights, set_rng_state
from .hooks import Checkpointing, MetricLogging, NonFiniteLossCheck, PreciseBN, ReleaseLock, TrainingCurves, Validation
from .monitor import MetricWriter, setup_logging
from .rundir import (check_resumed_config, check_resumed_schedule, lock_output_dir, log_taken_over, resume_point,
                     save_config)
from .runtime import amp_dtype, prepare_run, resolve_loader_fn
from .train import Hook, Trainer

logger = logging.getLogger(__name__)


def train(cfg, loader_fn: Optional[Callable] = None, hooks: Sequence[Hook] = (),
          model_fn: Callable = build_model) -> Dict:
    """Trains ``cfg`` to SOLVER.MAX_EPOCH (resuming from OUTPUT_DIR when possible).

    ``loader_fn(cfg, split) -> DataLoader`` defaults to ``datasets.loader.build_loader``;
    ``hooks`` run after the default ones at every hook point; ``model_fn(cfg)`` builds the
    model (another network than MODEL.ARCH's, e.g. a search supernet).
    Returns ``{"epochs", "iteration", "best", "last_checkpoint", "best_checkpoint", "history"}``.
    """
    t, saving = _assemble(cfg, loader_fn, hooks, model_fn)
    t.run()
    return {"epochs": t.epoch, "iteration": t.scheduler.iteration, "best": saving.best,
            "last_checkpoint": saving.last_checkpoint, "best_checkpoint": saving.checkpointer.for_testing(),
            "history": t.history}


def build_trainer(cfg, loader_fn: Optional[Callable] = None, hooks: Sequence[Hook] = ()) -> Trainer:
    """The Trainer ``train`` runs: everything checked and built, resumed from
    OUTPUT_DIR/checkpoints when TRAIN.AUTO_RESUME finds a checkpoint, else started from
    TRAIN.CHECKPOINT_FILE when given; its hooks are :func:`default_hooks` then ``hooks``."""
    return _assemble(cfg, loader_fn, hooks)[0]


def default_hooks(cfg, checkpointer: Checkpointer, writer: MetricWriter, saving: Checkpointing) -> List[Hook]:
    """The run's periodic work, in the order it must run at the end of an epoch: precise BN
    before validation, validation before the metric lines (they hold ``val_*``), the metric
    lines before checkpointing (the "saved" line follows the epoch's line), the curves last (at
    the end of training, from the written lines). The NaN check and the per-step metric lines
    are the only hooks that act on steps."""
    hooks: List[Hook] = [NonFiniteLossCheck(checkpointer)]
    if cfg.TRAIN.PRECISE_BN:
        hooks.append(PreciseBN(cfg.TRAIN.EVAL_PERIOD, cfg.SOLVER.MAX_EPOCH, cfg.TRAIN.PRECISE_BN_ITERS))
    if cfg.TRAIN.EVAL_PERIOD:
        hooks.append(Validation(cfg.TRAIN.EVAL_PERIOD, cfg.SOLVER.MAX_EPOCH, cfg.TRAIN.PROGRESS_BAR))
    return hooks + [MetricLogging(writer, cfg.TRAIN.LOG_PERIOD, cfg.SOLVER.MAX_EPOCH), saving,
                    TrainingCurves(cfg.OUTPUT_DIR)]


def _assemble(cfg, loader_fn: Optional[Callable], hooks: Sequence[Hook],
              model_fn: Callable = build_model) -> Tuple[Trainer, Checkpointing]:
    """The Trainer with its hooks, and its Checkpointing hook (it holds the best value and the
    last checkpoint ``train`` reports). The Trainer holds the OUTPUT_DIR lock until it has run."""
    # TEST.BATCH_SIZE too when tools/train_net.py will test afterwards: fail now, not after training
    will_test = cfg.TEST.ENABLE and bool(cfg.DATA.TEST_LIST)
    device = prepare_run(cfg, ["TRAIN.BATCH_SIZE"] + (["TEST.BATCH_SIZE"] if will_test else []))
    lock, taken_over = lock_output_dir(cfg.OUTPUT_DIR)
    try:
        t, saving = _assemble_locked(cfg, device, loader_fn, taken_over, ["test"] if will_test else [], model_fn)
    except BaseException:
        if lock is not None:
            lock.release()
        raise
    t.hooks = tuple(t.hooks) + tuple(hooks) + (ReleaseLock(lock),)
    return t, saving


def _assemble_locked(cfg, device: torch.device, loader_fn: Optional[Callable], taken_over: Dict,
                     also_check: Sequence[str], model_fn: Callable) -> Tuple[Trainer, Checkpointing]:
    """``_assemble`` once OUTPUT_DIR is this run's (``taken_over``: a dead run's lock record;
    ``also_check``: the splits read after training, checked now)."""
    checkpointer = Checkpointer(cfg.OUTPUT_DIR, cfg.TRAIN.CHECKPOINT_KEEP_LAST)
    resumed = resume_point(cfg, checkpointer)  # checked before anything is written
    changes = check_resumed_config(cfg, *resumed) if resumed else None
    setup_logging(cfg.OUTPUT_DIR)
    log_taken_over(cfg.OUTPUT_DIR, taken_over)
    loaders = build_loaders(cfg, loader_fn, also_check)
    t, steps = _build_trainer(cfg, device, loaders, finetune=resumed is None, model_fn=model_fn)
    if resumed:
        check_resumed_schedule(*resumed, steps, cfg.SOLVER.MAX_EPOCH)
    writer = MetricWriter(cfg.OUTPUT_DIR, cfg.TRAIN.TENSORBOARD)
    best = resume(t, *resumed) if resumed else None
    saving = Checkpointing(checkpointer, cfg.TRAIN.CHECKPOINT_PERIOD, cfg.SOLVER.MAX_EPOCH, cfg.TRAIN.BEST_METRIC,
                           best=best, last_checkpoint=resumed[0] if resumed else None)
    t.hooks = tuple(default_hooks(cfg, checkpointer, writer, saving))
    # last: a run refused on its data, weights or batch size leaves config.yaml alone
    save_config(cfg, changes, writer, t.epoch, t.scheduler.iteration)
    logger.info("training %s on %s x%d: %d optimizer steps per epoch, epochs %d..%d",
                cfg.MODEL.ARCH, device, get_world_size(), steps, t.epoch + 1, cfg.SOLVER.MAX_EPOCH)
    return t, saving


def build_loaders(cfg, loader_fn: Optional[Callable], also_check: Sequence[str] = ()) -> Dict[str, object]:
    """``{"train": ..., "val": ...}`` ("val" only with TRAIN.EVAL_PERIOD > 0); the data of the
    splits ``also_check`` names (the test split a test after training reads) is checked too."""
    splits = ["train", "val"] if cfg.TRAIN.EVAL_PERIOD else ["train"]
    loader_fn = resolve_loader_fn(cfg, loader_fn, splits + list(also_check))
    loaders = {"train": loader_fn(cfg, "train")}
    if cfg.TRAIN.EVAL_PERIOD:
        loaders["val"] = loader_fn(cfg, "val")
    return loaders


def _build_trainer(cfg, device: torch.device, loaders: Dict, finetune: bool,
                   model_fn: Callable = build_model) -> Tuple[Trainer, int]:
    """Model (fine-tuned from TRAIN.CHECKPOINT_FILE when ``finetune`` and it is given), DDP,
    optimizer, schedule, scaler, loss; returns the Trainer (no hooks yet) and its optimizer
    steps per epoch."""
    model = model_fn(cfg).to(device)
    if finetune and cfg.TRAIN.CHECKPOINT_FILE:
        load_for_finetuning(model, cfg.TRAIN.CHECKPOINT_FILE)
    model = wrap_model(model, device, cfg.TRAIN.SYNC_BN)
    optimizer = build_optimizer(model, cfg.SOLVER)
    steps = -(-len(loaders["train"]) // cfg.SOLVER.GRAD_ACCUM_STEPS)  # optimizer steps per epoch
    if steps == 0:
        raise ValueError(f"the train split has fewer videos than one batch (TRAIN.BATCH_SIZE={cfg.TRAIN.BATCH_SIZE})")
    dtype = amp_dtype(cfg.TRAIN.MIXED_PRECISION, device)
    t = Trainer(cfg=cfg, device=device, model=model, optimizer=optimizer,
                scheduler=IterationScheduler(optimizer, lr_function(cfg.SOLVER, steps)),
                scaler=torch.amp.GradScaler("cuda", enabled=dtype == torch.float16),
                criterion=nn.CrossEntropyLoss(label_smoothing=cfg.SOLVER.LABEL_SMOOTHING),
                loaders=loaders, amp_dtype=dtype)
    return t, steps


def resume(t: Trainer, path: str, ckpt: dict) -> Optional[float]:
    """Restores weights, optimizer, schedule, scaler, the epoch count and this rank's RNG from
    checkpoint ``ckpt``, read from ``path`` (written by hooks.Checkpointing.save); returns the
    best value recorded there."""
    load_weights(unwrap(t.model), path, action="resuming from", ckpt=ckpt)
    t.optimizer.load_state_dict(ckpt["optimizer"])
    t.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        t.scaler.load_state_dict(ckpt["scaler"])
    t.epoch = int(ckpt["epoch"])
    rng = ckpt.get("rng") or []
    if len(rng) == get_world_size():
        set_rng_state(rng[get_rank()])
    else:
        logger.warning("%s holds RNG states of %d processes, this run has %d: random streams restart, "
                       "so the resumed run will not repeat the original exactly", path, len(rng), get_world_size())
    return ckpt.get("metrics", {}).get("best")
