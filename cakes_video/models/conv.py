"""3D convolutions padded to "same": only the stride changes the output size,
``(T', H', W') = ceil((T, H, W) / stride)`` for odd kernels."""
from typing import Sequence, Tuple

from torch import nn

Triple = Tuple[int, int, int]


def same_padding(kernel: Sequence[int]) -> Triple:
    """Padding ``(pt, ph, pw)`` that keeps the size of every axis of an odd ``kernel`` at stride 1."""
    return tuple(k // 2 for k in kernel)


def conv3d_same(in_channels: int, out_channels: int, kernel: Triple, stride: Triple = (1, 1, 1),
                bias: bool = False) -> nn.Conv3d:
    """Conv3d ``[N, C_in, T, H, W] -> [N, C_out, T', H', W']`` padded by :func:`same_padding`."""
    return nn.Conv3d(in_channels, out_channels, kernel, stride=stride, padding=same_padding(kernel), bias=bias)
