"""The "decord" backend of ``open_video``: ``decord.VideoReader.get_batch`` on the CPU.

decord turns rotated videos upright itself but says neither by how much nor the frame
size, so one PyAV pass at open lists the packets (for the seek check below) and decodes
the first frame (rotation, size); decord itself decodes nothing until asked, except
frame 0 of a rotated file, which is read at open to catch decord's rotation bug below.

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
from .decoding_pyav import Demuxed, demux_packets

WALK_CHUNK = 16  # frames per get_batch call when walking; bounds memory on long videos
SEEK_SAFE_FORMATS = ("mov", "mp4", "matroska", "webm")  # where decord's seeks were verified


class DecordDecoder(Decoder):
    """decord VideoReader behind the Decoder interface; ``num_threads=0`` lets decord pick."""

    def __init__(self, path: str, num_threads: int = 0):
        super().__init__(path)
        check_file(path)
        self._num_threads = num_threads
        demuxed = demux_packets(path, first_frame=True)  # rotation and size: decord says neither
        self._seeks_exactly = decord_seeks_exactly(demuxed)
        self._reader = self._open()
        n, fps = len(self._reader), float(self._reader.get_avg_fps())
        if n <= 0 or fps <= 0:
            raise DecodeError(f"{path}: decord reports {n} frames at {fps} fps")
        width, height = demuxed.stored_size
        if demuxed.rotation % 180 == 90:
            width, height = height, width
        self.meta = VideoMeta(path, n, fps, n / fps, width, height, demuxed.rotation)
        if demuxed.rotation:  # decord fails to copy out some turned sizes: say so at open
            self._read_sorted([0])

    def _open(self):
        self._at_start = True  # nothing read yet: a walk can start without reopening
        try:
            return decord.VideoReader(self.path, ctx=decord.cpu(0), num_threads=self._num_threads)
        except decord.DECORDError as err:
            raise DecodeError(f"{self.path}: decord cannot open it ({_first_line(err)})") from err

    def _guarded(self, call):
        """Runs ``call(reader)``, turning decord errors into DecodeError."""
        if self._reader is None:
            self._reader = self._open()
        self._at_start = False
        try:
            return call(self._reader)
        except decord.DECORDError as err:
            self._reader = None
            raise DecodeError(f"{self.path}: decord failed ({_first_line(err)})") from err

    def _read_sorted(self, wanted: list) -> np.ndarray:
        if self._seeks_exactly:
            frames = self._guarded(lambda r: r.get_batch(wanted).asnumpy())
        else:
            if not self._at_start:  # walk from a fresh reader, positioned at the start
                self._reader = None
            frames = self._guarded(lambda r: _walk(r, wanted))
        if frames.shape[1:3] != (self.meta.height, self.meta.width):  # meta came from PyAV
            raise DecodeError(f"{self.path}: decord gave {frames.shape[2]}x{frames.shape[1]} frames, "
                              f"the stream is {self.meta.width}x{self.meta.height}")
        return frames

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
