"""Train/val clip dataset: one clip per item, decoded from the frames its sampling picks.

Item: ``{"video": float [C, T, H, W], "label": int, "index": int, "video_id": str,
"failed": list of {"path", "error"}}``.

Training draws a random clip and augments it with a generator seeded by (seed, epoch, index):
an item's augmentation depends on nothing else, neither on the worker that reads it nor on
what that worker read before, so persistent workers (DATA.CACHE_DECODED) and a resumed run
repeat it exactly. A video that fails to decode (DecodeError)
is replaced by another random video, at most ``max_retries`` times, and each failure is
listed in "failed". Validation reads the deterministic centre clip with the centre crop and
never retries: a failed video comes back with an empty "video" (the collate function drops
it). Errors other than DecodeError are bugs and propagate.
"""
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch

from . import transforms
from .catalog import VideoRecord
from .decoding import DecodeError, VideoMeta
from .failures import DecodeRetriesExhausted, failed_item, failure
from .sampling import dense_clip_indices, tsn_indices
from .video_reader import RecordDataset, VideoReader


@dataclass(frozen=True)
class ClipSampling:
    """Which frames a clip reads. ``mode`` "dense": ``num_frames`` frames ``sampling_rate`` apart
    at ``target_fps`` (None: the video's own rate); "tsn": ``num_frames`` segments."""

    mode: str = "dense"
    num_frames: int = 8
    sampling_rate: int = 8
    target_fps: Optional[float] = 30.0

    def indices(self, meta: VideoMeta, rng: Optional[np.random.Generator]) -> np.ndarray:
        """int64 [num_frames]: a random clip with ``rng``, else the centre clip."""
        return CLIP_SAMPLERS[self.mode](self, meta, rng)


def _dense_clip(sampling: ClipSampling, meta: VideoMeta, rng: Optional[np.random.Generator]) -> np.ndarray:
    fps = meta.fps if sampling.target_fps else None
    clip_idx = -1 if rng is not None else 0
    return dense_clip_indices(meta.num_frames, sampling.num_frames, sampling.sampling_rate, clip_idx, 1,
                              video_fps=fps, target_fps=sampling.target_fps, rng=rng)


def _tsn_clip(sampling: ClipSampling, meta: VideoMeta, rng: Optional[np.random.Generator]) -> np.ndarray:
    return tsn_indices(meta.num_frames, sampling.num_frames, train=rng is not None, rng=rng)


# DATA.SAMPLING -> frame indices of one clip (sampling, meta, rng or None for the centre clip).
CLIP_SAMPLERS = {"dense": _dense_clip, "tsn": _tsn_clip}


def item_rng(seed: int, epoch: int, index: int) -> np.random.Generator:
    """The generator of training item ``index`` in epoch ``epoch`` of a run seeded ``seed``."""
    return np.random.default_rng([seed, epoch, index])


class ClipDataset(RecordDataset):
    """Clips of ``records`` for training (``train=True``) or validation.

    ``train_transform(frames uint8 [T, H, W, 3], label, rng=rng) -> (float [C, T, S, S], label)``;
    ``val_transform(frames) -> float [C, T, S, S]``. ``seed`` and the epoch
    (:meth:`set_epoch`) seed the training items.
    """

    def __init__(self, records: Sequence[VideoRecord], class_names: Sequence[str], reader: VideoReader,
                 sampling: ClipSampling, train: bool, train_transform: Optional[Callable] = None,
                 val_transform: Optional[Callable] = None, max_retries: int = 10, seed: int = 0):
        super().__init__(records, class_names, reader)
        self.sampling = sampling
        self.train = train
        self.train_transform = train_transform
        self.val_transform = val_transform
        self.max_retries = max_retries
        self.seed = seed
        # In shared memory: worker processes (persistent ones too) see the epoch the loop sets
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        """Items read from now on (in this process and its loader workers) belong to ``epoch``."""
        self._epoch.fill_(epoch)

    def _read(self, record: VideoRecord, rng) -> np.ndarray:
        (clip,) = self.reader.read_clips(record, lambda meta: [self.sampling.indices(meta, rng)])
        return clip

    def __getitem__(self, index: int) -> Dict:
        if not self.train:
            return self._val_item(index)
        rng, failures = item_rng(self.seed, int(self._epoch), index), []
        for _ in range(self.max_retries + 1):
            record = self.records[index]
            try:
                clip = self._read(record, rng)
            except DecodeError as error:
                failures.append(failure(record.path, error))
                index = int(rng.integers(len(self.records)))
                continue
            video, label = self.train_transform(clip, record.label, rng=rng)
            return {"video": video, "label": label, "index": index, "video_id": record.video_id,
                    "failed": failures}
        paths = ", ".join(f["path"] for f in failures)
        raise DecodeRetriesExhausted(f"{len(failures)} videos in a row failed to decode "
                                     f"(DATA.MAX_RETRIES={self.max_retries}): {paths}")

    def _val_item(self, index: int) -> Dict:
        record = self.records[index]
        try:
            clip = self._read(record, None)
        except DecodeError as error:
            return failed_item(record, index, [failure(record.path, error)])
        return {"video": self.val_transform(clip), "label": record.label, "index": index,
                "video_id": record.video_id, "failed": []}


def center_view(frames, **options) -> torch.Tensor:
    """The centre crop of ``transforms.crop_views``: uint8 [T, H, W, 3] -> float [C, T, S, S]."""
    return transforms.crop_views(frames, num_crops=1, **options)[0]


def clip_dataset_from_cfg(cfg, records, class_names, train: bool, reader: VideoReader) -> ClipDataset:
    """Maps the DATA group onto a ClipDataset (train or val). The transforms are partials of
    module functions, so the dataset pickles (spawned workers)."""
    data = cfg.DATA
    flip_map = transforms.load_flip_label_map(data.FLIP_LABEL_MAP) if data.FLIP_LABEL_MAP else None
    train_transform = partial(
        transforms.train_transform, jitter_scales=tuple(data.TRAIN_JITTER_SCALES), crop_size=data.TRAIN_CROP_SIZE,
        mean=tuple(data.MEAN), std=tuple(data.STD), flip=data.RANDOM_FLIP, flip_label_map=flip_map,
        multiscale=data.MULTISCALE_CROP)
    val_transform = partial(center_view, scale=data.TEST_SCALE, crop_size=data.TEST_CROP_SIZE,
                            mean=tuple(data.MEAN), std=tuple(data.STD))
    return ClipDataset(records, class_names, reader, clip_sampling_from_cfg(cfg), train,
                       train_transform, val_transform, data.MAX_RETRIES, cfg.SEED)


def target_fps_from_cfg(cfg) -> Optional[float]:
    """DATA.TARGET_FPS, or None (sample at each video's own rate) when it is <= 0."""
    return cfg.DATA.TARGET_FPS if cfg.DATA.TARGET_FPS > 0 else None


def clip_sampling_from_cfg(cfg) -> ClipSampling:
    data = cfg.DATA
    return ClipSampling(data.SAMPLING, data.NUM_FRAMES, data.SAMPLING_RATE, target_fps_from_cfg(cfg))
