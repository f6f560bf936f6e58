"""The "pyav" backend of ``open_video``: FFmpeg through PyAV, frame-exact with keyframe seeks.

How frames are found: one demux-only pass (no decoding) lists every video packet, which
gives the true frame count (also for truncated files whose header claims more), the
presentation timestamps in order, and the keyframes. Frame ``i`` is the ``i``-th
timestamp. Reading a frame seeks to the last keyframe at or before it and decodes
forward, matching decoded frames to the table by pts. When timestamps are missing or
repeated, there is a single keyframe, the packet pts hide the codec's frame reordering
(AVI with H.264 B-frames), or decoded pts contradict the table (out of order as in
packed-B-frame AVI, or a seek that lands after the wanted frame), the file is read
sequentially from the start instead and frames are counted in output order.

Speed: the container of the demux pass is seeked back and decoded (one open per file,
unless it is read sequentially), and one swscale context converts every frame to RGB.
"""
from dataclasses import dataclass

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .decoding_base import DecodeError, Decoder, VideoMeta, check_file, clockwise, rotate


def header_rate(stream):
    """The frame rate a stream's header gives (average, else guessed, else base; None if none)."""
    return stream.average_rate or stream.guessed_rate or stream.base_rate


def open_container(path: str):
    """av.open that turns every failure into DecodeError; returns (container, video stream)."""
    check_file(path)
    try:
        # metadata_errors="ignore": some 3gp files carry UTF-16 tags that fail to decode.
        container = av.open(path, metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as err:
        raise DecodeError(f"{path}: cannot open as a video ({err})") from err
    if not container.streams.video:
        container.close()
        raise DecodeError(f"{path}: no video stream")
    stream = container.streams.video[0]
    if stream.codec_context is None:  # PyAV found no decoder for the stream's codec
        container.close()
        raise DecodeError(f"{path}: unsupported video codec")
    return container, stream


@dataclass(frozen=True)
class _PacketTable:
    """What one demux-only pass tells: frame count, timestamps, keyframes (no decoding)."""

    pts: np.ndarray  # int64 [N] presentation timestamps in presentation order
    keyframe_of: np.ndarray  # int64 [N] presentation index of the last keyframe at or before i; -1: none
    seek_ts: dict  # keyframe presentation index -> its pts, the timestamp to seek to
    has_timestamps: bool  # every packet has a distinct pts
    duration: float  # seconds, from the timestamps; 0.0 when has_timestamps is False
    mean_rate: float  # frames per second between the first and last timestamps; 0.0 if unknown


@dataclass(frozen=True)
class Demuxed:
    """The video packets of a file, in decode order, and what the container says of them."""

    rows: list  # (pts, dts, is_keyframe, duration) per packet
    time_base: object  # Fraction: seconds per timestamp unit
    format_name: str  # FFmpeg demuxer names, e.g. "matroska,webm"
    has_b_frames: bool  # the codec reorders frames (AVI packet pts do not show it)


def demux_packets(path: str) -> Demuxed:
    """One pass over the video packets of ``path``, decoding nothing."""
    container, stream = open_container(path)
    with container:  # closed after the pass, whatever happens
        return _read_packets(container, stream, path)


def _read_packets(container, stream, path: str) -> Demuxed:
    """Demuxes every video packet of an open container (it is left at the end of the file)."""
    rows = _packet_rows(container, stream, path)
    reorders = bool(stream.codec_context.has_b_frames)
    return Demuxed(rows, stream.time_base, container.format.name, reorders)


def _packet_rows(container, stream, path: str) -> list:
    """(pts, dts, is_keyframe, duration) of every video packet, in decode order; flush
    markers and packets an edit list discards are left out."""
    rows = []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            rows.append((packet.pts, packet.dts, packet.is_keyframe, packet.duration))
    except av.FFmpegError as err:
        raise DecodeError(f"{path}: corrupt container after {len(rows)} packets ({err})") from err
    if not rows:
        raise DecodeError(f"{path}: video stream has no packets (empty or truncated)")
    return rows


def _table_from_rows(rows: list, time_base) -> _PacketTable:
    n = len(rows)
    pts_list = [r[0] for r in rows]
    if None in pts_list or len(set(pts_list)) != n:
        return _PacketTable(np.arange(n), np.full(n, -1), {}, False, 0.0, 0.0)
    order = np.argsort(np.asarray(pts_list, np.int64), kind="stable")
    pts = np.asarray(pts_list, np.int64)[order]
    key_rows = [r for r in rows if r[2]]
    key_pos = np.searchsorted(pts, [r[0] for r in key_rows])  # presentation index of each keyframe
    # FFmpeg's mp4, mkv, webm and 3gp demuxers land exactly on a keyframe sought by its pts
    # (by its dts they land one keyframe early); a late landing is caught by _Resync.
    seek_ts = {int(p): r[0] for p, r in zip(key_pos, key_rows)}
    marks = np.full(n, -1)
    marks[sorted(seek_ts)] = sorted(seek_ts)
    keyframe_of = np.maximum.accumulate(marks)
    last = rows[int(order[-1])][3] or 0
    span = float((pts[-1] - pts[0]) * time_base)
    duration = float((pts[-1] - pts[0] + last) * time_base)
    return _PacketTable(pts, keyframe_of, seek_ts, True, duration, (n - 1) / span if span > 0 else 0.0)


def _in_decode_order(rows: list) -> bool:
    pts = [row[0] for row in rows]
    return None not in pts and all(a < b for a, b in zip(pts, pts[1:]))


class _Resync(Exception):
    """Timestamps after a seek disagree with the packet table: decode sequentially instead."""


class PyAVDecoder(Decoder):
    """PyAV (FFmpeg) decoder with keyframe seeking; see the module docstring."""

    def __init__(self, path: str, num_threads: int = 0):
        super().__init__(path)
        self._num_threads = num_threads
        container, stream = open_container(path)
        try:  # whatever fails (corrupt packets, no frame, no frame rate) closes the container
            self._start(container, stream)
        except BaseException:
            container.close()
            raise

    def _start(self, container, stream) -> None:
        """Reads the packet table of the open ``container``, keeps it open for decoding, and
        decodes the first frame for :attr:`meta`."""
        demuxed = _read_packets(container, stream, self.path)
        self._table = _table_from_rows(demuxed.rows, demuxed.time_base)
        # A codec that reorders frames behind packet pts already in decode order (AVI) means
        # the pts are not presentation times: count frames in output order instead.
        fake_pts = demuxed.has_b_frames and _in_decode_order(demuxed.rows)
        self._seekable = self._table.has_timestamps and len(self._table.seek_ts) >= 2 and not fake_pts
        # The demuxed container is reused (a seek back to the first keyframe is cheaper than
        # opening the file again); nothing was decoded yet, so threading can still be set.
        self._container, self._stream = container, stream
        self._set_threads()
        self._frames = None  # iterator of (presentation index, av.VideoFrame)
        self._pos = -1  # presentation index of the last frame taken from self._frames
        self._last = None  # (index, array) of the last frame returned: asking again is free
        self._rotation = None  # clockwise degrees, read from the first decoded frame
        # One swscale context for every frame: a new one per frame (what frame.to_ndarray
        # makes) starts its threads each time, which costs more than converting a small frame.
        self._to_rgb = VideoReformatter()
        first = self._read_sorted([0])[0]
        self.meta = self._make_meta(first.shape[:2])

    def _set_threads(self) -> None:
        self._stream.thread_type = "AUTO"  # frame + slice threads
        self._stream.codec_context.thread_count = self._num_threads

    def _make_meta(self, size) -> VideoMeta:
        stream, table = self._stream, self._table
        n = len(table.pts)
        rate = header_rate(stream)
        fps = float(rate) if rate else 0.0
        # The header's rate can be wrong for variable frame rate; trust timestamps when they
        # disagree by more than their millisecond rounding can explain.
        if table.mean_rate and (fps <= 0 or abs(fps - table.mean_rate) > 0.02 * table.mean_rate):
            fps = table.mean_rate
        if fps <= 0:
            raise DecodeError(f"{self.path}: no frame rate in the stream")
        duration = table.duration if table.duration > 0 else n / fps
        h, w = size
        return VideoMeta(self.path, n, fps, duration, w, h, self._rotation, claimed_seconds(self._container, stream))

    def close(self) -> None:
        self._frames = None
        if self._container is not None:
            self._container.close()
            self._container = None

    def _restart(self, keyframe) -> None:
        """Positions decoding just before presentation frame ``keyframe`` (None: the start)."""
        if keyframe is None or keyframe < 0 or self._container is None:
            self.close()
            self._container, self._stream = open_container(self.path)
            self._set_threads()
        if keyframe is not None and keyframe >= 0:
            ts = int(self._table.seek_ts[keyframe])
            self._container.seek(ts, stream=self._stream, backward=True, any_frame=False)
        self._frames = self._numbered(self._container.decode(self._stream))
        self._pos = -1
        self._last = None

    def _numbered(self, frames):
        """Yields (presentation index, frame): by pts when seeking, by output order otherwise."""
        if not self._seekable:
            yield from enumerate(frames)
            return
        pts, previous = self._table.pts, -1
        for frame in frames:
            i = int(np.searchsorted(pts, frame.pts)) if frame.pts is not None else -1
            if frame.pts is None or i >= len(pts) or pts[i] != frame.pts or i <= previous:
                raise _Resync()
            previous = i
            yield i, frame

    def _read_sorted(self, wanted: list) -> np.ndarray:
        try:
            return np.stack([self._advance_to(i) for i in wanted])
        except _Resync:
            self._seekable = False
            self._restart(None)
            return np.stack([self._advance_to(i) for i in wanted])

    def _advance_to(self, i: int) -> np.ndarray:
        """Frame ``i`` as uint8 [H, W, 3]; seeks only when that skips frames."""
        if self._last is not None and self._last[0] == i:
            return self._last[1]
        self._position_for(i)
        while True:
            j, frame = self._next_frame()
            if frame is None:
                break
            self._pos = j
            if j == i:
                if self._rotation is None:
                    self._rotation = clockwise(frame.rotation)
                rgb = self._to_rgb.reformat(frame, format="rgb24").to_ndarray()
                self._last = (j, rotate(rgb, self._rotation))
                return self._last[1]
            if j > i:
                raise _Resync()
        if self._seekable:
            raise _Resync()
        raise DecodeError(f"{self.path}: truncated or corrupt, decoded {self._pos + 1} frames, "
                          f"wanted frame {i}")

    def _position_for(self, i: int) -> None:
        """Restarts decoding when frame ``i`` is behind, or a keyframe lets it skip frames."""
        behind = self._frames is None or i <= self._pos
        if self._seekable and (behind or self._table.keyframe_of[i] > self._pos + 1):
            self._restart(int(self._table.keyframe_of[i]))
        elif behind:
            self._restart(None)

    def _next_frame(self):
        """(index, frame) from the running decode; (None, None) at the end of the stream."""
        try:
            return next(self._frames, (None, None))
        except av.FFmpegError as err:
            self._frames = None
            where = f"after frame {self._pos}" if self._pos >= 0 else "before the first frame"
            raise DecodeError(f"{self.path}: corrupt data {where} ({err})") from err


def header_duration(path: str):
    """Seconds the container header of ``path`` claims for the video (:func:`claimed_seconds`)."""
    container, stream = open_container(path)
    try:
        return claimed_seconds(container, stream)
    finally:
        container.close()


def claimed_seconds(container, stream):
    """Seconds the header claims for the video (stream duration, else the file's); None when it
    claims nothing. Compared with ``meta.duration`` it reveals truncated files."""
    if stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None
