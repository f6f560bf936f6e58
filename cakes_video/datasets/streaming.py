"""Reading a video once from start to end, one frame at a time (PyAV): for inputs too long
to index, like the long videos predicted window by window and the transcoders' inputs.

Nothing is held but the frame being decoded: the demuxer hands over one packet at a time
and the caller decides, frame by frame, which frames become RGB arrays. Frame ``i`` is the
``i``-th frame in decoding output order (presentation order), as the pyav backend counts
frames when it reads a file sequentially; frames are turned upright by their rotation tag,
like every decoder here.
"""
from fractions import Fraction
from typing import Callable, Iterator, Optional, Tuple

import av
import numpy as np
from av.video.reformatter import VideoReformatter

from .decoding_base import DecodeError, clockwise, rotate
from .decoding_pyav import header_rate, open_container


def frame_rate(stream, path: str) -> Fraction:
    """The stream's frame rate as its header gives it (:func:`~.decoding_pyav.header_rate`)."""
    rate = header_rate(stream)
    if not rate:
        raise DecodeError(f"{path}: no frame rate in the stream")
    return Fraction(rate)


def decoded_frames(container, stream, path: str) -> Iterator:
    """Yields the av.VideoFrames of ``stream`` in presentation order; DecodeError on corrupt
    data or when no frame decodes."""
    stream.thread_type = "AUTO"
    count = 0
    try:
        for frame in container.decode(stream):
            yield frame
            count += 1
    except av.FFmpegError as err:
        raise DecodeError(f"{path}: corrupt data after {count} frames ({err})") from err
    if count == 0:
        raise DecodeError(f"{path}: no frame decodes")


class FrameStream:
    """One sequential pass over the frames of the video file ``path``::

        with FrameStream(path) as video:
            video.fps                                   # the header's frame rate
            for i, rgb in video.frames(wanted):         # rgb: uint8 [H, W, 3] upright, or None
                ...

    Opening fails with DecodeError naming the file (missing, not a video, no video stream).
    """

    def __init__(self, path: str):
        self.path = path
        self._container, self._stream = open_container(path)
        try:
            self.fps = float(frame_rate(self._stream, path))
        except DecodeError:
            self.close()
            raise
        # One swscale context for every frame (as the pyav backend: a new one per frame costs more).
        self._to_rgb = VideoReformatter()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        self._container.close()

    def frames(self, wanted: Callable[[int], bool]) -> Iterator[Tuple[int, Optional[np.ndarray]]]:
        """``(i, frame)`` for every frame in order; ``frame`` is the upright RGB picture when
        ``wanted(i)``, else None (the conversion is skipped). ``wanted`` is asked just before
        frame ``i`` is converted, so it may depend on what the caller did with earlier frames."""
        for i, frame in enumerate(decoded_frames(self._container, self._stream, self.path)):
            if not wanted(i):
                yield i, None
                continue
            rgb = self._to_rgb.reformat(frame, format="rgb24").to_ndarray()
            yield i, rotate(rgb, clockwise(frame.rotation))
