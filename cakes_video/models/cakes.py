"""The CAKES layer: one convolution whose output channels use different sub-kernels.

A CAKES layer with C_out output channels partitions them among sub-kernels of a
vocabulary (``kxkxk``, ``1xkxk``, ``kx1x1``, ...): channel group g is produced by a
convolution with kernel shape ``SUBKERNELS[g]``; the groups are concatenated along the
channel axis in vocabulary order and normalised by ONE shared BatchNorm (then ReLU),
as in Yu et al., "CAKES", AAAI 2021.

A *channel config* says how many channels of each layer use each sub-kernel: a list with
one dict per CAKES layer, e.g. ``[{"kxkxk": 28, "1xkxk": 35, "kx1x1": 1}, ...]``.

Two implementations share one state dict (``convs.{i}.weight``, ``bn.*``) and one math;
:func:`build_cakes_layer` picks one (``MODEL.CAKES.IMPL``):

- :class:`CakesConv3d` ("reference"): one Conv3d per present sub-kernel, concatenated.
- :class:`EfficientCakesConv3d` ("efficient"): the same convolutions regrouped by
  :func:`plan_convs` so that oneDNN's 16-channel output blocks are filled (spilled or tiny
  groups run inside a covering kernel as zero-padded rows, and each conv's last block is
  completed with zero output rows); faster on the CPU, same results.

Inference form (BN folded, ReLU fused): :func:`cakes_video.models.deploy.deploy`.
"""
import copy
import itertools
import json
import math
import os
from collections import OrderedDict
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn
from torch.nn import functional as F

from .conv import conv3d_same, same_padding

# Vocabulary in canonical (concatenation) order: time x height x width, k = kernel size.
# The first three are the video vocabulary of the paper; the rest serve volumetric data.
SUBKERNELS: Dict[str, Tuple[str, str, str]] = OrderedDict(
    [
        ("kxkxk", ("k", "k", "k")),
        ("1xkxk", ("1", "k", "k")),
        ("kx1x1", ("k", "1", "1")),
        ("kxkx1", ("k", "k", "1")),
        ("kx1xk", ("k", "1", "k")),
        ("1xkx1", ("1", "k", "1")),
        ("1x1xk", ("1", "1", "k")),
    ]
)
VIDEO_SUBKERNELS = ("kxkxk", "1xkxk", "kx1x1")

ChannelConfig = List[Dict[str, int]]

_OFFICIAL_FILE = os.path.join(os.path.dirname(__file__), "official_cakes_configs.json")


def kernel_shape(subkernel: str, k: int = 3) -> Tuple[int, int, int]:
    """(kT, kH, kW) of a sub-kernel name for kernel size ``k``."""
    if subkernel not in SUBKERNELS:
        raise ValueError(f"unknown sub-kernel {subkernel!r}; expected one of {list(SUBKERNELS)}")
    return tuple(k if d == "k" else 1 for d in SUBKERNELS[subkernel])


def _official_configs() -> Dict[str, ChannelConfig]:
    """Name -> channel config of every searched config of the paper (a fresh copy each call)."""
    with open(_OFFICIAL_FILE) as f:
        return json.load(f)


def official_config_names() -> List[str]:
    return list(_official_configs())


def official_channel_config(name: str) -> ChannelConfig:
    """One of the six searched configs of the paper (ResNet-50), e.g. ``"CAKES123D_P"``."""
    configs = _official_configs()
    if name not in configs:
        raise ValueError(f"unknown official CAKES config {name!r}; expected one of {sorted(configs)}")
    return configs[name]


def load_channel_config(path: str) -> ChannelConfig:
    """Reads a channel config from a JSON or YAML file (a list of dicts)."""
    import yaml

    try:
        with open(path) as f:
            data = yaml.safe_load(f)  # JSON is a subset of YAML
    except (OSError, yaml.YAMLError) as e:
        raise ValueError(f"cannot read channel config {path}: {e}") from e
    if not isinstance(data, list):
        raise ValueError(f"{path}: a channel config is a list of dicts, one per CAKES layer")
    return data


def uniform_channel_config(widths: Sequence[int], subkernels: Sequence[str] = VIDEO_SUBKERNELS) -> ChannelConfig:
    """Splits each layer's width as evenly as possible among ``subkernels`` (earlier ones get the remainder)."""
    config = []
    for width in widths:
        share, extra = divmod(width, len(subkernels))
        config.append({s: share + (i < extra) for i, s in enumerate(subkernels)})
    return config


def cakes_layer_widths(depth: int) -> List[Tuple[int, bool]]:
    """(width, must_fill) of every CAKES layer of a ResNet of ``depth``, in order.

    Bottleneck nets have one CAKES layer per block (the middle conv); basic-block nets two
    (both 3x3x3 convs). ``must_fill`` marks layers whose output feeds the residual sum, so
    their counts must add up to the width exactly; others may use fewer channels.
    """
    from .resnet3d import BLOCKS_PER_STAGE, STAGE_WIDTHS, is_bottleneck

    layers = []
    for width, blocks in zip(STAGE_WIDTHS, BLOCKS_PER_STAGE[depth]):
        for _ in range(blocks):
            layers += [(width, False)] if is_bottleneck(depth) else [(width, False), (width, True)]
    return layers


