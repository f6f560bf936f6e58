"""The "frames" backend of ``open_video``: a folder of JPEG frames (TSN / Something-Something V1).

``open_video(folder, "frames", template="{:05d}.jpg", start_index=1, num_frames=None,
fps=30.0)``: frame ``i`` is the file ``template.format(start_index + i)``. Without
``num_frames`` the consecutive files from ``start_index`` are counted. A folder stores
no frame rate, hence ``fps`` (Something-Something V1 was extracted at 12 fps). Frame 0
is read at open, for the size, and kept for the reads that ask for it.
"""
import os

import numpy as np
from PIL import Image

from .decoding_base import DecodeError, Decoder, VideoMeta


class FrameFolderDecoder(Decoder):
    """Reads frames ``template.format(start_index + i)`` from the folder ``path``."""

    def __init__(self, path: str, template: str = "{:05d}.jpg", start_index: int = 1,
                 num_frames=None, fps: float = 30.0):
        super().__init__(path)
        if not os.path.isdir(path):
            reason = "missing" if not os.path.exists(path) else "not a folder of frames"
            raise DecodeError(f"{path}: {reason}")
        self._template, self._start = template, start_index
        n = _count_frames(path, template, start_index) if num_frames is None else int(num_frames)
        if n <= 0:
            raise DecodeError(f"{path}: no frame named {template.format(start_index)!r}")
        # Frame 0 is decoded for the size (a corrupt one fails here) and kept for the first read.
        self._first = self._load(0)  # uint8 [H, W, 3]
        height, width = self._first.shape[:2]
        self.meta = VideoMeta(path, n, float(fps), n / float(fps), width, height, 0)

    def _load(self, i: int) -> np.ndarray:
        """Frame ``i`` as uint8 [H, W, 3]."""
        file = os.path.join(self.path, self._template.format(self._start + i))
        try:
            with Image.open(file) as image:
                return np.asarray(image.convert("RGB"))
        except OSError as err:  # missing file, truncated or non-image data
            raise DecodeError(f"{self.path}: cannot read frame {i} ({file}): {err}") from err

    def _read_sorted(self, wanted: list) -> np.ndarray:
        frames = [self._first if i == 0 else self._load(i) for i in wanted]
        sizes = {f.shape for f in frames}
        if len(sizes) > 1:
            raise DecodeError(f"{self.path}: frames differ in size: {sorted(sizes)}")
        return np.stack(frames)


def _count_frames(folder: str, template: str, start_index: int) -> int:
    """Number of consecutive files template.format(start_index), template.format(start_index + 1), ..."""
    names = set(os.listdir(folder))
    n = 0
    while template.format(start_index + n) in names:
        n += 1
    return n
