"""Videos that fail to decode: how one is recorded, how an item without its video looks, and
the budgets that stop a run.

A failed video never stops a batch: it is logged once per process, listed in the batch's
``"failed"`` (``{"path", "error"}`` entries), and counted. Training replaces it by another
random video (``DATA.MAX_RETRIES``); validation and testing drop it. A run stops when more
than ``DATA.MAX_FAILED_FRACTION`` of an epoch's (or a test's) videos failed: training as soon as
the epoch is sure to end over it (:func:`check_failures_so_far`), not after the epoch's work.
"""
import logging
from typing import Dict, List, Tuple

import torch

from .catalog import VideoRecord
from .decoding import DecodeError, VideoMeta
from .decoding_base import truncation

logger = logging.getLogger(__name__)

# Paths already logged as undecodable, or as shorter than their header, by this process (each
# DataLoader worker has its own).
_LOGGED_BAD_PATHS = set()
_LOGGED_SHORT_PATHS = set()


class DecodeRetriesExhausted(RuntimeError):
    """A training item met only undecodable videos, retries included."""


class TooManyFailedVideos(RuntimeError):
    """More videos failed to decode in an epoch than DATA.MAX_FAILED_FRACTION allows."""


def failure(path: str, error: DecodeError) -> Dict[str, str]:
    """The ``{"path", "error"}`` entry of a batch's "failed" list; warns about the undecodable
    video the first time this process meets it."""
    if path not in _LOGGED_BAD_PATHS:
        _LOGGED_BAD_PATHS.add(path)
        logger.warning("cannot decode: %s", error)  # a DecodeError's message starts with the path
    return {"path": path, "error": str(error)}


def warn_if_short(meta: VideoMeta) -> None:
    """Warns, the first time this process meets it, about a video that holds clearly fewer frames
    than its header claims (:func:`~.decoding_base.truncation`): it is used, sampled from the frames
    it holds, but is probably a cut-off download (tools/check_dataset.py lists them all)."""
    short = truncation(meta, meta.claimed_duration)
    if short and meta.path not in _LOGGED_SHORT_PATHS:
        _LOGGED_SHORT_PATHS.add(meta.path)
        logger.warning("%s: shorter than its header: %s; used as it is", meta.path, short)


def failed_item(record: VideoRecord, index: int, failures: List[Dict]) -> Dict:
    """An item whose video could not be decoded: empty "video", kept out of the batch tensors."""
    return {"video": torch.empty(0), "label": record.label, "index": index,
            "video_id": record.video_id, "failed": failures}


def batch_counts(batch: Dict) -> Tuple[int, int]:
    """(videos that failed, decode attempts) of one batch dict: the counts the failure budget reads."""
    failed = len(batch.get("failed", ()))
    return failed, len(batch["label"]) + failed


def check_failure_fraction(num_failed: int, num_seen: int, max_fraction: float, split: str = "train") -> None:
    """Warns when videos failed; raises TooManyFailedVideos when ``num_failed / num_seen > max_fraction``.

    ``num_seen`` counts decode attempts (:func:`batch_counts`).
    Called with global counts, so every rank decides the same.
    """
    if num_failed:
        logger.warning("%d of %d videos of the %s split could not be decoded this epoch", num_failed, num_seen, split)
    if num_seen > 0 and num_failed / num_seen > max_fraction:
        raise TooManyFailedVideos(
            f"{num_failed} of {num_seen} videos ({num_failed / num_seen:.1%}) failed to decode, more than "
            f"DATA.MAX_FAILED_FRACTION={max_fraction}; the log names each bad file")


def check_failures_so_far(num_failed: int, num_items: int, max_fraction: float, epoch: int) -> None:
    """Raises TooManyFailedVideos once ``num_failed`` failures (global, so far) doom a training
    epoch of ``num_items`` items. Each failure costs one more decode attempt (a retry), so the
    epoch ends with ``failed / (num_items + failed)`` at least ``num_failed / (num_items +
    num_failed)``: the end-of-epoch check would refuse it, so stop now (earlier epochs' checkpoints stay)."""
    if num_items > 0 and num_failed / (num_items + num_failed) > max_fraction:
        raise TooManyFailedVideos(
            f"{num_failed} videos failed to decode by now in epoch {epoch}, more than DATA.MAX_FAILED_FRACTION="
            f"{max_fraction} of its {num_items} allows: stopped before the epoch's end (checkpoints of earlier "
            "epochs, if any, are kept); the log names each bad file")
