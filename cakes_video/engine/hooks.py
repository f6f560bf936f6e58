"""The periodic work of a training run, one :class:`~cakes_video.engine.train.Hook` per job.

Hooks take their settings (periods, paths, writers) when built and the run's objects (model,
loaders, schedule) from the trainer they are called with. At the end of an epoch they share the
epoch's record, so their order matters (engine/setup.py ``default_hooks`` fixes it):
PreciseBN -> Validation (adds ``val_*``) -> MetricLogging (writes the record) -> Checkpointing
(reads ``TRAIN.BEST_METRIC`` from it, saves it in the checkpoint); TrainingCurves plots the
written records once training ends.
"""
import logging
import math
import warnings
from typing import Dict, Optional

import torch
from torch import nn

with warnings.catch_warnings():  # importing fvcore.nn scripts a loss, and torch 2.14 deprecates torch.jit
    warnings.simplefilter("ignore", FutureWarning)
    from fvcore.nn.precise_bn import update_bn_stats as fvcore_update_bn_stats

from ..config.train import BEST_METRICS
from ..utils.distributed import all_gather_objects, all_reduce_sum, barrier, get_world_size, is_dist, is_main, unwrap
from ..utils.io import FileLock
from .checkpointer import Checkpointer, rng_state
from .evaluate import validate
from .monitor import MetricsFileError, MetricWriter
from .plots import plot_training_curves
from .train import Hook, Trainer

