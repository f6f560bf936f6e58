"""The training loop and nothing else: the :class:`Trainer` state, its steps, and the
:class:`Hook` points where everything periodic plugs in (engine/hooks.py: validation,
metric lines, checkpoints, the NaN stop; engine/setup.py builds the trainer and orders them).

One run::

    hook.before_train(trainer)
    while trainer.epoch < SOLVER.MAX_EPOCH:
        hook.before_epoch(trainer, trainer.epoch)
        for each optimizer step of the epoch (GRAD_ACCUM_STEPS forward/backward passes):
            hook.after_backward(trainer, totals)      # gradients ready, nothing updated yet
            (optimizer step)
            hook.after_step(trainer, record)
        trainer.epoch += 1; trainer.history.append(record)
        hook.after_epoch(trainer, trainer.epoch, record)  # hooks complete the shared record
    hook.after_train(trainer)                         # also when the loop raises
"""
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..datasets.failures import batch_counts, check_failure_fraction, check_failures_so_far
from ..datasets.loader import set_loader_epoch
from ..utils.distributed import all_reduce_sum, get_world_size
from ..utils.metrics import topk_correct
from .monitor import progress

logger = logging.getLogger(__name__)


class Hook:
    """Extension points of the loop; override what you need. Hooks run in list order at every
    point; an exception raised by a hook stops the run (``after_train`` still runs)."""

    def before_train(self, trainer: "Trainer") -> None:
        """Once, before the first epoch (after any resume)."""

    def before_epoch(self, trainer: "Trainer", epoch: int) -> None:
        """Before epoch ``epoch + 1``; ``epoch`` is the number of finished epochs."""

    def after_backward(self, trainer: "Trainer", totals: torch.Tensor) -> None:
        """After the backward passes of one optimizer step, before the step itself (raising here
        leaves the weights and the optimizer untouched). ``totals``: float64 ``[3]`` on the host,
        all ranks' ``[loss*n, n, top-1 hits]`` of the step, the same on every rank."""

    def after_step(self, trainer: "Trainer", record: Dict) -> None:
        """After one optimizer step; ``record``: ``epoch`` (1-based), ``iteration`` (steps done),
        ``loss``, ``top1`` (percent), ``lr``, ``time`` (seconds the step took)."""

    def after_epoch(self, trainer: "Trainer", epoch: int, record: Dict) -> None:
        """After an epoch; ``epoch`` (== ``trainer.epoch``) counts the finished epochs.
        ``record`` is the epoch's shared record, also in ``trainer.history``: ``epoch`` and
        ``train_loss``, ``train_top1``, ``train_num_failed``, ``train_time``; hooks earlier in
        the list add keys (validation adds ``val_*``) that later hooks read."""

    def after_train(self, trainer: "Trainer") -> None:
        """Once at the end, also when the loop or a hook raised."""


@dataclass
class Trainer:
    """Everything the loop touches. ``epoch`` counts finished epochs; ``history`` holds the
    epoch records, oldest first."""
    cfg: object
    device: torch.device
    model: nn.Module  # DDP-wrapped when distributed
    optimizer: torch.optim.Optimizer
    scheduler: object  # solver.IterationScheduler: sets the LR per optimizer step
    scaler: torch.amp.GradScaler
    criterion: nn.Module
    loaders: Dict[str, object]  # "train", and "val" when validation is on
    amp_dtype: Optional[torch.dtype] = None
    hooks: Sequence[Hook] = ()
    epoch: int = 0
    history: List[Dict] = field(default_factory=list)

    def run(self) -> None:
        """Trains from ``self.epoch`` to SOLVER.MAX_EPOCH, calling the hooks."""
        max_epoch = self.cfg.SOLVER.MAX_EPOCH
        if self.epoch >= max_epoch:
            logger.info("already trained for %d epochs (SOLVER.MAX_EPOCH); nothing to do", self.epoch)
        try:
            self.call_hooks("before_train")
            while self.epoch < max_epoch:
                self.call_hooks("before_epoch", self.epoch)
                stats = run_epoch(self, self.epoch)
                self.epoch += 1
                record = {"epoch": self.epoch, **{f"train_{k}": v for k, v in stats.items()}}
                self.history.append(record)
                self.call_hooks("after_epoch", self.epoch, record)
        finally:
            self.call_hooks("after_train")

    def call_hooks(self, point: str, *args) -> None:
        """``hook.<point>(self, *args)`` for every hook, in order."""
        for hook in self.hooks:
            getattr(hook, point)(self, *args)