def validate_channel_config(config: ChannelConfig, widths: Sequence[Tuple[int, bool]]) -> ChannelConfig:
    """Checks counts are non-negative ints of known sub-kernels that fit each layer; returns config."""
    if len(config) != len(widths):
        raise ValueError(f"channel config has {len(config)} layers, the network has {len(widths)} CAKES layers")
    for i, (counts, (width, must_fill)) in enumerate(zip(config, widths)):
        if not isinstance(counts, dict):
            raise ValueError(f"layer {i}: expected a dict of sub-kernel counts, got {counts!r}")
        _check_counts(counts, f"layer {i}")
        total = sum(counts.values())
        if total == 0 or total > width or (must_fill and total != width):
            need = f"exactly {width}" if must_fill else f"1 to {width}"
            raise ValueError(f"layer {i}: counts {counts} sum to {total}, the layer needs {need} channels")
    return config


def resolve_channel_config(spec: Union[str, ChannelConfig], widths: Sequence[Tuple[int, bool]],
                           subkernels: Sequence[str] = VIDEO_SUBKERNELS) -> ChannelConfig:
    """``spec`` = "uniform", an official name, a file path, or a list; returns a validated config."""
    if isinstance(spec, str):
        official = _official_configs()
        if spec == "uniform":
            spec = uniform_channel_config([w for w, _ in widths], subkernels)
        elif spec in official:
            spec = official[spec]
        elif os.path.isfile(spec):
            spec = load_channel_config(spec)
        else:
            raise ValueError(f"{spec!r} is neither 'uniform', an official name {list(official)}, "
                             "nor an existing file")
    return validate_channel_config([dict(c) for c in spec], widths)


def conv_cost(counts: Dict[str, int], in_channels: int, out_thw: Tuple[int, int, int], k: int = 3) -> Tuple[int, int]:
    """(params, multiply-adds) of a CAKES layer's convolutions for output size ``out_thw``."""
    params = sum(n * in_channels * math.prod(kernel_shape(s, k)) for s, n in counts.items())
    return params, params * math.prod(out_thw)


def _check_counts(counts: Dict[str, int], where: str) -> None:
    """Raises ValueError (prefixed by ``where``) for an unknown sub-kernel or a count that is
    not a non-negative int."""
    for name, n in counts.items():
        kernel_shape(name)
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"{where}: count of {name!r} must be a non-negative int, got {n!r}")


def _check_layer_args(in_channels: int, counts: Dict[str, int]) -> None:
    if not isinstance(in_channels, int) or in_channels <= 0:
        raise ValueError(f"CAKES layer: in_channels must be a positive int, got {in_channels!r}")
    if not isinstance(counts, dict):
        raise ValueError(f"CAKES layer: counts must be a dict of sub-kernel -> channels, got {counts!r}")
    _check_counts(counts, "CAKES layer")
    if sum(counts.values()) == 0:
        raise ValueError(f"CAKES layer: counts {counts} give no output channel")


# One planned convolution: (kernel sub-kernel, [(sub-kernel, first, stop) weight rows it computes]).
ConvPlan = List[Tuple[str, List[Tuple[str, int, int]]]]


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


# ----------------------------------------------------------------------------------------------
# Efficient layer: the same parameters and math, with the convolutions grouped by a plan.


def covers(outer: str, inner: str) -> bool:
    """True when sub-kernel ``outer`` spans every axis ``inner`` spans (``kxkxk`` covers all)."""
    return all(o == "k" or i == "1" for o, i in zip(SUBKERNELS[outer], SUBKERNELS[inner]))


def default_channel_block() -> int:
    """Output channels oneDNN's CPU convolutions compute at once: 16 with AVX-512, else 8."""
    return 16 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 8


def plan_convs(counts: Dict[str, int], block: int = 1, k: int = 3) -> ConvPlan:
    """Groups a CAKES layer's output channels into as few, well-filled convolutions as pays.

    Convolution kernels compute output channels in blocks of ``block`` (a 35-channel conv
    costs as much as a 48-channel one at block 16), so channels of a small kernel that
    spill past a block boundary (or a whole tiny group) are cheaper inside a larger kernel
    that covers it, as zero-padded weight rows, when that kernel has room left in its last
    block. The plan minimises ``sum(volume * ceil(channels / block) * block)`` plus a
    per-call cost of ``block / 2`` over at most one move per sub-kernel; ties keep fewer
    FLOPs. ``k`` is the kernel size. With ``block=1`` and ``k > 1`` no move pays, so each
    sub-kernel keeps its own conv; with ``k=1`` all kernels are 1x1x1 and the groups merge into one
    conv (the one-conv-per-sub-kernel layout is :attr:`CakesConv3d.plan`). The block is oneDNN's
    (CPU); on a GPU the plan stays correct, maybe not optimal.
    """
    present = [s for s in SUBKERNELS if counts.get(s, 0) > 0]
    targets = sorted(set(present) | {"kxkxk"}, key=list(SUBKERNELS).index)
    options = [_move_options(s, counts[s], targets, block) for s in present]
    best, best_key = None, None
    for choice in itertools.product(*options):
        plan = _plan_of(present, counts, choice)
        key = _plan_cost(plan, block, k)
        if best_key is None or key < best_key:
            best, best_key = plan, key
    return best


