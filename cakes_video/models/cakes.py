"""The CAKES layer: one convolution whose output channels use different sub-kernels.

A CAKES layer with C_out output channels partitions them among sub-kernels of a
vocabulary (:mod:`.subkernels`): channel group g is produced by a convolution with kernel
shape ``SUBKERNELS[g]``; the groups are concatenated along the channel axis in vocabulary
order and normalised by ONE shared BatchNorm (then ReLU), as in Yu et al., "CAKES", AAAI 2021.

Two implementations share one state dict (``convs.{i}.weight``, ``bn.*``) and one math;
:func:`build_cakes_layer` picks one (``MODEL.CAKES.IMPL``):

- :class:`CakesConv3d` ("reference"): one Conv3d per present sub-kernel, concatenated.
- :class:`EfficientCakesConv3d` ("efficient"): the same convolutions regrouped by
  :func:`.plan.plan_convs` so that oneDNN's 16-channel output blocks are filled (spilled or
  tiny groups run inside a covering kernel as zero-padded rows, and each conv's last block is
  completed with zero output rows); faster on the CPU, same results.

Inference form (BN folded, ReLU fused): :func:`cakes_video.models.inference.inference_form`.
"""
import itertools
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from .conv import conv3d_same, same_padding
from .plan import ConvPlan, assemble, default_channel_block, output_segments, plan_convs
from .subkernels import SUBKERNELS, check_counts, kernel_shape


def _check_layer_args(in_channels: int, counts: Dict[str, int]) -> None:
    if not isinstance(in_channels, int) or in_channels <= 0:
        raise ValueError(f"CAKES layer: in_channels must be a positive int, got {in_channels!r}")
    if not isinstance(counts, dict):
        raise ValueError(f"CAKES layer: counts must be a dict of sub-kernel -> channels, got {counts!r}")
    check_counts(counts, "CAKES layer")
    if sum(counts.values()) == 0:
        raise ValueError(f"CAKES layer: counts {counts} give no output channel")


class CakesConv3d(nn.Module):
    """Reference CAKES layer: one Conv3d per present sub-kernel, concatenated, shared BN, ReLU.

    Input ``[N, C_in, T, H, W]``; output ``[N, C_out, T', H', W']`` with ``C_out`` the sum of
    the counts and ``T', H', W'`` set by ``stride`` (every sub-kernel pads to "same").
    Sub-kernel groups appear in vocabulary order; a zero count is skipped.

    ``plan`` (a :data:`ConvPlan`) lists the layer's convolutions, here one per present sub-kernel
    (:class:`EfficientCakesConv3d` regroups them); :meth:`planned_weights` gives their weights,
    and ``plan_zero_rows`` the zero rows appended to each (none here).
    """

    def __init__(self, in_channels: int, counts: Dict[str, int], stride=(1, 1, 1),
                 kernel_size: int = 3, relu: bool = True):
        super().__init__()
        _check_layer_args(in_channels, counts)
        self.kernel_size = kernel_size
        self.subkernels = [s for s in SUBKERNELS if counts.get(s, 0) > 0]
        self.out_splits = [counts[s] for s in self.subkernels]
        self.convs = nn.ModuleList()
        for s, n in zip(self.subkernels, self.out_splits):
            self.convs.append(conv3d_same(in_channels, n, kernel_shape(s, kernel_size), stride))
        self.bn = nn.BatchNorm3d(sum(self.out_splits))
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()
        self._set_plan([(s, [(s, 0, n)]) for s, n in zip(self.subkernels, self.out_splits)])

    @property
    def counts(self) -> Dict[str, int]:
        return dict(zip(self.subkernels, self.out_splits))

    @property
    def stride(self) -> Tuple[int, int, int]:
        """(st, sh, sw), shared by every sub-kernel convolution."""
        return self.convs[0].stride

    @property
    def group_offsets(self) -> List[int]:
        """First channel of each sub-kernel group (``convs.{i}``) in the layer's ``C_out`` outputs."""
        return list(itertools.accumulate(self.out_splits[:-1], initial=0))

    def _set_plan(self, plan: ConvPlan, channel_block: int = 1) -> None:
        """Sets ``plan`` and, once, ``plan_padding`` (each planned conv's (pt, ph, pw)), its
        ``(conv index, first, stop, F.pad)`` rows, ``plan_zero_rows`` (zero output rows that
        round each conv up to a multiple of ``channel_block``) and ``segments`` (how the
        planned convs' outputs go back in vocabulary order, :func:`output_segments`)."""
        self.plan = plan
        self.segments = output_segments(plan, self.subkernels)
        self.plan_padding, self._plan_rows, self.plan_zero_rows = [], [], []
        for kernel, rows in plan:
            shape = kernel_shape(kernel, self.kernel_size)
            self.plan_padding.append(same_padding(shape))
            self._plan_rows.append([(self.subkernels.index(s), first, stop,
                                     _centring_pads(kernel_shape(s, self.kernel_size), shape))
                                    for s, first, stop in rows])
            self.plan_zero_rows.append(-sum(stop - first for _, first, stop in rows) % channel_block)

    def planned_weights(self) -> List[torch.Tensor]:
        """One weight ``[n_i + plan_zero_rows[i], C_in, kt, kh, kw]`` per planned convolution.

        Rebuilt from ``convs.{i}.weight`` on every call (smaller sub-kernels' rows zero-padded,
        centred, to the planned kernel; ``plan_zero_rows[i]`` zero rows appended), so gradients
        reach the parameters.
        """
        weights = []
        for rows, zero_rows in zip(self._plan_rows, self.plan_zero_rows):
            parts = []
            for c, first, stop, pads in rows:
                w = self.convs[c].weight[first:stop]
                parts.append(F.pad(w, pads) if any(pads) else w)
            if zero_rows:  # one more part, so the weight is built with a single copy
                parts.append(parts[0].new_zeros(zero_rows, *parts[0].shape[1:]))
            weights.append(parts[0] if len(parts) == 1 else torch.cat(parts))
        return weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([conv(x) for conv in self.convs], dim=1)
        return self.relu(self.bn(y))


