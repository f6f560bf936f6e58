"""The training loop in small steps: set up -> per epoch (steps -> validation -> checkpoint).

``train(cfg)`` is all a tool calls. Behaviour that tests or tools need to add (stopping,
crashing on purpose, extra logging) goes in :class:`Hook` objects, not in branches here.
"""
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch
from torch import nn

from ..datasets.loader import set_loader_epoch
from .checkpointer import Checkpointer, load_weights, rng_state, set_rng_state
from ..utils.distributed import (all_gather_objects, all_reduce_sum, barrier, get_rank, get_world_size, is_main,
                          unwrap)
from ..utils.metrics import topk_correct
from .evaluate import validate
from .monitor import MetricWriter, progress
from ..datasets.failures import check_failure_fraction
from .runtime import update_bn_stats

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped without saving."""


class Hook:
    """Extension points of the loop; override what you need."""

    def before_epoch(self, trainer: "Trainer", epoch: int) -> None:
        pass

    def after_step(self, trainer: "Trainer", record: Dict) -> None:
        pass

    def after_epoch(self, trainer: "Trainer", epoch: int, stats: Dict) -> None:
        pass


@dataclass
class Trainer:
    """Everything the loop touches. ``epoch`` counts finished epochs."""
    cfg: object
    device: torch.device
    model: nn.Module  # DDP-wrapped when distributed
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    loaders: Dict[str, object]
    checkpointer: Checkpointer
    writer: MetricWriter
    amp_dtype: Optional[torch.dtype] = None
    hooks: Sequence[Hook] = ()
    epoch: int = 0
    best: Optional[float] = None
    last_checkpoint: Optional[str] = None
    history: List[Dict] = field(default_factory=list)


def train(cfg, loader_fn: Optional[Callable] = None, hooks: Sequence[Hook] = ()) -> Dict:
    """Trains ``cfg`` to SOLVER.MAX_EPOCH (resuming from OUTPUT_DIR when possible).

    ``loader_fn(cfg, split) -> DataLoader`` defaults to ``datasets.loader.build_loader``.
    Returns ``{"epochs", "iteration", "best", "last_checkpoint", "best_checkpoint", "history"}``.
    """
    from .setup import build_trainer  # setup builds a Trainer, so it imports this module

    t = build_trainer(cfg, loader_fn, hooks)
    max_epoch = cfg.SOLVER.MAX_EPOCH
    if t.epoch >= max_epoch:
        logger.info("already trained for %d epochs (SOLVER.MAX_EPOCH); nothing to do", t.epoch)
    while t.epoch < max_epoch:
        for hook in t.hooks:
            hook.before_epoch(t, t.epoch)
        stats = run_epoch(t, t.epoch)
        end_epoch(t, stats)
        for hook in t.hooks:
            hook.after_epoch(t, t.epoch, stats)
    t.writer.close()
    return {"epochs": t.epoch, "iteration": t.scheduler.iteration, "best": t.best,
            "last_checkpoint": t.last_checkpoint, "best_checkpoint": t.checkpointer.for_testing(),
            "history": t.history}


def run_epoch(t: Trainer, epoch: int) -> Dict:
    """One pass over the train loader; returns the epoch's global ``loss``, ``top1``, ``num_failed``."""
    loader, accum = t.loaders["train"], t.cfg.SOLVER.GRAD_ACCUM_STEPS
    set_loader_epoch(loader, epoch)  # order and worker seeds follow (SEED, epoch): resumable
    t.model.train()
    num_batches, start = len(loader), time.perf_counter()
    epoch_sums = torch.zeros(3, dtype=torch.float64)  # loss*n, n, top-1 hits (global, host)
    step_sums = torch.zeros(3, dtype=torch.float64, device=t.device)  # this rank's, this step's
    failed = seen = 0
    bar = progress(loader, f"epoch {epoch + 1}/{t.cfg.SOLVER.MAX_EPOCH}", num_batches, t.cfg.TRAIN.PROGRESS_BAR)
    tic = time.perf_counter()
    for i, batch in enumerate(bar):
        failed += len(batch.get("failed", ()))
        seen += len(batch["label"]) + len(batch.get("failed", ()))
        group_start = (i // accum) * accum
        group = min(accum, num_batches - group_start)  # the last group of an epoch may be short
        is_last = i - group_start == group - 1
        step_sums += forward_backward(t, batch, 1.0 / group, sync=is_last)
        if is_last:
            totals = global_step_sums(t, step_sums, epoch)
            lr = optimizer_step(t)
            record = _step_record(t, epoch, totals, lr, time.perf_counter() - tic)
            epoch_sums += totals
            step_sums.zero_()
            _log_step(t, record, bar)
            tic = time.perf_counter()
    failed, seen = (int(v) for v in all_reduce_sum(torch.tensor([failed, seen], dtype=torch.float64)).tolist())
    check_failure_fraction(failed, seen, t.cfg.DATA.MAX_FAILED_FRACTION, "train")
    n = max(epoch_sums[1].item(), 1.0)
    return {"loss": epoch_sums[0].item() / n, "top1": 100.0 * epoch_sums[2].item() / n,
            "num_failed": failed, "time": time.perf_counter() - start}


def _autocast(t: Trainer):
    if t.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=t.device.type, dtype=t.amp_dtype)


