"""What every decoding backend shares: the error, the metadata, the Decoder base class and
small helpers. The interface and the backends: :mod:`.decoding`."""
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
    # Seconds the container header claims; None when it claims nothing or the backend does not
    # read it (pyav reads it: :func:`truncation` compares it with ``duration``).
    claimed_duration: Optional[float] = None


# Truncated: content under this fraction of the header's claim, and short by 2+ frames.
MIN_CONTENT_FRACTION = 0.9


def truncation(meta: VideoMeta, claimed: Optional[float]) -> Optional[str]:
    """How much shorter the content of ``meta`` is than the header's ``claimed`` seconds, when it
    is clearly so (a truncated download often keeps a header that promises the whole clip);
    None otherwise."""
    if not claimed or meta.duration >= MIN_CONTENT_FRACTION * claimed or claimed - meta.duration <= 2 / meta.fps:
        return None
    return (f"header claims {claimed:.2f} s, content is {meta.duration:.2f} s ({meta.num_frames} frames of the "
            f"{round(claimed * meta.fps)} claimed)")


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