logger = logging.getLogger(__name__)


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; training stopped without saving."""


def is_due(epoch: int, period: int, max_epoch: int) -> bool:
    """Whether a job of ``period`` epochs (0: never) runs after ``epoch`` finished epochs: every
    ``period`` epochs and after the last."""
    return period > 0 and (epoch % period == 0 or epoch == max_epoch)


class NonFiniteLossCheck(Hook):
    """Raises NonFiniteLossError when an optimizer step's global loss is NaN or infinite. The
    totals are all-reduced, so every rank raises together, and before the step: nothing is
    updated or saved."""

    def __init__(self, checkpointer: Checkpointer):
        self.checkpointer = checkpointer

    def after_backward(self, trainer: Trainer, totals: torch.Tensor) -> None:
        loss_sum, n = totals[0].item(), totals[1].item()
        if math.isfinite(loss_sum):
            return
        last = self.checkpointer.latest()
        raise NonFiniteLossError(
            f"the training loss is {loss_sum / max(n, 1.0)} at epoch {trainer.epoch + 1}, iteration "
            f"{trainer.scheduler.iteration}: training stopped, nothing was saved. Last good checkpoint: "
            f"{last or 'none (no epoch had finished)'}. "
            "Lower SOLVER.BASE_LR, add SOLVER.WARMUP_EPOCHS or SOLVER.CLIP_GRAD_NORM, or check the data.")


class PreciseBN(Hook):
    """Before each validation (``period``: TRAIN.EVAL_PERIOD), recomputes the BatchNorm running
    statistics over up to ``num_iters`` training batches (TRAIN.PRECISE_BN_ITERS)."""

    def __init__(self, period: int, max_epoch: int, num_iters: int):
        self.period, self.max_epoch, self.num_iters = period, max_epoch, num_iters

    def after_epoch(self, trainer: Trainer, epoch: int, record: Dict) -> None:
        if is_due(epoch, self.period, self.max_epoch):
            update_bn_stats(unwrap(trainer.model), trainer.loaders["train"], self.num_iters, trainer.device)


def update_bn_stats(model: nn.Module, loader, num_iters: int, device: torch.device) -> None:
    """Precise BN: recomputes BatchNorm running statistics over up to ``num_iters`` batches of
    ``loader`` (fvcore), then averages them over ranks so every rank evaluates the same model."""
    num_iters = min(num_iters, len(loader))
    videos = (batch["video"].to(device, non_blocking=True) for batch in loader if len(batch["label"]))
    with torch.no_grad():
        fvcore_update_bn_stats(model, videos, num_iters)
    if is_dist():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
                for buf in (module.running_mean, module.running_var):
                    buf.copy_(all_reduce_sum(buf) / get_world_size())


class Validation(Hook):
    """Every ``period`` epochs (TRAIN.EVAL_PERIOD) and after the last: one pass over the "val"
    loader; adds its global results to the epoch record as ``val_loss``, ``val_top1``,
    ``val_top5``, ``val_num_videos``, ``val_num_failed``."""

    def __init__(self, period: int, max_epoch: int, progress_bar: bool = True):
        self.period, self.max_epoch, self.progress_bar = period, max_epoch, progress_bar

    def after_epoch(self, trainer: Trainer, epoch: int, record: Dict) -> None:
        if is_due(epoch, self.period, self.max_epoch):
            val = validate(trainer.model, trainer.loaders["val"], trainer.device, trainer.criterion,
                           self.progress_bar)
            record.update({f"val_{k}": v for k, v in val.items()})


class MetricLogging(Hook):
    """metrics.jsonl / TensorBoard through ``writer``: a ``train_iter`` record every
    ``log_period`` optimizer steps (TRAIN.LOG_PERIOD) and an ``epoch`` record per epoch, which
    is also logged as one line; closes the writer at the end."""

    def __init__(self, writer: MetricWriter, log_period: int, max_epoch: int):
        self.writer, self.log_period, self.max_epoch = writer, log_period, max_epoch

    def after_step(self, trainer: Trainer, record: Dict) -> None:
        if record["iteration"] % self.log_period == 0:
            self.writer.write("train_iter", record["iteration"], record)

    def after_epoch(self, trainer: Trainer, epoch: int, record: Dict) -> None:
        self.writer.write("epoch", trainer.scheduler.iteration, record)
        summary = ", ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}"
                            for k, v in record.items() if k != "epoch")
        logger.info("epoch %d/%d: %s", epoch, self.max_epoch, summary)

    def after_train(self, trainer: Trainer) -> None:
        self.writer.close()


class Checkpointing(Hook):
    """Tracks the best ``best_metric`` (TRAIN.BEST_METRIC: ``val_top1`` higher is better,
    ``train_loss`` lower) and saves a checkpoint every ``period`` epochs
    (TRAIN.CHECKPOINT_PERIOD), after the last, and at every new best (then best.pyth too).

    ``best`` and ``last_checkpoint`` start from the resumed checkpoint, if any;
    ``last_checkpoint`` is set on rank 0 only (it writes the files).
    """

    def __init__(self, checkpointer: Checkpointer, period: int, max_epoch: int, best_metric: str,
                 best: Optional[float] = None, last_checkpoint: Optional[str] = None):
        self.checkpointer, self.period, self.max_epoch = checkpointer, period, max_epoch
        self.best_metric, self.best, self.last_checkpoint = best_metric, best, last_checkpoint

    def after_epoch(self, trainer: Trainer, epoch: int, record: Dict) -> None:
        is_best = self._update_best(record)
        if is_due(epoch, self.period, self.max_epoch) or is_best:
            self.save(trainer, record, is_best)

    def _update_best(self, record: Dict) -> bool:
        value = record.get(self.best_metric)
        if value is None or not math.isfinite(value):
            return False
        higher_is_better = BEST_METRICS[self.best_metric]
        better = self.best is None or (value > self.best if higher_is_better else value < self.best)
        if better:
            self.best = value
        return better

    def save(self, trainer: Trainer, metrics: Dict, is_best: bool) -> None:
        """Checkpoint after ``trainer.epoch`` epochs, written by rank 0 with every rank's RNG
        state (a collective: every rank calls it). engine/setup.py ``resume`` reads it back."""
        rng = all_gather_objects(rng_state())
        if is_main():
            t = trainer
            fields = {"optimizer": t.optimizer.state_dict(), "scheduler": t.scheduler.state_dict(),
                      "scaler": t.scaler.state_dict(), "iteration": t.scheduler.iteration, "cfg": t.cfg.dump(),
                      "metrics": {**metrics, "best": self.best, "best_metric": self.best_metric}, "rng": rng}
            self.last_checkpoint = self.checkpointer.save(t.epoch, unwrap(t.model).state_dict(), fields, is_best)
            logger.info("saved %s%s", self.last_checkpoint, " (new best)" if is_best else "")
        barrier()


class ReleaseLock(Hook):
    """Releases the run's OUTPUT_DIR lock (engine/rundir.py; None off rank 0) when training
    ends, also when it fails: the last hook."""

    def __init__(self, lock: Optional[FileLock]):
        self.lock = lock

    def after_train(self, trainer: Trainer) -> None:
        if self.lock is not None:
            self.lock.release()


class TrainingCurves(Hook):
    """At the end of training (also one that failed), rank 0 plots ``output_dir``'s metrics.jsonl
    to ``output_dir/training_curves.png`` (:func:`~.plots.plot_training_curves`). A plot that
    cannot be made is a warning: the run's checkpoints and metrics are what count."""

    def __init__(self, output_dir: str):
        self.output_dir = output_dir

    def after_train(self, trainer: Trainer) -> None:
        if not is_main():
            return
        try:
            logger.info("training curves: %s", plot_training_curves(self.output_dir))
        except (MetricsFileError, OSError) as e:
            logger.warning("no training curves: %s", e)
