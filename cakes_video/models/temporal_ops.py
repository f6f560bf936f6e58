"""The spatio-temporal convolution inside a ResNet block, chosen by an op code.

Every module here takes ``[N, C_in, T, H, W]`` and returns ``[N, C_out, T', H', W']`` with
``(T', H', W') = ceil((T, H, W) / stride)`` (all kernels pad to "same"), and includes its
BatchNorm (and the ReLU when ``relu=True``), so a block only wires them together.

Op codes (``k`` = kernel size, ``stride = (st, s, s)``):

- ``"3d"``: one kxkxk convolution (R3D / I3D).
- ``"2d"``: one 1xkxk convolution (C2D); a temporal stride subsamples frames.
- ``"2plus1d"``: R(2+1)D, 1xkxk to ``midplanes`` channels, BN, ReLU, then kx1x1; spatial
  stride on the first conv, temporal stride on the second.
- ``"p3d"``: Pseudo-3D (Qiu et al., ICCV 2017) with S = 1xkxk and T = kx1x1 of the same width,
  variant ``"A"`` (S then T), ``"B"`` (S and T in parallel, summed) or ``"C"`` (S, plus T applied
  to S). The network cycles A, B, C over consecutive blocks as in the paper.
- ``"cakes"``: a CAKES layer whose output channels are split among sub-kernels (``counts``).

``"mc"`` (MC3) is not an op of one conv: the network resolves it per stage to "3d" or "2d".
"""
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import torch
from torch import nn

from .cakes import build_cakes_layer
from .conv import Triple, conv3d_same


class P3DWiring(NamedTuple):
    """How a P3D variant wires S (1xkxk) and T (kx1x1)."""

    strides: Callable[[Triple], Tuple[Triple, Triple]]  # block stride -> (S stride, T stride)
    t_reads_input: bool  # T sees the block input (else S's output)
    adds_s: bool  # the output is S + T (else T alone)


# MODEL.P3D_VARIANTS entries -> wiring: A = T(S(x)), B = S(x) + T(x), C = S(x) + T(S(x)).
P3D_VARIANTS = {
    "A": P3DWiring(lambda st: ((1, st[1], st[2]), (st[0], 1, 1)), t_reads_input=False, adds_s=False),
    "B": P3DWiring(lambda st: (tuple(st), tuple(st)), t_reads_input=True, adds_s=True),
    "C": P3DWiring(lambda st: (tuple(st), (1, 1, 1)), t_reads_input=False, adds_s=True),
}


def r2plus1d_midplanes(in_channels: int, out_channels: int, k: int = 3) -> int:
    """Width between the spatial and temporal convs of R(2+1)D.

    Chosen so the pair has about the parameters of one kxkxk conv ``in_channels -> out_channels``
    (Tran et al., CVPR 2018); torchvision applies it with the *block's* in/out channels to both
    convs of a block, and so do we.
    """
    return (in_channels * out_channels * k ** 3) // (in_channels * k * k + k * out_channels)


class ConvBN(nn.Module):
    """Conv3d (no bias), BatchNorm3d, optional ReLU: ``[N, C_in, T, H, W] -> [N, C_out, T', H', W']``."""

    def __init__(self, in_channels: int, out_channels: int, kernel: Triple, stride: Triple = (1, 1, 1),
                 relu: bool = True):
        super().__init__()
        self.conv = conv3d_same(in_channels, out_channels, kernel, stride)
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.bn(self.conv(x)))


