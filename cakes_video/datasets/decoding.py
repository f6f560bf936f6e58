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
MJPEG (mean abs diff 0.0 on the test videos and the shared compatibility videos); on VP9
with odd frame sizes they differ by a mean abs diff of about 0.45 (chroma rounding at the
odd edge), tested with a tolerance of 1.0.

Errors: DecodeError names the path and the reason (missing, zero-byte, not a video, no
video stream, unsupported codec, corrupt data, truncated). IndexError for indices out of
range (a caller bug, not a bad file).
"""
import os

from .decoding_base import DecodeError, Decoder, VideoMeta
from .decoding_frames import FrameFolderDecoder
from .decoding_pyav import PyAVDecoder


def _decord(path: str, **options) -> Decoder:
    # decord is imported on first use: it has no wheels on some platforms, and only this backend needs it.
    from .decoding_decord import DecordDecoder

    return DecordDecoder(path, **options)


# DATA.DECODER -> backend: the keys are the allowed values.
DECODERS = {"pyav": PyAVDecoder, "decord": _decord, "frames": FrameFolderDecoder}


def open_video(path, backend: str = "pyav", **options) -> Decoder:
    """Opens ``path`` with ``backend`` ("pyav", "decord" or "frames"); see module docstring."""
    if backend not in DECODERS:
        raise ValueError(f"unknown decoding backend {backend!r}; choose from {sorted(DECODERS)}")
    return DECODERS[backend](os.fspath(path), **options)


__all__ = ["DECODERS", "DecodeError", "Decoder", "VideoMeta", "open_video"]