def _centring_pads(have: Tuple[int, int, int], want: Tuple[int, int, int]) -> Tuple[int, ...]:
    """``F.pad`` amounts (W, W, H, H, T, T) that zero-pad a ``have`` kernel, centred, to ``want``."""
    pads = []
    for h, w in zip(reversed(have), reversed(want)):
        pads += [(w - h) // 2] * 2
    return tuple(pads)


class EfficientCakesConv3d(CakesConv3d):
    """CAKES layer with :class:`CakesConv3d`'s parameters, state dict and math, run by a plan.

    The sub-kernel convolutions are regrouped by :func:`plan_convs` (weights assembled from
    ``convs.{i}.weight`` on the fly, so gradients reach the same parameters), each rounded up
    to a multiple of ``channel_block`` output channels with zero rows (``plan_zero_rows``:
    oneDNN often runs a conv with a partial last block slower than the same conv completed to
    a full one); the outputs are put back in vocabulary order without those rows, then the
    shared BN and ReLU. ``[N, C_in, T, H, W] -> [N, C_out, T', H', W']``. ``channel_block``
    defaults to :func:`default_channel_block`.
    """

    def __init__(self, in_channels: int, counts: Dict[str, int], stride=(1, 1, 1), kernel_size: int = 3,
                 relu: bool = True, channel_block: Optional[int] = None):
        super().__init__(in_channels, counts, stride, kernel_size, relu)
        block = channel_block or default_channel_block()
        self._set_plan(plan_convs(self.counts, block, kernel_size), block)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs = [F.conv3d(x, w, None, self.stride, padding)
                   for w, padding in zip(self.planned_weights(), self.plan_padding)]
        return self.relu(self.bn(assemble(outputs, self.segments)))


CAKES_IMPLS = {"reference": CakesConv3d, "efficient": EfficientCakesConv3d}


def build_cakes_layer(in_channels: int, counts: Dict[str, int], stride=(1, 1, 1), kernel_size: int = 3,
                      relu: bool = True, impl: str = "reference") -> CakesConv3d:
    """The one factory for CAKES layers (``MODEL.CAKES.IMPL``): "reference" or "efficient"."""
    if impl not in CAKES_IMPLS:
        raise ValueError(f"MODEL.CAKES.IMPL: unknown CAKES implementation {impl!r}; "
                         f"expected one of {list(CAKES_IMPLS)}")
    return CAKES_IMPLS[impl](in_channels, counts, stride, kernel_size, relu)
