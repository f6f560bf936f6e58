"""Video data: decoding, temporal sampling, transforms, dataset formats, loaders.

Entry points::

    build_dataset(cfg, split)   # split "train" | "val" | "test"; format cfg.DATA.DATASET
    build_loader(cfg, split)    # DataLoader of batch dicts (see loader.py)
"""
from .catalog import AnnotationError, VideoRecord
from .decoding import DecodeError
from .failures import DecodeRetriesExhausted, TooManyFailedVideos, check_failure_fraction
from .loader import build_loader, collate_videos, set_loader_epoch
from .registry import DATASET_REGISTRY, build_dataset

__all__ = ["AnnotationError", "DATASET_REGISTRY", "DecodeError", "DecodeRetriesExhausted", "TooManyFailedVideos",
           "VideoRecord", "build_dataset", "build_loader", "check_failure_fraction", "collate_videos",
           "set_loader_epoch"]