def forward_backward(t: Trainer, batch: Dict, loss_scale: float, sync: bool) -> torch.Tensor:
    """Forward and backward of one (micro-)batch; returns this rank's ``[loss*n, n, top-1 hits]``
    (float64 on ``t.device``: no host sync, no collective here).

    Gradients of micro-batches before the last of a group are not all-reduced (``no_sync``).
    """
    if len(batch["label"]) == 0:
        # Every video of the batch failed (train loaders retry, so this is rare): nothing to learn.
        # Under DDP the other ranks would wait in backward, hence the clear error.
        if get_world_size() > 1:
            raise RuntimeError("a training batch on this rank is empty (all its videos failed to decode)")
        return torch.zeros(3, dtype=torch.float64, device=t.device)
    video = batch["video"].to(t.device, non_blocking=True)
    labels = batch["label"].to(t.device, non_blocking=True)
    ddp = isinstance(t.model, nn.parallel.DistributedDataParallel)
    with (t.model.no_sync() if ddp and not sync else contextlib.nullcontext()):
        with _autocast(t):
            logits = t.model(video)
        loss = t.criterion(logits.float(), labels)
        t.scaler.scale(loss * loss_scale).backward()
    hits = topk_correct(logits.detach(), labels, (1,))[1]
    n = labels.numel()
    return torch.stack([loss.detach().double() * n, hits.new_full((), n, dtype=torch.float64), hits.sum().double()])


def global_step_sums(t: Trainer, step_sums: torch.Tensor, epoch: int) -> torch.Tensor:
    """All ranks' ``[loss*n, n, top-1 hits]`` of one optimizer step, on the host (one collective,
    one transfer per step). Raises NonFiniteLossError on every rank together when the global
    loss is not finite: called after the backward passes, before the step, so nothing is
    updated or saved."""
    totals = all_reduce_sum(step_sums).cpu()
    loss_sum, n = totals[0].item(), totals[1].item()
    if not math.isfinite(loss_sum):
        _stop_on_bad_loss(t, loss_sum / max(n, 1.0), epoch)
    return totals


def _stop_on_bad_loss(t: Trainer, value: float, epoch: int) -> None:
    last = t.checkpointer.latest()
    raise NonFiniteLossError(
        f"the training loss is {value} at epoch {epoch + 1}, iteration {t.scheduler.iteration}: training "
        f"stopped, nothing was saved. Last good checkpoint: {last or 'none (no epoch had finished)'}. "
        "Lower SOLVER.BASE_LR, add SOLVER.WARMUP_EPOCHS or SOLVER.CLIP_GRAD_NORM, or check the data.")


def optimizer_step(t: Trainer) -> float:
    """LR for this iteration, optional clipping, the step; returns the LR used."""
    lr = t.scheduler.apply()
    clip = t.cfg.SOLVER.CLIP_GRAD_NORM
    if clip > 0:
        t.scaler.unscale_(t.optimizer)  # clip the true gradients, not the fp16-scaled ones
        nn.utils.clip_grad_norm_(t.model.parameters(), clip)
    t.scaler.step(t.optimizer)
    t.scaler.update()
    t.optimizer.zero_grad(set_to_none=True)
    t.scheduler.step()
    return lr


