"""The "decord" backend of ``open_video``: ``decord.VideoReader.get_batch`` on the CPU.

decord turns rotated videos upright itself but does not say by how much, so the
rotation in ``meta`` is read with PyAV (which must also open the file).

decord 0.6 seeks by counting frames from the keyframe it aims at, and silently returns
WRONG frames (another GOP's, or off by one) when the demuxer lands elsewhere or the
keyframe's decode-order position differs from its presentation position: measured on
AVI with B-frames (H.264, MPEG-4 ASP) and on MPEG-4 ASP in mp4 with open GOPs. A PyAV
demux-only pass finds such files at open; they are read by walking consecutive frames
from the start, which decord gets right (slower).

decord 0.6 also fails outright on some files that PyAV reads (datasets/DECODING.md): a
container without duration ("Failed to measure duration/frame-count"), VP9 with odd
frame sizes (frames after the first few), a corrupt packet (frames after it), some
rotated sizes (64x48 turned 90 degrees: "DECORDArrayCopyFromTo: The size must exactly
match"). Each failure becomes a DecodeError naming the file; the reader is reopened on
the next call because decord's state after an error is unreliable.
"""
import re

import decord
import numpy as np

from .decoding import Decoder, DecodeError, VideoMeta, check_file
from .decoding_pyav import Demuxed, demux_packets, read_rotation

WALK_CHUNK = 16  # frames per get_batch call when walking; bounds memory on long videos
SEEK_SAFE_FORMATS = ("mov", "mp4", "matroska", "webm")  # where decord's seeks were verified


class DecordDecoder(Decoder):
    """decord VideoReader behind the Decoder interface; ``num_threads=0`` lets decord pick."""

    def __init__(self, path: str, num_threads: int = 0):
        super().__init__(path)
        check_file(path)
        self._num_threads = num_threads
        self._seeks_exactly = decord_seeks_exactly(demux_packets(path))
        self._reader = self._open()
        n, fps = len(self._reader), float(self._reader.get_avg_fps())
        if n <= 0 or fps <= 0:
            raise DecodeError(f"{path}: decord reports {n} frames at {fps} fps")
        first = self._read_sorted([0])[0]
        height, width = first.shape[:2]
        self.meta = VideoMeta(path, n, fps, n / fps, width, height, read_rotation(path))

    def _open(self):
        try:
            return decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=self._num_threads)
        except decord.DECORDError as err:
            raise DecodeError(f"{self.path}: decord cannot open it ({_first_line(err)})") from err

    def _guarded(self, call):
        """Runs ``call(reader)``, turning decord errors into DecodeError."""
        if self._reader is None:
            self._reader = self._open()
        try:
            return call(self._reader)
        except decord.DECORDError as err:
            self._reader = None
            raise DecodeError(f"{self.path}: decord failed ({_first_line(err)})") from err

    def _read_sorted(self, wanted: list) -> np.ndarray:
        if self._seeks_exactly:
            return self._guarded(lambda r: r.get_batch(wanted).asnumpy())
        self._reader = None  # walk from a fresh reader, positioned at the start
        return self._guarded(lambda r: _walk(r, wanted))

    def close(self) -> None:
        self._reader = None


def decord_seeks_exactly(demuxed: Demuxed) -> bool:
    """Whether decord's random access returns the right frames, judged from the packets."""
    rows = demuxed.rows
    keys = [i for i, row in enumerate(rows) if row[2]]
    pts = [row[0] for row in rows]
    if len(keys) < 2:  # every seek goes to the start
        return True
    if None in pts:
        return False
    rank = {p: i for i, p in enumerate(sorted(pts))}  # pts -> presentation index
    if any(rank[pts[k]] != k for k in keys):  # decord counts from the wrong frame
        return False
    reordered = demuxed.has_b_frames or pts != sorted(pts)
    return not reordered or any(name in SEEK_SAFE_FORMATS for name in demuxed.format_name.split(","))


def _walk(reader, wanted: list) -> np.ndarray:
    """Frames ``wanted`` (sorted) read by consecutive get_batch calls from frame 0: no seeks."""
    kept = []
    for start in range(0, wanted[-1] + 1, WALK_CHUNK):
        chunk = list(range(start, min(start + WALK_CHUNK, wanted[-1] + 1)))
        hits = [i for i in wanted if chunk[0] <= i <= chunk[-1]]
        batch = reader.get_batch(chunk).asnumpy()
        kept.extend(batch[i - start] for i in hits)
    return np.stack(kept)


def _first_line(err: Exception) -> str:
    """decord messages carry a C++ backtrace; the first line, less source locations, says what."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return re.sub(r"\[[\d:]+\] \S+:\d+: ", "", lines[0])[:300]
