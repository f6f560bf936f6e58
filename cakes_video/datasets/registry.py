"""DATASET_REGISTRY and build_dataset: a dataset format is a registry entry.

Each entry is ``entry(cfg, split) -> Dataset`` with split "train", "val" or "test": it
parses the split's annotations (catalog.py) and hands the records to
:func:`make_split_dataset`, which builds the clip dataset (train/val) or the multi-view
test dataset. Every dataset exposes ``num_videos`` and ``class_names``.
"""
from typing import List, Sequence

from fvcore.common.registry import Registry

from . import catalog
from .catalog import VideoRecord
from .multiview import multiview_dataset_from_cfg
from .video_dataset import clip_dataset_from_cfg
from .video_reader import VideoReader, decode_options_from_cfg

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = """Dataset formats by cfg.DATA.DATASET; each entry is ``entry(cfg, split) -> Dataset``."""

SPLIT_KEYS = {"train": "TRAIN_LIST", "val": "VAL_LIST", "test": "TEST_LIST"}


def build_dataset(cfg, split: str):
    """The ``split`` dataset of format ``cfg.DATA.DATASET``."""
    if split not in SPLIT_KEYS:
        raise ValueError(f"split must be one of {list(SPLIT_KEYS)}, got {split!r}")
    name = cfg.DATA.DATASET
    if name not in DATASET_REGISTRY:
        raise KeyError(f"DATA.DATASET: unknown dataset format {name!r}; "
                       f"registered: {sorted(k for k, _ in DATASET_REGISTRY)}")
    return DATASET_REGISTRY.get(name)(cfg, split)


def split_source(cfg, split: str) -> str:
    """The split's annotation file or folder (DATA.TRAIN_LIST / VAL_LIST / TEST_LIST)."""
    key = SPLIT_KEYS[split]
    if not cfg.DATA[key]:
        raise ValueError(f"DATA.{key} is empty: the {split} split has no annotation file or folder")
    return cfg.DATA[key]


def make_split_dataset(cfg, split: str, records: Sequence[VideoRecord], class_names: Sequence[str]):
    """ClipDataset for train / val, MultiViewDataset (decode-once) for test; AnnotationError
    for a split without videos (an empty val split would score 0 and still pick a best epoch)."""
    if not records:
        key = SPLIT_KEYS[split]
        raise catalog.AnnotationError(f"DATA.{key}: no videos in {cfg.DATA[key]}")
    reader = VideoReader(decode_options_from_cfg(cfg), cache=cfg.DATA.CACHE_DECODED)
    if split == "test":
        return multiview_dataset_from_cfg(cfg, records, class_names, reader)
    return clip_dataset_from_cfg(cfg, records, class_names, split == "train", reader)


def _class_names(cfg, records: Sequence[VideoRecord], source: str) -> List[str]:
    """From DATA.CLASS_NAMES when set (labels must fit), else one per MODEL.NUM_CLASSES (the
    list's labels were checked against it), so every split names the model's classes alike."""
    if not cfg.DATA.CLASS_NAMES:
        return catalog.derived_class_names(cfg.MODEL.NUM_CLASSES)
    names = catalog.read_class_names(cfg.DATA.CLASS_NAMES)
    catalog.check_labels(records, names, source)
    return names


@DATASET_REGISTRY.register()
def video_list(cfg, split: str):
    """Lines ``path<SEP>label`` (Kinetics, UCF101 / HMDB51 after conversion, synthetic)."""
    source = split_source(cfg, split)
    records = catalog.read_video_list(source, cfg.DATA.ROOT, cfg.DATA.SEPARATOR, cfg.MODEL.NUM_CLASSES)
    return make_split_dataset(cfg, split, records, _class_names(cfg, records, source))


@DATASET_REGISTRY.register()
def frame_list(cfg, split: str):
    """Lines ``folder<SEP>num_frames<SEP>label`` of extracted-frame folders (SSv1 style)."""
    source = split_source(cfg, split)
    records = catalog.read_frame_list(source, cfg.DATA.ROOT, cfg.DATA.SEPARATOR, cfg.MODEL.NUM_CLASSES)
    return make_split_dataset(cfg, split, records, _class_names(cfg, records, source))


@DATASET_REGISTRY.register()
def folder_per_class(cfg, split: str):
    """``<split folder>/<class name>/<video>``. Class names: DATA.CLASS_NAMES, else the sorted
    folders of the train split (so every split agrees on labels), else of this split."""
    folder = catalog.join_root(cfg.DATA.ROOT, split_source(cfg, split))
    if cfg.DATA.CLASS_NAMES:
        names = catalog.read_class_names(cfg.DATA.CLASS_NAMES)
    else:
        train = cfg.DATA.TRAIN_LIST
        names = catalog.class_folders(catalog.join_root(cfg.DATA.ROOT, train) if train else folder)
    records, names = catalog.scan_class_folders(folder, cfg.DATA.VIDEO_EXTENSIONS, names)
    return make_split_dataset(cfg, split, records, names)


@DATASET_REGISTRY.register()
def ssv2_json(cfg, split: str):
    """Something-Something V2: DATA.CLASS_NAMES is the labels JSON, the split source the
    train / validation JSON; videos are ``DATA.ROOT/<id><DATA.SSV2_SUFFIX>``."""
    source = split_source(cfg, split)
    if not cfg.DATA.CLASS_NAMES:
        raise ValueError("DATA.CLASS_NAMES: ssv2_json needs the labels file (something-something-v2-labels.json)")
    names = catalog.read_class_names(cfg.DATA.CLASS_NAMES)
    records = catalog.read_ssv2_list(source, names, cfg.DATA.ROOT, cfg.DATA.SSV2_SUFFIX)
    return make_split_dataset(cfg, split, records, names)