def _move_options(s: str, n: int, targets: Sequence[str], block: int) -> List[Tuple[int, str]]:
    """(channels kept in ``s``'s own conv, conv receiving the rest) choices for sub-kernel ``s``."""
    options = [(n, s)]
    for t in targets:
        if t != s and covers(t, s):
            options += [(keep, t) for keep in {0, n - n % block} if keep < n]
    return options


def _plan_of(present: Sequence[str], counts: Dict[str, int], choice) -> ConvPlan:
    rows: Dict[str, List[Tuple[str, int, int]]] = {}
    for s, (keep, target) in zip(present, choice):
        if keep:
            rows.setdefault(s, []).append((s, 0, keep))
        if keep < counts[s]:
            rows.setdefault(target, []).append((s, keep, counts[s]))
    rank = list(SUBKERNELS).index
    ordered = sorted(rows.items(), key=lambda kv: rank(kv[0]))
    return [(kernel, sorted(r, key=lambda row: rank(row[0]))) for kernel, r in ordered]


def _plan_cost(plan: ConvPlan, block: int, k: int) -> Tuple[float, int]:
    cost = flops = 0
    for kernel, rows in plan:
        n, volume = sum(stop - first for _, first, stop in rows), math.prod(kernel_shape(kernel, k))
        cost += volume * -(-n // block) * block + block / 2
        flops += volume * n
    return cost, flops


def output_segments(plan: ConvPlan, subkernels: Sequence[str]) -> List[Tuple[int, int, int]]:
    """(conv index, first, stop) output-channel slices that, concatenated, give vocabulary order.

    Only rows of the plan are referenced: zero rows a layer appends to a conv
    (``plan_zero_rows``) come after them and are never part of a slice, so they are dropped.
    """
    located = []  # (sub-kernel rank, first row, conv, offset in that conv's output)
    for c, (_, rows) in enumerate(plan):
        offset = 0
        for s, first, stop in rows:
            located.append((subkernels.index(s), first, stop, c, offset))
            offset += stop - first
    segments: List[Tuple[int, int, int]] = []
    for _, first, stop, c, offset in sorted(located):
        if segments and segments[-1][0] == c and segments[-1][2] == offset:
            segments[-1] = (c, segments[-1][1], offset + stop - first)  # contiguous: one slice
        else:
            segments.append((c, offset, offset + stop - first))
    return segments


def assemble(outputs: Sequence[torch.Tensor], segments: Sequence[Tuple[int, int, int]]) -> torch.Tensor:
    """Concatenates the planned convs' outputs ``[N, n_i (+ zero rows), T, H, W]`` by ``segments``
    (:func:`output_segments`) into ``[N, C_out, T, H, W]``, vocabulary channel order."""
    parts = [outputs[c] if (first, stop) == (0, outputs[c].shape[1]) else outputs[c][:, first:stop]
             for c, first, stop in segments]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


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


def to_reference(model: nn.Module) -> nn.Module:
    """``model`` itself when it has no efficient CAKES layer, else a copy using reference layers.

    The copy has the same state dict and outputs; it serves nominal FLOP counts and
    reference-vs-efficient timing.
    """
    if not any(isinstance(m, EfficientCakesConv3d) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    replace_modules(model, EfficientCakesConv3d, _reference_layer)
    return model


def _reference_layer(layer: EfficientCakesConv3d) -> CakesConv3d:
    """A :class:`CakesConv3d` with ``layer``'s weights, device and train/eval mode."""
    ref = CakesConv3d(layer.convs[0].in_channels, layer.counts, layer.stride, layer.kernel_size,
                      isinstance(layer.relu, nn.ReLU)).to(layer.bn.weight.device)
    ref.load_state_dict(layer.state_dict())
    return ref.train(layer.training)


def replace_modules(module: nn.Module, kind: type, make: Callable[[nn.Module], nn.Module]) -> None:
    """Replaces, in place, each submodule of ``module`` that is a ``kind`` by ``make(submodule)``.

    The children of a replaced submodule are not visited.
    """
    for name, child in module.named_children():
        if isinstance(child, kind):
            setattr(module, name, make(child))
        else:
            replace_modules(child, kind, make)
