"""Builds a :class:`~cakes_video.engine.train.Trainer` from a config: checks first, then
model, weights (resume or fine-tune), DDP, optimizer, schedule, loaders, writers."""
import logging
import os
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from ..models import build_model
from .checkpointer import Checkpointer, load_for_finetuning
from ..utils.distributed import get_world_size, is_main, wrap_model
from .monitor import MetricWriter, setup_logging
from .runtime import amp_dtype, prepare_run, resolve_loader_fn
from ..solver import IterationScheduler, build_optimizer, lr_function
from .train import Hook, Trainer, resume

logger = logging.getLogger(__name__)


def write_config(cfg) -> None:
    """OUTPUT_DIR/config.yaml: the full merged config, for test_net, predict and load_model."""
    if is_main():
        os.makedirs(cfg.OUTPUT_DIR, exist_ok=True)
        with open(os.path.join(cfg.OUTPUT_DIR, "config.yaml"), "w") as f:
            f.write(cfg.dump())


def build_trainer(cfg, loader_fn: Optional[Callable] = None, hooks: Sequence[Hook] = ()) -> Trainer:
    """Everything checked and built; resumed from OUTPUT_DIR/checkpoints when TRAIN.AUTO_RESUME
    finds a checkpoint, else started from TRAIN.CHECKPOINT_FILE when given."""
    # TEST.BATCH_SIZE too when tools/train_net.py will test afterwards: fail now, not after training
    will_test = cfg.TEST.ENABLE and bool(cfg.DATA.TEST_LIST)
    device = prepare_run(cfg, ["TRAIN.BATCH_SIZE"] + (["TEST.BATCH_SIZE"] if will_test else []))
    setup_logging(cfg.OUTPUT_DIR)
    loader_fn = resolve_loader_fn(cfg, loader_fn, ["train", "val"] if cfg.TRAIN.EVAL_PERIOD else ["train"])
    loaders = {"train": loader_fn(cfg, "train")}
    if cfg.TRAIN.EVAL_PERIOD:
        loaders["val"] = loader_fn(cfg, "val")
    checkpointer = Checkpointer(cfg.OUTPUT_DIR, cfg.TRAIN.CHECKPOINT_KEEP_LAST)
    resume_path = checkpointer.latest() if cfg.TRAIN.AUTO_RESUME else None

    model = build_model(cfg).to(device)
    if resume_path is None and cfg.TRAIN.CHECKPOINT_FILE:
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
                loaders=loaders, checkpointer=checkpointer,
                writer=MetricWriter(cfg.OUTPUT_DIR, cfg.TRAIN.TENSORBOARD), amp_dtype=dtype, hooks=tuple(hooks))
    if resume_path:
        resume(t, resume_path)
    write_config(cfg)  # last: a run refused on its data, weights or batch size leaves config.yaml alone
    logger.info("training %s on %s x%d: %d optimizer steps per epoch, epochs %d..%d",
                cfg.MODEL.ARCH, device, get_world_size(), steps, t.epoch + 1, cfg.SOLVER.MAX_EPOCH)
    return t