class Conv2Plus1d(nn.Module):
    """R(2+1)D factorisation: ``conv_s`` (1 x kH x kW), ``bn_s``, ReLU, ``conv_t`` (kT x 1 x 1), ``bn``.

    ``kernel = (kT, kH, kW)``; the spatial stride goes to ``conv_s``, the temporal one to ``conv_t``.
    Shapes: ``[N, C_in, T, H, W] -> [N, midplanes, T, H', W'] -> [N, C_out, T', H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, midplanes: int, kernel: Triple = (3, 3, 3),
                 stride: Triple = (1, 1, 1), relu: bool = True):
        super().__init__()
        kt, kh, kw = kernel
        st, sh, sw = stride
        self.conv_s = conv3d_same(in_channels, midplanes, (1, kh, kw), (1, sh, sw))
        self.bn_s = nn.BatchNorm3d(midplanes)
        self.conv_t = conv3d_same(midplanes, out_channels, (kt, 1, 1), (st, 1, 1))
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.out_relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn_s(self.conv_s(x)))
        return self.out_relu(self.bn(self.conv_t(x)))


class P3DConv(nn.Module):
    """Pseudo-3D conv: S = ``conv_s`` 1xkxk + ``bn_s`` + ReLU, T = ``conv_t`` kx1x1, then ``bn``.

    Variant A: ``bn(T(S(x)))``; B: ``bn(S(x) + T(x))``; C: ``bn(S(x) + T(S(x)))``. In A the stride
    is split (spatial on S, temporal on T); in B both branches see ``x`` so both take the full
    stride; in C, S takes the full stride so that T(S(x)) and S(x) have one shape.
    ``[N, C_in, T, H, W] -> [N, C_out, T', H', W']``.
    """

    def __init__(self, in_channels: int, out_channels: int, variant: str = "A", k: int = 3,
                 stride: Triple = (1, 1, 1), relu: bool = True):
        super().__init__()
        if variant not in P3D_VARIANTS:
            raise ValueError(f"unknown P3D variant {variant!r}; expected one of {list(P3D_VARIANTS)}")
        self.variant = variant
        self.wiring = P3D_VARIANTS[variant]
        s_stride, t_stride = self.wiring.strides(stride)
        t_in = in_channels if self.wiring.t_reads_input else out_channels
        self.conv_s = conv3d_same(in_channels, out_channels, (1, k, k), s_stride)
        self.bn_s = nn.BatchNorm3d(out_channels)
        self.conv_t = conv3d_same(t_in, out_channels, (k, 1, 1), t_stride)
        self.bn = nn.BatchNorm3d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.out_relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.relu(self.bn_s(self.conv_s(x)))
        t = self.conv_t(x if self.wiring.t_reads_input else s)
        return self.out_relu(self.bn(s + t if self.wiring.adds_s else t))


def temporal_conv_out_channels(op: str, out_channels: int, counts: Optional[Dict[str, int]] = None) -> int:
    """Channels a temporal conv produces: ``out_channels``, or the sum of the counts for "cakes"."""
    return sum(counts.values()) if op == "cakes" else out_channels


def _kxkxk(in_channels, out_channels, stride, k, relu, **_) -> nn.Module:
    return ConvBN(in_channels, out_channels, (k, k, k), stride, relu)


def _1xkxk(in_channels, out_channels, stride, k, relu, **_) -> nn.Module:
    return ConvBN(in_channels, out_channels, (1, k, k), stride, relu)


def _2plus1d(in_channels, out_channels, stride, k, relu, midplanes=None, **_) -> nn.Module:
    mid = midplanes if midplanes is not None else r2plus1d_midplanes(in_channels, out_channels, k)
    return Conv2Plus1d(in_channels, out_channels, mid, (k, k, k), stride, relu)


def _p3d(in_channels, out_channels, stride, k, relu, p3d_variant="A", **_) -> nn.Module:
    return P3DConv(in_channels, out_channels, p3d_variant, k, stride, relu)


def _cakes(in_channels, out_channels, stride, k, relu, counts=None, cakes_impl="reference", **_) -> nn.Module:
    if not counts:
        raise ValueError("op 'cakes' needs the layer's sub-kernel counts")
    return build_cakes_layer(in_channels, counts, stride, k, relu, cakes_impl)


# Op code -> builder; the keys are the allowed values of MODEL.TEMPORAL_OP / STAGE_TEMPORAL_OPS.
TEMPORAL_OPS = {"3d": _kxkxk, "2d": _1xkxk, "2plus1d": _2plus1d, "p3d": _p3d, "cakes": _cakes}


def make_temporal_conv(op: str, in_channels: int, out_channels: int, stride: Triple = (1, 1, 1),
                       kernel_size: int = 3, relu: bool = True, *, midplanes: Optional[int] = None,
                       p3d_variant: str = "A", counts: Optional[Dict[str, int]] = None,
                       cakes_impl: str = "reference") -> nn.Module:
    """The block convolution of op code ``op`` (see module docstring), BN (and ReLU) included.

    ``midplanes`` is used by "2plus1d" (default: :func:`r2plus1d_midplanes` of in/out),
    ``p3d_variant`` by "p3d", ``counts`` (sub-kernel -> channels) and ``cakes_impl`` by "cakes".
    """
    if op not in TEMPORAL_OPS:
        raise ValueError(f"unknown temporal op {op!r}; expected one of {list(TEMPORAL_OPS)}")
    return TEMPORAL_OPS[op](in_channels, out_channels, stride, kernel_size, relu, midplanes=midplanes,
                            p3d_variant=p3d_variant, counts=counts, cakes_impl=cakes_impl)
