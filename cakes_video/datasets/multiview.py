"""Multi-view test dataset: every temporal clip x spatial crop of a video in one item.

Item: ``{"video": float [V, C, T, S, S], "label", "index", "video_id", "failed"}`` with
``V = num_clips * num_crops`` ordered clip-major (``view = clip * num_crops + crop``).

Decode-once: the video is opened once and the union of all clips' frame indices decoded
in one pass; each clip then indexes those frames, and all views are written into one tensor.
``decode_once=False`` reads every view on its own (open, decode, crop), the way per-view
test loaders do; it exists to measure the difference and to check that both give the same
views. A video that fails to decode is not retried: its item has an empty "video" and the
failure in "failed".
"""
from dataclasses import dataclass
from functools import partial
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

from . import transforms
from .catalog import VideoRecord
from .decoding import DecodeError, VideoMeta
from .failures import failed_item, failure
from .sampling import view_clip_indices
from .video_dataset import target_fps_from_cfg
from .video_reader import RecordDataset, VideoReader


@dataclass(frozen=True)
class TemporalViews:
    """The ``num_clips`` clips of a test video under ``protocol`` (a key of sampling.PROTOCOLS)."""

    protocol: str = "pyslowfast"
    num_frames: int = 8
    sampling_rate: int = 8
    target_fps: Optional[float] = 30.0
    num_clips: int = 10

    def indices(self, meta: VideoMeta) -> List[np.ndarray]:
        """List of ``num_clips`` int64 [num_frames] index arrays."""
        return self.clips_of(meta.num_frames, meta.fps)

    def clips_of(self, video_frames: int, fps: float) -> List[np.ndarray]:
        """The clips of a video of ``video_frames`` frames at ``fps``, as :meth:`indices`."""
        return view_clip_indices(self.protocol, video_frames, self.num_frames, self.sampling_rate, self.num_clips,
                                 video_fps=fps if self.target_fps else None, target_fps=self.target_fps)


@dataclass(frozen=True)
class SpatialViews:
    """Short side resized to ``scale``, then ``num_crops`` (1: centre; 3: start, centre, end)."""

    scale: int = 256
    crop_size: int = 224
    num_crops: int = 3
    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)

    def __post_init__(self):
        transforms.crop_positions(self.num_crops)  # raises for a count other than 1 or 3

    def views(self, frames: np.ndarray, rows: Sequence[np.ndarray]) -> torch.Tensor:
        """Every crop of every clip ``frames[rows[i]]``: uint8 [U, H, W, 3] -> float
        [len(rows) * num_crops, C, T, S, S], clip-major.

        ``transforms.crop_views`` writes each clip's crops straight into their rows of one
        tensor (a stack of per-clip results would copy every view again). Identical clips
        (short videos clamp every start to 0) are computed once and copied.
        """
        per_clip, size = self.num_crops, self.crop_size
        out = torch.empty((len(rows) * per_clip, 3, len(rows[0]), size, size))
        first_clip_of = {}
        for clip, indices in enumerate(rows):
            views = out[clip * per_clip:(clip + 1) * per_clip]  # [num_crops, C, T, S, S]
            same = first_clip_of.setdefault(indices.tobytes(), clip)
            if same != clip:
                views.copy_(out[same * per_clip:(same + 1) * per_clip])
                continue
            transforms.crop_views(frames[indices], scale=self.scale, crop_size=size, num_crops=per_clip,
                                  mean=self.mean, std=self.std, out=views)
        return out

    def scaled(self, frame: np.ndarray) -> np.ndarray:
        """One frame uint8 [H, W, 3] with its short side resized to ``scale`` [H', W', 3], for
        readers that keep frames a while: :meth:`views` of scaled frames equals ``views`` of
        the originals (it resizes each frame alone, and a frame at ``scale`` is left as it is)."""
        video = transforms.short_side_scale(transforms.to_video(frame[None]), self.scale)  # [1, 3, H', W']
        return video[0].permute(1, 2, 0).numpy()

    def one(self, frames: np.ndarray, crop: int) -> torch.Tensor:
        """Crop ``crop`` alone: uint8 [T, H, W, 3] -> float [C, T, S, S], equal to its row of
        ``views``. The steps of ``transforms.crop_views`` for this crop only, as a per-view
        loader computes it (the baseline that decode-once is measured against)."""
        position = transforms.crop_positions(self.num_crops)[crop]
        video = transforms.short_side_scale(transforms.to_video(frames), self.scale)
        return transforms.normalize(transforms.spatial_crop(video, self.crop_size, position),
                                    self.mean, self.std)


class MultiViewDataset(RecordDataset):
    """All test views of each of ``records``; see the module docstring."""

    def __init__(self, records: Sequence[VideoRecord], class_names: Sequence[str], reader: VideoReader,
                 temporal: TemporalViews, spatial: SpatialViews, decode_once: bool = True):
        super().__init__(records, class_names, reader)
        self.temporal = temporal
        self.spatial = spatial
        self.decode_once = decode_once

    @property
    def num_views(self) -> int:
        return self.temporal.num_clips * self.spatial.num_crops

    def __getitem__(self, index: int) -> Dict:
        record = self.records[index]
        try:
            video = self._views_decoded_once(record) if self.decode_once else self._views_one_by_one(record)
        except DecodeError as error:
            return failed_item(record, index, [failure(record.path, error)])
        return {"video": video, "label": record.label, "index": index, "video_id": record.video_id,
                "failed": []}

    def _views_decoded_once(self, record: VideoRecord) -> torch.Tensor:
        return self.spatial.views(*self.reader.read_union(record, self.temporal.indices))

    def _views_one_by_one(self, record: VideoRecord) -> torch.Tensor:
        views = []
        for clip_idx in range(self.temporal.num_clips):
            choose = partial(_one_clip, self.temporal, clip_idx)
            for crop in range(self.spatial.num_crops):
                (clip,) = self.reader.read_clips(record, choose)
                views.append(self.spatial.one(clip, crop))
        return torch.stack(views)


def _one_clip(temporal: TemporalViews, clip_idx: int, meta: VideoMeta) -> List[np.ndarray]:
    return [temporal.indices(meta)[clip_idx]]


def temporal_views_from_cfg(cfg) -> TemporalViews:
    """DATA.TEST_PROTOCOL, NUM_FRAMES, SAMPLING_RATE, TARGET_FPS and TEST.NUM_ENSEMBLE_VIEWS."""
    data = cfg.DATA
    return TemporalViews(data.TEST_PROTOCOL, data.NUM_FRAMES, data.SAMPLING_RATE, target_fps_from_cfg(cfg),
                         cfg.TEST.NUM_ENSEMBLE_VIEWS)


def spatial_views_from_cfg(cfg) -> SpatialViews:
    """DATA.TEST_SCALE, TEST_CROP_SIZE, MEAN, STD and TEST.NUM_SPATIAL_CROPS."""
    data = cfg.DATA
    return SpatialViews(data.TEST_SCALE, data.TEST_CROP_SIZE, cfg.TEST.NUM_SPATIAL_CROPS,
                        tuple(data.MEAN), tuple(data.STD))


def multiview_dataset_from_cfg(cfg, records, class_names, reader: VideoReader) -> MultiViewDataset:
    """Maps DATA and TEST.NUM_ENSEMBLE_VIEWS / NUM_SPATIAL_CROPS onto a MultiViewDataset."""
    return MultiViewDataset(records, class_names, reader, temporal_views_from_cfg(cfg), spatial_views_from_cfg(cfg))
