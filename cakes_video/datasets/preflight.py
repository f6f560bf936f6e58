"""What a split's annotations and files can tell before any video is decoded, checked at the start
of a run (``engine.runtime.preflight_data``) so that no epoch is spent before a data error shows.

Building the split (``registry.build_dataset``) already refuses a label outside
``MODEL.NUM_CLASSES`` at its ``file:line``, a relative path that leaves ``DATA.ROOT``, and a
split without videos. On top of that, :func:`check_split` compares the class names with
``MODEL.NUM_CLASSES`` and looks for every listed file (a ``stat`` each, no decoding):

- none of them exists: ``DATA.ROOT`` is wrong (a typo, a missing mount), ConfigError naming
  the root and the first missing path;
- more are missing than ``DATA.MAX_FAILED_FRACTION`` allows: TooManyFailedVideos now, not
  after an epoch of training;
- fewer: a warning; they count as failed videos when the run meets them.
"""
import logging
import os
from typing import List, Sequence

from ..config import ConfigError
from .catalog import VideoRecord
from .failures import TooManyFailedVideos
from .registry import SPLIT_KEYS, build_dataset

logger = logging.getLogger(__name__)


def check_split(cfg, split: str):
    """The ``split`` dataset, built and checked as the module docstring says; raises ConfigError,
    AnnotationError or TooManyFailedVideos naming the key, file or line."""
    dataset = build_dataset(cfg, split)
    check_class_count(dataset.class_names, cfg, split)
    key = f"DATA.{SPLIT_KEYS[split]}"
    check_files_exist(dataset.records, cfg.DATA.ROOT, f"{key} ({cfg.DATA[SPLIT_KEYS[split]]})",
                      cfg.DATA.MAX_FAILED_FRACTION)
    return dataset


def check_class_count(class_names: Sequence[str], cfg, split: str) -> None:
    """ConfigError when the split names another number of classes than the model predicts."""
    if len(class_names) == cfg.MODEL.NUM_CLASSES:
        return
    source = f"DATA.CLASS_NAMES ({cfg.DATA.CLASS_NAMES})" if cfg.DATA.CLASS_NAMES else \
        f"DATA.{SPLIT_KEYS[split]} ({cfg.DATA[SPLIT_KEYS[split]]})"
    raise ConfigError(f"{source}: names {len(class_names)} classes, MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES}")


def missing_files(records: Sequence[VideoRecord]) -> List[VideoRecord]:
    """The records whose local video file, or frame folder (a record with ``num_frames``), does
    not exist: a folder listed as a video counts as missing, and so does a file listed as a
    frame folder (URLs are not looked up)."""
    return [r for r in records if "://" not in r.path and not _present(r)]


def _present(record: VideoRecord) -> bool:
    return os.path.isdir(record.path) if record.num_frames is not None else os.path.isfile(record.path)


def check_files_exist(records: Sequence[VideoRecord], root: str, source: str, max_fraction: float) -> None:
    """Looks for every file of ``records`` (listed in ``source``, e.g. "DATA.TRAIN_LIST (train.txt)")."""
    if root and "://" not in root and not os.path.isdir(root):
        raise ConfigError(f"DATA.ROOT: no such folder: {root} (the paths of {source} are relative to it)")
    missing = missing_files(records)
    if not missing:
        return
    first, count, total = missing[0].path, len(missing), len(records)
    if count == total:
        where = f"under DATA.ROOT {root}" if root else "with DATA.ROOT empty (paths relative to the working folder)"
        raise ConfigError(f"DATA.ROOT: none of the {total} videos of {source} exists {where}; "
                          f"first missing: {first}")
    if count / total > max_fraction:
        raise TooManyFailedVideos(f"{source}: {count} of {total} listed videos ({count / total:.1%}) are missing, "
                                  f"more than DATA.MAX_FAILED_FRACTION={max_fraction}; first missing: {first}")
    logger.warning("%s: %d of %d listed videos are missing (within DATA.MAX_FAILED_FRACTION=%s: they count as "
                   "failed videos); first missing: %s", source, count, total, max_fraction, first)