def run_epoch(t: Trainer, epoch: int) -> Dict:
    """One pass over the train loader; returns the epoch's global ``loss``, ``top1``,
    ``num_failed`` and its ``time`` (seconds). Failed videos are counted at every optimizer step
    and the epoch stops as soon as they doom it (``failures.check_failures_so_far``)."""
    loader, accum = t.loaders["train"], t.cfg.SOLVER.GRAD_ACCUM_STEPS
    set_loader_epoch(loader, epoch)  # order and worker seeds follow (SEED, epoch): resumable
    t.model.train()
    num_batches, start = len(loader), time.perf_counter()
    num_items = num_batches * loader.batch_size * get_world_size()  # global; train batches are full
    epoch_sums = torch.zeros(3, dtype=torch.float64)  # loss*n, n, top-1 hits (global, host)
    step_sums = torch.zeros(3, dtype=torch.float64, device=t.device)  # this rank's, this step's
    step_counts = [0, 0]  # this rank's failed videos and decode attempts, this step's
    failed = seen = 0  # global, so far
    bar = progress(loader, f"epoch {epoch + 1}/{t.cfg.SOLVER.MAX_EPOCH}", num_batches, t.cfg.TRAIN.PROGRESS_BAR)
    tic = time.perf_counter()
    for i, batch in enumerate(bar):
        step_counts = [a + b for a, b in zip(step_counts, batch_counts(batch))]
        group_start = (i // accum) * accum
        group = min(accum, num_batches - group_start)  # the last group of an epoch may be short
        is_last = i - group_start == group - 1
        step_sums += forward_backward(t, batch, 1.0 / group, sync=is_last)
        if is_last:
            totals = global_step_sums(torch.cat([step_sums, step_sums.new_tensor(step_counts)]))
            failed, seen = failed + int(totals[3]), seen + int(totals[4])
            check_failures_so_far(failed, num_items, t.cfg.DATA.MAX_FAILED_FRACTION, epoch + 1)
            totals = totals[:3]
            t.call_hooks("after_backward", totals)
            lr = optimizer_step(t)
            record = _step_record(t, epoch, totals, lr, time.perf_counter() - tic)
            epoch_sums += totals
            step_sums.zero_()
            step_counts = [0, 0]
            if hasattr(bar, "set_postfix"):
                bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.4g}")
            t.call_hooks("after_step", record)
            tic = time.perf_counter()
    check_failure_fraction(failed, seen, t.cfg.DATA.MAX_FAILED_FRACTION, "train")
    n = max(epoch_sums[1].item(), 1.0)
    return {"loss": epoch_sums[0].item() / n, "top1": 100.0 * epoch_sums[2].item() / n,
            "num_failed": failed, "time": time.perf_counter() - start}


def _autocast(t: Trainer):
    if t.amp_dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=t.device.type, dtype=t.amp_dtype)


def forward_backward(t: Trainer, batch: Dict, loss_scale: float, sync: bool) -> torch.Tensor:
    """Forward and backward of one (micro-)batch (``video`` ``[B, C, T, H, W]``, ``label``
    ``[B]``); returns this rank's ``[loss*n, n, top-1 hits]`` (float64 ``[3]`` on ``t.device``:
    no host sync, no collective here).

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


def global_step_sums(step_sums: torch.Tensor) -> torch.Tensor:
    """All ranks' sums of one optimizer step (``[loss*n, n, top-1 hits, failed videos, decode
    attempts]``): float64 on the host (one collective, one transfer per step)."""
    return all_reduce_sum(step_sums).cpu()


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
