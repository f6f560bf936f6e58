"""Training checkpoints on top of checkpoint/schema.py: what goes in, keep-last-N, best,
auto-resume, fine-tuning with a new head, and the RNG states exact resume needs.

Files live in ``OUTPUT_DIR/checkpoints/``: ``checkpoint_epoch_00003.pyth`` (after 3 epochs)
and ``best.pyth``. Only rank 0 writes.
"""
import glob
import logging
import os
import random
import re
import shutil
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch
from torch import nn

from ..checkpoint.schema import CheckpointError, diff_state, load_checkpoint, load_model_state, save_checkpoint
from ..utils.io import replace_atomically
from ..zoo import resolve_checkpoint

logger = logging.getLogger(__name__)
HEAD_PREFIX = "head."


def rng_state() -> Dict:
    """torch / CUDA / numpy / python RNG states, all as tensors or numbers (weights_only-safe)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state = {"torch": torch.get_rng_state(),
             "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                       "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
             "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64),
                        "gauss_next": gauss_next}}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict) -> None:
    """Inverse of :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    p = state["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def key_report(model: nn.Module, state: Dict[str, torch.Tensor]) -> str:
    """One line naming the missing / unexpected / mis-shaped keys of ``state`` (or "none")."""
    missing, unexpected, misshaped = diff_state(model, state)
    parts = [f"{title}: {', '.join(keys) if keys else 'none'}"
             for title, keys in (("missing keys", missing), ("unexpected keys", unexpected),
                                 ("mis-shaped keys", misshaped))]
    return "; ".join(parts)


def load_weights(model: nn.Module, path: str, action: str = "loading weights from",
                 ckpt: Optional[dict] = None) -> dict:
    """Strictly loads the model weights of checkpoint ``path`` (test, predict, resume; ``ckpt``:
    the checkpoint when already read); returns the checkpoint. Logs ``"<action> <path> (<key report>)"``."""
    ckpt = load_checkpoint(path) if ckpt is None else ckpt
    logger.info("%s %s (%s)", action, path, key_report(model, ckpt["model"]))
    load_model_state(model, ckpt["model"], source=path)
    return ckpt


def load_for_finetuning(model: nn.Module, path: str) -> None:
    """Loads ``path`` (a project checkpoint or converted weights, or ``"zoo:NAME"``: a zoo
    model's) to start fine-tuning.

    ``head.*`` tensors that are absent or of another shape (another number of classes) are
    dropped and the model's freshly initialised head is kept; anything else that does not fit
    is an error. Only the weights are taken: optimizer, epoch and RNG start afresh.
    """
    path = resolve_checkpoint(path, "TRAIN.CHECKPOINT_FILE")
    state = dict(load_checkpoint(path)["model"])
    own = model.state_dict()
    logger.info("fine-tuning from %s (%s)", path, key_report(model, state))
    head_fits = all(k in state and state[k].shape == v.shape for k, v in own.items() if k.startswith(HEAD_PREFIX))
    if not head_fits:
        dropped = sorted(k for k in state if k.startswith(HEAD_PREFIX))
        shapes = {k: tuple(state[k].shape) for k in dropped}
        for k in dropped:
            del state[k]
        logger.warning("the head does not fit the checkpoint (checkpoint %s, model MODEL.NUM_CLASSES=%s): "
                       "head re-initialised, %d checkpoint tensors dropped", shapes,
                       _num_classes(model), len(dropped))
    load_model_state(model, state, source=path, allow_missing=[] if head_fits else [HEAD_PREFIX])


def _num_classes(model: nn.Module) -> Optional[int]:
    fc = getattr(getattr(model, "head", None), "fc", None)
    return getattr(fc, "out_features", None)


class Checkpointer:
    """Saves and finds training checkpoints under ``output_dir/checkpoints``."""

    def __init__(self, output_dir: str, keep_last: int = 3):
        self.dir = os.path.join(output_dir, "checkpoints")
        self.keep_last = keep_last

    def epoch_path(self, epoch: int) -> str:
        return os.path.join(self.dir, f"checkpoint_epoch_{epoch:05d}.pyth")

    @property
    def best_path(self) -> str:
        return os.path.join(self.dir, "best.pyth")

    def epoch_checkpoints(self) -> List[str]:
        """Epoch checkpoints, oldest first."""
        paths = glob.glob(os.path.join(self.dir, "checkpoint_epoch_*.pyth"))
        return sorted(p for p in paths if re.search(r"checkpoint_epoch_\d+\.pyth$", p))

    def latest(self) -> Optional[str]:
        paths = self.epoch_checkpoints()
        return paths[-1] if paths else None

    def newest_readable(self) -> Optional[Tuple[str, dict]]:
        """``(path, checkpoint)`` of the newest epoch checkpoint that can be read; newer ones that
        cannot (a damaged disk, a file truncated by hand) are skipped, each with a warning. None
        when there is no checkpoint; CheckpointError when none of them reads."""
        skipped = []
        for path in reversed(self.epoch_checkpoints()):
            try:
                ckpt = load_checkpoint(path)
            except CheckpointError as e:
                logger.warning("skipping an unreadable checkpoint: %s", str(e).splitlines()[0])
                skipped.append(os.path.basename(path))
                continue
            if skipped:
                logger.warning("resuming from %s, the newest readable checkpoint (skipped: %s)", path,
                               ", ".join(skipped))
            return path, ckpt
        if skipped:
            raise CheckpointError(f"none of the {len(skipped)} checkpoints in {self.dir} can be read: move them "
                                  "away to start afresh, or set TRAIN.AUTO_RESUME False")
        return None

    def for_testing(self) -> Optional[str]:
        """best.pyth when present, else the newest epoch checkpoint, else None."""
        return self.best_path if os.path.isfile(self.best_path) else self.latest()

    def save(self, epoch: int, model_state: Dict, fields: Dict, is_best: bool) -> str:
        """Writes the checkpoint after ``epoch`` epochs (atomically), updates best.pyth, prunes."""
        path = save_checkpoint(self.epoch_path(epoch), model_state, epoch=epoch, **fields)
        if is_best:  # atomic like the save itself: a crash keeps the previous best.pyth
            replace_atomically(self.best_path, lambda tmp: shutil.copyfile(path, tmp))
        self._prune()
        return path

    def _prune(self) -> None:
        if self.keep_last <= 0:
            return
        for old in self.epoch_checkpoints()[:-self.keep_last]:
            os.remove(old)
