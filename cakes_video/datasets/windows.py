"""A long video as a sequence of windows, each scored as a test video of its own.

Window ``k`` covers frames ``[k * stride, k * stride + length)``; its views are the test
views (``multiview.TemporalViews`` x ``SpatialViews``) of those frames as if they were the
whole video, so a window's scores equal the offline test output for the clip it covers.
``length`` and ``stride`` are :class:`Span` s: seconds (at the header's frame rate, rounded
to whole frames) or frames. Windows start at frame 0 and stop at the last one that fits:
the tail after it (shorter than a stride) is not scored. A video shorter than one window
is one window over all its frames (``Window.whole_video``).

Streaming: the file is decoded once, in order (``streaming.FrameStream``, always PyAV),
and a frame is kept (short side already resized to the test scale) only while a window
not yet scored samples it; until the first window is complete every frame is kept, since
a video shorter than the window samples its own frames. Memory therefore depends on the
window, the stride and the protocol, never on the video's length: at most ``length``
frames, then the union of the sampled frames of the ``ceil(length / stride)`` windows that
overlap one frame.
"""
import math
import re
from dataclasses import dataclass
from typing import Dict, Iterator, List

import numpy as np
import torch

from .multiview import SpatialViews, TemporalViews, spatial_views_from_cfg, temporal_views_from_cfg
from .streaming import FrameStream

_SPAN = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(f?)\s*$")


@dataclass(frozen=True)
class Span:
    """A stretch of video: ``value`` seconds, or ``value`` frames when ``in_frames``."""

    value: float
    in_frames: bool = False

    @classmethod
    def parse(cls, text: str) -> "Span":
        """``"2.5"`` -> 2.5 seconds, ``"64f"`` -> 64 frames; ValueError for anything else,
        for 0, and for a fraction of a frame."""
        match = _SPAN.match(str(text))
        if not match:
            raise ValueError(f"{text!r} is not a duration: seconds (2.5) or frames with an f suffix (64f)")
        value, in_frames = float(match.group(1)), match.group(2) == "f"
        if value <= 0 or (in_frames and not value.is_integer()):
            raise ValueError(f"{text!r}: a duration must be positive{', in whole frames' if in_frames else ''}")
        return cls(value, in_frames)

    def frames(self, fps: float) -> int:
        """The span in frames at ``fps``: seconds rounded to the nearest frame (halves up), at least one."""
        return int(self.value) if self.in_frames else max(1, math.floor(self.value * fps + 0.5))

    def __str__(self) -> str:
        return f"{int(self.value)}f" if self.in_frames else f"{self.value:g}s"


@dataclass(frozen=True)
class Window:
    """One scored stretch: frames ``[start, stop)`` at ``fps``, their views float [V, C, T, S, S]."""

    start: int
    stop: int
    fps: float
    views: torch.Tensor
    whole_video: bool = False  # the video is shorter than one window: this is all of it

    @property
    def start_seconds(self) -> float:
        return self.start / self.fps

    @property
    def end_seconds(self) -> float:
        return self.stop / self.fps


class SlidingWindows:
    """The windows of ``length`` every ``stride`` of a video, with the views of ``temporal`` x
    ``spatial`` in each; see the module docstring."""

    def __init__(self, temporal: TemporalViews, spatial: SpatialViews, length: Span, stride: Span):
        self.temporal = temporal
        self.spatial = spatial
        self.length = length
        self.stride = stride

    def read(self, path: str) -> Iterator[Window]:
        """Yields the windows of the video file ``path`` in order, each as soon as its last
        frame is decoded. DecodeError (naming the file) when it cannot be read; the windows
        yielded before a corrupt frame stand."""
        with FrameStream(path) as video:
            fps = video.fps
            length, stride = self.length.frames(fps), self.stride.frames(fps)
            offsets = self.temporal.clips_of(length, fps)  # every full window samples these, from its start
            sampled = frozenset(int(i) for clip in offsets for i in clip)
            kept: Dict[int, np.ndarray] = {}
            done = 0  # windows yielded so far

            def wanted(i: int) -> bool:
                if done == 0 and i < length:
                    return True
                first = max(done, math.ceil((i - length + 1) / stride))  # the pending windows holding frame i
                return any(i - k * stride in sampled for k in range(first, i // stride + 1))

            decoded = 0
            for i, frame in video.frames(wanted):
                decoded = i + 1
                if frame is not None:
                    kept[i] = self.spatial.scaled(frame)
                start = done * stride
                if i == start + length - 1:
                    yield self._window(kept, start, length, offsets, fps)
                    done += 1
                    for j in [j for j in kept if not wanted(j)]:
                        del kept[j]
        if done == 0:  # shorter than one window: every frame was kept
            yield self._window(kept, 0, decoded, self.temporal.clips_of(decoded, fps), fps, whole_video=True)

    def _window(self, kept: Dict[int, np.ndarray], start: int, length: int, offsets: List[np.ndarray],
                fps: float, whole_video: bool = False) -> Window:
        """The views of frames ``start + offsets``, made as ``VideoReader.read_union`` and
        ``SpatialViews.views`` make a test video's."""
        clips = [start + clip for clip in offsets]
        union = np.unique(np.concatenate(clips))
        frames = np.stack([kept[i] for i in union.tolist()])
        rows = [np.searchsorted(union, clip) for clip in clips]
        return Window(start, start + length, fps, self.spatial.views(frames, rows), whole_video)


def sliding_windows_from_cfg(cfg, length: Span, stride: Span) -> SlidingWindows:
    """Windows with the test views of ``cfg`` (DATA.TEST_*, TEST.NUM_ENSEMBLE_VIEWS / NUM_SPATIAL_CROPS)."""
    return SlidingWindows(temporal_views_from_cfg(cfg), spatial_views_from_cfg(cfg), length, stride)
