"""The "decord" backend of ``open_video``: ``decord.VideoReader.get_batch`` on the CPU.

At open, decord alone: frame count and rate, and frame 0 decoded (kept for the first
``get_frames``) for the displayed size, since decord reports no size. decord turns rotated
videos upright itself but does not say by how much, so ``meta.rotation`` is None here
(the pyav backend reports it). Reading frame 0 at open also turns decord's rotation bug
below into an error at open.

decord 0.6 seeks by counting frames from the keyframe it aims at, and silently returns
WRONG frames (another GOP's, or off by one) when the demuxer lands elsewhere or the
keyframe's decode-order position differs from its presentation position: measured on
AVI with B-frames (H.264, MPEG-4 ASP, also with a single keyframe, where the last frames
go wrong on some opens) and on MPEG-4 ASP in mp4 with open GOPs. Reading
consecutive frames from where the reader stands needs no seek and is always right, so
only a read that would seek asks a PyAV demux-only pass (once per file) whether decord's
seeks are exact; where they are not, the frames are reached by walking consecutive frames
(from the start if need be), which decord gets right (slower).

decord 0.6 also fails outright on some files that PyAV reads (datasets/DECODING.md): a
container without duration ("Failed to measure duration/frame-count"), VP9 with odd
frame sizes (frames after the first few), a corrupt packet (frames after it), some
rotated sizes (64x48 turned 90 degrees: "DECORDArrayCopyFromTo: The size must exactly
match"). Each failure becomes a DecodeError naming the file; the reader is reopened on
the next call because decord's state after an error is unreliable.
"""
import re
from typing import Optional

import decord
import numpy as np

from .decoding_base import DecodeError, Decoder, VideoMeta, check_file
from .decoding_pyav import Demuxed, demux_packets

WALK_CHUNK = 16  # frames per get_batch call when walking; bounds memory on long videos
SEEK_SAFE_FORMATS = ("mov", "mp4", "matroska", "webm")  # where decord's seeks were verified


class DecordDecoder(Decoder):
    """decord VideoReader behind the Decoder interface; ``num_threads=0`` lets decord pick."""

    def __init__(self, path: str, num_threads: int = 0):
        super().__init__(path)
        check_file(path)
        self._num_threads = num_threads
        self._seeks_exactly: Optional[bool] = None  # asked of PyAV at the first read that seeks
        try:
            self._reader, self._next = self._open(), 0  # _next: the frame read next without a seek
            n, fps = len(self._reader), float(self._reader.get_avg_fps())
            self._first = self._guarded(lambda r: r.get_batch([0]).asnumpy())[0]  # [H, W, 3], upright
            self._next = 1
        except DecodeError as decord_error:
            demux_packets(path)  # a file PyAV cannot read either: its error says why (no video stream, ...)
            raise decord_error
        if n <= 0 or fps <= 0:
            raise DecodeError(f"{path}: decord reports {n} frames at {fps} fps")
        height, width = self._first.shape[:2]
        self.meta = VideoMeta(path, n, fps, n / fps, width, height, rotation=None)

    def _open(self):
        try:
            return decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=self._num_threads)
        except (decord.DECORDError, RuntimeError) as err:  # RuntimeError: decord's "Error reading"
            raise DecodeError(f"{self.path}: decord cannot open it ({_first_line(err)})") from err

    def _guarded(self, call):
        """Runs ``call(reader)``, turning decord errors into DecodeError."""
        if self._reader is None:
            self._reader = self._open()
        try:
            return call(self._reader)
        except decord.DECORDError as err:
            self._drop_reader()
            raise DecodeError(f"{self.path}: decord failed ({_first_line(err)})") from err

    def _drop_reader(self) -> None:
        """Forgets the reader; the next read opens a fresh one, which stands at frame 0."""
        self._reader, self._next = None, 0

    def _read_sorted(self, wanted: list) -> np.ndarray:
        if wanted[0] != 0:
            return self._decode(wanted)
        first = self._first[None]  # [1, H, W, 3], decoded at open: spare a seek back
        return np.concatenate([first, self._decode(wanted[1:])]) if len(wanted) > 1 else first

    def _decode(self, wanted: list) -> np.ndarray:
        """Frames for strictly increasing ``wanted`` indices, uint8 [U, H, W, 3], from the reader."""
        position = self._next
        # Strictly increasing ints from the reader's position: decord needs no seek.
        consecutive = wanted[0] == position and wanted[-1] - wanted[0] == len(wanted) - 1
        if consecutive or self._decord_seeks_exactly():
            frames = self._guarded(lambda r: r.get_batch(wanted).asnumpy())
        else:
            if wanted[0] < position:  # walk from a fresh reader, at the start
                self._drop_reader()
            frames = self._guarded(lambda r: _walk(r, self._next, wanted))
        self._next = wanted[-1] + 1
        if frames.shape[1:3] != (self.meta.height, self.meta.width):
            raise DecodeError(f"{self.path}: decord gave {frames.shape[2]}x{frames.shape[1]} frames, "
                              f"the first frame is {self.meta.width}x{self.meta.height}")
        return frames

    def _decord_seeks_exactly(self) -> bool:
        if self._seeks_exactly is None:
            self._seeks_exactly = decord_seeks_exactly(demux_packets(self.path))
        return self._seeks_exactly

    def close(self) -> None:
        self._drop_reader()


def decord_seeks_exactly(demuxed: Demuxed) -> bool:
    """Whether decord's random access returns the right frames, judged from the packets."""
    rows = demuxed.rows
    keys = [i for i, row in enumerate(rows) if row[2]]
    pts = [row[0] for row in rows]
    if len(keys) < 2:  # a seek decodes from the start anyway: walking costs the same, and decord's
        return False   # skip-ahead miscounts near the end of AVI with B-frames (mmaction2_test.avi)
    if None in pts:
        return False
    rank = {p: i for i, p in enumerate(sorted(pts))}  # pts -> presentation index
    if any(rank[pts[k]] != k for k in keys):  # decord counts from the wrong frame
        return False
    reordered = demuxed.has_b_frames or pts != sorted(pts)
    return not reordered or any(name in SEEK_SAFE_FORMATS for name in demuxed.format_name.split(","))


def _walk(reader, start: int, wanted: list) -> np.ndarray:
    """Frames ``wanted`` (sorted, >= ``start``) read by consecutive get_batch calls from frame
    ``start``, where the reader stands: no seeks."""
    kept = []
    for first in range(start, wanted[-1] + 1, WALK_CHUNK):
        chunk = list(range(first, min(first + WALK_CHUNK, wanted[-1] + 1)))
        hits = [i for i in wanted if chunk[0] <= i <= chunk[-1]]
        batch = reader.get_batch(chunk).asnumpy()
        kept.extend(batch[i - first] for i in hits)
    return np.stack(kept)


def _first_line(err: Exception) -> str:
    """decord messages carry a C++ backtrace; the first line, less source locations, says what."""
    lines = str(err).strip().splitlines() or [type(err).__name__]
    return re.sub(r"\[[\d:]+\] \S+:\d+: ", "", lines[0])[:300]
