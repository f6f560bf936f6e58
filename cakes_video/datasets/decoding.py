"""Decoding behind one small interface: ``open_video(path, backend, **options)`` -> Decoder.

Interface (every backend)::

    with open_video(path, backend="pyav") as video:   # "pyav", "decord", "frames"
        video.meta            # VideoMeta(path, num_frames, fps, duration, width, height, rotation)
        video.get_frames(idx) # np.uint8 [T, H, W, 3] for frame indices idx, rotation applied

``idx`` is any 1-D sequence of ints in ``[0, meta.num_frames)``, in any order, repeats
allowed; row ``t`` of the result is frame ``idx[t]``. Frame ``i`` is the ``i``-th frame in
presentation order (never "time i / fps", so variable-frame-rate files index correctly).

Backends and options (details and measurements in datasets/DECODING.md):

- ``"pyav"`` (``num_threads=0``: FFmpeg picks): counts frames by a demux-only pass over
  the packets (cheap, and true for truncated files whose header claims more), then
  seeks to the keyframe before each wanted frame and decodes forward, matching frames by
  presentation timestamp. A stream without usable timestamps (missing or repeated pts,
  one keyframe, pts that hide B-frame reordering as in AVI, decoder output out of pts
  order) is decoded sequentially from the start and frames are counted in output order.
- ``"decord"`` (``num_threads=0``): ``decord.VideoReader.get_batch``. Files where
  decord's seeks return wrong frames (AVI with B-frames, open-GOP MPEG-4) are detected
  (by a PyAV demux-only pass, at the first read that would seek) and read by walking
  consecutive frames instead. ``meta.rotation`` is None: decord turns frames upright
  without saying by how much. decord 0.6 fails on some files (no duration in the
  container, VP9 odd-size frames after the first few, a corrupt packet, some rotated
  sizes); each failure is a DecodeError naming the file.
- ``"frames"``: ``path`` is a folder of JPEG frames (TSN / Something-Something V1 layout);
  options ``template="{:05d}.jpg"``, ``start_index=1``, ``num_frames=None`` (count the
  consecutive files), ``fps=30.0`` (a folder stores no frame rate).

pyav and decord give bit-identical RGB frames on H.264, MPEG-4 Part 2, H.263, VP8 and
MJPEG (mean abs diff 0.0, measured on the test videos and /work/shared/videos); on VP9
with odd frame sizes they differ by a mean abs diff of about 0.45 (chroma rounding at the
odd edge), tested with a tolerance of 1.0.

Errors: DecodeError names the path and the reason (missing, zero-byte, not a video, no
video stream, unsupported codec, corrupt data, truncated). IndexError for indices out of
range (a caller bug, not a bad file).
"""
import importlib
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np


class DecodeError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""


@dataclass(frozen=True)
class VideoMeta:
    path: str
    num_frames: int
    fps: float
    duration: float  # seconds of content (what decodes), not the header's claim
    width: int  # after rotation
    height: int  # after rotation
    # Clockwise degrees the stored frames are turned for display (0/90/180/270); None: the
    # backend turned them but does not say by how much (decord).
    rotation: Optional[int] = 0


# Backend name -> (module, class); imported on first use so decord stays optional.
_BACKENDS = {
    "pyav": ("cakes_video.datasets.decoding_pyav", "PyAVDecoder"),
    "decord": ("cakes_video.datasets.decoding_decord", "DecordDecoder"),
    "frames": ("cakes_video.datasets.decoding_frames", "FrameFolderDecoder"),
}


def open_video(path, backend: str = "pyav", **options) -> "Decoder":
    """Opens ``path`` with ``backend`` ("pyav", "decord" or "frames"); see module docstring."""
    if backend not in _BACKENDS:
        raise ValueError(f"unknown decoding backend {backend!r}; choose from {sorted(_BACKENDS)}")
    module, name = _BACKENDS[backend]
    return getattr(importlib.import_module(module), name)(os.fspath(path), **options)


class Decoder:
    """Base of every backend: context manager, index checks, order / repeat handling."""

    meta: VideoMeta

    def __init__(self, path: str):
        self.path = path

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        """Releases the file (a later get_frames opens it again)."""

    def get_frames(self, indices) -> np.ndarray:
        """Frames ``indices`` (1-D ints) as uint8 [T, H, W, 3] RGB, rotation applied."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        n = self.meta.num_frames
        if idx.size and (idx.min() < 0 or idx.max() >= n):
            bad = idx[(idx < 0) | (idx >= n)][0]
            raise IndexError(f"{self.path}: frame index {bad} outside [0, {n})")
        if idx.size == 0:
            return np.zeros((0, self.meta.height, self.meta.width, 3), np.uint8)
        if np.all(idx[1:] > idx[:-1]):  # already sorted, no repeats: spare the reordering copy
            return self._read_sorted(idx.tolist())
        wanted, inverse = np.unique(idx, return_inverse=True)
        frames = self._read_sorted(wanted.tolist())  # [U, H, W, 3]
        return frames[inverse]

    def _read_sorted(self, wanted: list) -> np.ndarray:
        """Frames for strictly increasing ``wanted`` indices, uint8 [U, H, W, 3]."""
        raise NotImplementedError


def check_file(path: str) -> None:
    """Raises DecodeError for a missing, non-regular or zero-byte file."""
    if not os.path.exists(path):
        raise DecodeError(f"{path}: missing (no such file)")
    if not os.path.isfile(path):
        raise DecodeError(f"{path}: not a regular file")
    if os.path.getsize(path) == 0:
        raise DecodeError(f"{path}: zero-byte file")


def rotate(frame: np.ndarray, rotation: int) -> np.ndarray:
    """Turns an [H, W, 3] frame ``rotation`` degrees clockwise (np.rot90 turns counter-clockwise)."""
    if rotation == 0:
        return frame
    return np.ascontiguousarray(np.rot90(frame, k=-rotation // 90))


def clockwise(ffmpeg_rotation: float) -> int:
    """FFmpeg's display-matrix angle (counter-clockwise) -> clockwise multiple of 90."""
    return int(round(-ffmpeg_rotation / 90.0)) % 4 * 90
