"""Tiny test videos whose pixels tell which frame they are, written with PyAV.

Frame ``i`` is written in base 7 as two flat grey areas: the bottom-left quarter holds
the high digit, the bottom-right quarter the low digit, each as level ``20 + 32 * digit``
(steps of 32 survive every lossy codec here, flat areas of nearby levels did not: MPEG-4
P-frames drift by almost a level of 6). The top-left sixteenth is white, so a test can
tell rotations apart. ``frame_index(rgb)`` reads the index back from a decoded frame.
"""
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

FORMATS = {".mp4": "mp4", ".avi": "avi", ".webm": "webm", ".mkv": "matroska", ".mov": "mov"}
# Options that keep encoding to milliseconds and make keyframes frequent enough to seek.
CODEC_OPTIONS = {
    "libx264": {"preset": "ultrafast", "bf": "2", "g": "8", "keyint_min": "8"},
    "libvpx-vp9": {"deadline": "realtime", "cpu-used": "8", "g": "8", "lag-in-frames": "0"},
    "mpeg4": {"g": "8", "bf": "1", "qscale": "2"},
    "mjpeg": {"qscale": "2"},
}
PIXEL_FORMATS = {"mjpeg": "yuvj420p"}
BASE, LEVEL0, STEP = 7, 20, 32
MAX_FRAMES = BASE * BASE


def index_frame(i: int, size) -> np.ndarray:
    """The uint8 [H, W, 3] picture for frame ``i``; ``size`` is (width, height)."""
    width, height = size
    frame = np.full((height, width, 3), 128, np.uint8)
    frame[: height // 4, : width // 4] = 255
    frame[height // 2 :, : width // 2] = LEVEL0 + STEP * (i // BASE)
    frame[height // 2 :, width // 2 :] = LEVEL0 + STEP * (i % BASE)
    return frame


def frame_index(rgb: np.ndarray) -> int:
    """Reads the index back from a decoded [H, W, 3] frame (centres of the bottom quarters)."""
    height, width = rgb.shape[:2]
    rows = slice(height * 5 // 8, height * 7 // 8)
    high = rgb[rows, width // 8 : width * 3 // 8].astype(np.float64).mean()
    low = rgb[rows, width * 5 // 8 : width * 7 // 8].astype(np.float64).mean()
    return BASE * int(round((high - LEVEL0) / STEP)) + int(round((low - LEVEL0) / STEP))


def make_index_video(path, codec="libx264", container=None, num_frames=32, fps=25, size=(64, 48),
                     pts_ms=None, rotation=0, codec_options=None, first=0) -> Path:
    """Writes ``num_frames`` index frames to ``path`` and returns it.

    ``container``: FFmpeg format name, by default from the suffix. ``size``: (width, height).
    ``pts_ms``: explicit presentation times in milliseconds (variable frame rate).
    ``rotation``: display rotation in counter-clockwise degrees (FFmpeg's convention).
    ``codec_options``: encoder options over :data:`CODEC_OPTIONS` (e.g. ``{"g": "1000"}``).
    ``first``: the index shown by the first frame (frames ``first`` ... ``first + num_frames - 1``:
    with the lossless "ffv1" codec a stretch of a longer video decodes to the same pixels).
    """
    if first + num_frames > MAX_FRAMES:
        raise ValueError(f"at most {MAX_FRAMES} frames keep grey levels distinct")
    path = Path(path)
    with av.open(str(path), "w", format=container or FORMATS[path.suffix]) as output:
        stream = _add_stream(output, codec, fps, size, pts_ms is not None, codec_options or {})
        if rotation:
            stream.set_display_rotation(rotation)
        for i in range(num_frames):
            frame = av.VideoFrame.from_ndarray(index_frame(first + i, size), format="rgb24")
            if pts_ms is not None:
                frame.pts, frame.time_base = pts_ms[i], Fraction(1, 1000)
            else:
                frame.pts, frame.time_base = i, Fraction(1, fps)
            output.mux(stream.encode(frame.reformat(format=stream.pix_fmt)))
        output.mux(stream.encode(None))
    return path


def _add_stream(output, codec, fps, size, variable_rate, codec_options):
    stream = output.add_stream(codec, rate=fps, options={**CODEC_OPTIONS.get(codec, {}), **codec_options})
    stream.width, stream.height = size
    stream.pix_fmt = PIXEL_FORMATS.get(codec, "yuv420p")
    stream.codec_context.time_base = Fraction(1, 1000) if variable_rate else Fraction(1, fps)
    return stream
