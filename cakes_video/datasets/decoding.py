"""Decoding behind one small interface: ``open_video(path, backend)`` -> Decoder.

Interface (every backend)::

    with open_video(path, backend="pyav") as video:   # "pyav", "decord", "frames"
        video.meta            # VideoMeta(path, num_frames, fps, duration, width, height, rotation)
        video.get_frames(idx) # np.uint8 [T, H, W, 3] for frame indices idx, rotation applied

Errors raise DecodeError whose message names the path.
"""
from dataclasses import dataclass


class DecodeError(RuntimeError):
    """A video that cannot be opened or decoded; the message names the file."""


@dataclass(frozen=True)
class VideoMeta:
    path: str
    num_frames: int
    fps: float
    duration: float  # seconds
    width: int  # after rotation
    height: int  # after rotation
    rotation: int = 0  # degrees, as stored in the container