def _step_record(t: Trainer, epoch: int, sums: torch.Tensor, lr: float, seconds: float) -> Dict:
    n = max(sums[1].item(), 1.0)
    return {"epoch": epoch + 1, "iteration": t.scheduler.iteration, "loss": sums[0].item() / n,
            "top1": 100.0 * sums[2].item() / n, "lr": lr, "time": seconds}


def _log_step(t: Trainer, record: Dict, bar) -> None:
    it = record["iteration"]
    if it % t.cfg.TRAIN.LOG_PERIOD == 0:
        t.writer.write("train_iter", it, record)
    if hasattr(bar, "set_postfix"):
        bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.4g}")
    for hook in t.hooks:
        hook.after_step(t, record)


def end_epoch(t: Trainer, train_stats: Dict) -> None:
    """Validation (when due), metric lines, best tracking and checkpointing after an epoch."""
    cfg, done = t.cfg, t.epoch + 1
    it = t.scheduler.iteration
    record = {"epoch": done, **{f"train_{k}": v for k, v in train_stats.items()}}
    if cfg.TRAIN.EVAL_PERIOD and (done % cfg.TRAIN.EVAL_PERIOD == 0 or done == cfg.SOLVER.MAX_EPOCH):
        if cfg.TRAIN.PRECISE_BN:
            update_bn_stats(unwrap(t.model), t.loaders["train"], cfg.TRAIN.PRECISE_BN_ITERS, t.device)
        val = validate(t.model, t.loaders["val"], t.device, t.criterion, cfg.TRAIN.PROGRESS_BAR)
        record.update({f"val_{k}": v for k, v in val.items()})
    t.writer.write("epoch", it, record)
    summary = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                        for k, v in record.items() if k != "epoch")
    logger.info("epoch %d/%d: %s", done, cfg.SOLVER.MAX_EPOCH, summary)
    t.history.append(record)
    is_best = _update_best(t, record)
    t.epoch = done
    if done % cfg.TRAIN.CHECKPOINT_PERIOD == 0 or done == cfg.SOLVER.MAX_EPOCH or is_best:
        save(t, record, is_best)


def _update_best(t: Trainer, record: Dict) -> bool:
    key = t.cfg.TRAIN.BEST_METRIC
    value = record.get(key)
    if value is None or not math.isfinite(value):
        return False
    better = t.best is None or (value > t.best if key == "val_top1" else value < t.best)
    if better:
        t.best = value
    return better


def save(t: Trainer, metrics: Dict, is_best: bool) -> None:
    """Checkpoint after ``t.epoch`` epochs, written by rank 0 with every rank's RNG state."""
    rng = all_gather_objects(rng_state())  # collective: every rank calls it
    if is_main():
        fields = {"optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
                  "scaler": t.scaler.state_dict(), "iteration": t.scheduler.iteration, "cfg": t.cfg.dump(),
                  "metrics": {**metrics, "best": t.best, "best_metric": t.cfg.TRAIN.BEST_METRIC}, "rng": rng}
        t.last_checkpoint = t.checkpointer.save(t.epoch, unwrap(t.model).state_dict(), fields, is_best)
        logger.info("saved %s%s", t.last_checkpoint, " (new best)" if is_best else "")
    barrier()


def resume(t: Trainer, path: str) -> None:
    """Restores weights, optimizer, schedule, scaler, counters and this rank's RNG from ``path``."""
    ckpt = load_weights(unwrap(t.model), path, action="resuming from")
    t.optimizer.load_state_dict(ckpt["optimizer"])
    t.scheduler.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        t.scaler.load_state_dict(ckpt["scaler"])
    t.epoch, t.best, t.last_checkpoint = int(ckpt["epoch"]), ckpt.get("metrics", {}).get("best"), path
    rng = ckpt.get("rng") or []
    if len(rng) == get_world_size():
        set_rng_state(rng[get_rank()])
    else:
        logger.warning("%s holds RNG states of %d processes, this run has %d: random streams restart, "
                       "so the resumed run will not repeat the original exactly", path, len(rng), get_world_size())

