"""Run-level setup shared by training and testing: process group, device, seeds,
determinism, checks that must pass before any work starts."""
import logging
import os
import random
import tempfile
from functools import partial
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

from ..config import ConfigError
from ..datasets.loader import build_loader, per_process_batch_size
from ..datasets.preflight import check_split
from ..utils.distributed import get_rank, get_world_size, init_distributed, resolve_device
from ..utils.modes import AMP_DTYPES

logger = logging.getLogger(__name__)


def seed_all(seed: int) -> None:
    """Seeds torch (CPU and CUDA), numpy's global RNG and python's ``random``."""
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def prepare_run(cfg, batch_keys: Sequence[str]) -> torch.device:
    """Joins torchrun's process group, checks the config against it, seeds, returns the device.

    ``batch_keys`` name the global batch sizes that must divide by the number of processes.
    Raises ConfigError naming the key (DEVICE, a batch size, OUTPUT_DIR) before any data is read.
    """
    device = resolve_device(cfg.DEVICE)
    init_distributed(device.type)
    for key in batch_keys:
        group, name = key.split(".")
        per_process_batch_size(cfg[group][name], get_world_size(), key)  # the loaders would fail later
    check_output_dir(cfg.OUTPUT_DIR)
    if cfg.NUM_THREADS > 0:
        torch.set_num_threads(cfg.NUM_THREADS)
    if cfg.DETERMINISTIC:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS needs it for determinism
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    seed_all(cfg.SEED + get_rank())  # ranks draw different augmentations
    return device


def amp_dtype(mode: str, device: torch.device) -> Optional[torch.dtype]:
    """The autocast dtype of TRAIN.MIXED_PRECISION, or None (off, or on the CPU)."""
    if AMP_DTYPES[mode] is not None and device.type != "cuda":
        logger.info("TRAIN.MIXED_PRECISION=%s ignored on %s: mixed precision runs on CUDA only", mode, device)
        return None
    return AMP_DTYPES[mode]


def check_data_files(cfg, splits: Sequence[str]) -> None:
    """ConfigError naming DATA.<SPLIT>_LIST when a list file of a list-based dataset is missing."""
    if cfg.DATA.DATASET not in ("video_list", "frame_list", "ssv2_json"):
        return  # other formats point at folders; their builders name the key
    for split in splits:
        key = f"{split.upper()}_LIST"
        path = cfg.DATA[key]
        if not path:
            raise ConfigError(f"DATA.{key}: no list file given for the {split} split")
        if "://" not in path and not os.path.isfile(path):
            raise ConfigError(f"DATA.{key}: list file not found: {path}")


def check_output_dir(path: str) -> None:
    """ConfigError naming OUTPUT_DIR when the folder cannot be created or written in (checked
    before the run writes its log, metrics and checkpoints there)."""
    try:
        os.makedirs(path, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as e:
        raise ConfigError(f"OUTPUT_DIR: cannot write to {path} ({e.strerror or e})") from e


def preflight_data(cfg, splits: Sequence[str]) -> Dict[str, object]:
    """``{split: dataset}`` for ``splits``, each checked before any video is decoded: its list
    file, labels, class names, paths and files (``datasets.preflight``)."""
    check_data_files(cfg, splits)
    return {split: check_split(cfg, split) for split in splits}


def resolve_loader_fn(cfg, loader_fn: Optional[Callable], splits: Sequence[str]) -> Callable:
    """``loader_fn`` when given (tests pass stand-ins), else ``datasets.loader.build_loader``
    over the datasets of ``splits``, checked first (:func:`preflight_data`): a data error fails
    before any work."""
    if loader_fn is not None:
        return loader_fn
    return partial(_checked_loader, preflight_data(cfg, splits))


def _checked_loader(datasets: Dict[str, object], cfg, split: str):
    return build_loader(cfg, split, datasets.get(split))
