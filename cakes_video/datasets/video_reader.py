"""Reading the frames of a record: one open per read, the union of several clips decoded once,
and an optional in-memory cache of whole decoded videos.

The decoder (``decoding.open_video``) is opened, its ``meta`` handed to a ``choose`` function
that returns the clips' frame indices, and only then are frames decoded: sampling depends
on the video's length and frame rate.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
from torch.utils.data import Dataset

from .catalog import VideoRecord
from .decoding import DecodeError, VideoMeta, open_video
from .failures import warn_if_short

ChooseClips = Callable[[VideoMeta], Sequence[np.ndarray]]


@dataclass(frozen=True)
class DecodeOptions:
    """How records are opened: ``backend`` "pyav" | "decord" | "frames" (JPEG folders, named by
    ``frame_template`` from ``frame_start_index``, extracted at ``frame_fps``)."""

    backend: str = "pyav"
    frame_template: str = "{:05d}.jpg"
    frame_start_index: int = 1
    frame_fps: float = 30.0

    def open(self, record: VideoRecord):
        if self.backend == "frames":
            return open_video(record.path, "frames", template=self.frame_template,
                              start_index=self.frame_start_index, num_frames=record.num_frames,
                              fps=self.frame_fps)
        return open_video(record.path, self.backend)


def decode_options_from_cfg(cfg) -> DecodeOptions:
    """DATA.DECODER, DATA.FRAME_TEMPLATE, DATA.FRAME_START_INDEX, DATA.FRAME_FPS."""
    data = cfg.DATA
    return DecodeOptions(data.DECODER, data.FRAME_TEMPLATE, data.FRAME_START_INDEX, data.FRAME_FPS)


class VideoReader:
    """Decodes clips of records. ``cache=True`` keeps every video's frames (uint8, all of them)
    after its first read, so later reads only index memory; meant for small datasets."""

    def __init__(self, options: DecodeOptions, cache: bool = False):
        self.options = options
        self.cache = cache
        self._videos: Dict[str, Tuple[VideoMeta, np.ndarray]] = {}

    def read_clips(self, record: VideoRecord, choose: ChooseClips) -> List[np.ndarray]:
        """Frames of each clip ``choose(meta)`` asks for: list of uint8 [T_i, H, W, 3].
        Raises DecodeError (naming the path) when the video cannot be read."""
        frames, rows = self.read_union(record, choose)
        # One sorted clip is the union itself; decoded for this call alone, it needs no copy
        # (cached frames do: a caller may write into its clip).
        if not self.cache and len(rows) == 1 and np.array_equal(rows[0], np.arange(len(frames))):
            return [frames]
        return [frames[r] for r in rows]

    def read_union(self, record: VideoRecord, choose: ChooseClips) -> Tuple[np.ndarray, List[np.ndarray]]:
        """``(frames uint8 [U, H, W, 3], rows)``: clip i of ``choose(meta)`` is ``frames[rows[i]]``.

        The union of all clips' indices is decoded in one pass, each frame once.
        """
        if self.cache:
            meta, frames = self._cached(record)
            return frames, [np.asarray(indices, dtype=np.int64) for indices in choose(meta)]
        with self.options.open(record) as video:
            warn_if_short(video.meta)
            clips = [np.asarray(indices, dtype=np.int64) for indices in choose(video.meta)]
            union = np.unique(np.concatenate(clips))
            frames = video.get_frames(union)
        _check_count(record.path, frames, len(union))
        return frames, [np.searchsorted(union, indices) for indices in clips]

    def _cached(self, record: VideoRecord) -> Tuple[VideoMeta, np.ndarray]:
        if record.path not in self._videos:
            with self.options.open(record) as video:
                warn_if_short(video.meta)
                frames = video.get_frames(np.arange(video.meta.num_frames))
                _check_count(record.path, frames, video.meta.num_frames)
                self._videos[record.path] = (video.meta, frames)
        return self._videos[record.path]


def _check_count(path: str, frames: np.ndarray, expected: int) -> None:
    if len(frames) != expected:
        raise DecodeError(f"{path}: decoder returned {len(frames)} frames, {expected} requested")


class RecordDataset(Dataset):
    """What every dataset of video records shares: ``records``, ``class_names``, the ``reader``;
    one item per video."""

    def __init__(self, records: Sequence[VideoRecord], class_names: Sequence[str], reader: VideoReader):
        self.records = list(records)
        self.class_names = list(class_names)
        self.reader = reader

    @property
    def num_videos(self) -> int:
        return len(self.records)

    def __len__(self) -> int:
        return len(self.records)
