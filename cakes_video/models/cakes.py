"""The CAKES layer: one convolution whose output channels use different sub-kernels.

A CAKES layer with C_out output channels partitions them among sub-kernels of a
vocabulary (``kxkxk``, ``1xkxk``, ``kx1x1``, ...): channel group g is produced by a
convolution with kernel shape ``SUBKERNELS[g]``; the groups are concatenated along the
channel axis in vocabulary order and normalised by ONE shared BatchNorm (then ReLU),
as in Yu et al., "CAKES", AAAI 2021.

A *channel config* says how many channels of each layer use each sub-kernel: a list with
one dict per CAKES layer, e.g. ``[{"kxkxk": 28, "1xkxk": 35, "kx1x1": 1}, ...]``.
"""
import json
import os
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple, Union

import torch
from torch import nn

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


def official_config_names() -> List[str]:
    with open(_OFFICIAL_FILE) as f:
        return list(json.load(f))


def official_channel_config(name: str) -> ChannelConfig:
    """One of the six searched configs of the paper (ResNet-50), e.g. ``"CAKES123D_P"``."""
    with open(_OFFICIAL_FILE) as f:
        configs = json.load(f)
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
    from .resnet3d import BLOCKS_PER_STAGE, is_bottleneck

    layers = []
    for stage, blocks in enumerate(BLOCKS_PER_STAGE[depth]):
        width = 64 * 2**stage
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
        for name, n in counts.items():
            kernel_shape(name)
            if not isinstance(n, int) or n < 0:
                raise ValueError(f"layer {i}: count of {name!r} must be a non-negative int, got {n!r}")
        total = sum(counts.values())
        if total == 0 or total > width or (must_fill and total != width):
            need = f"exactly {width}" if must_fill else f"1 to {width}"
            raise ValueError(f"layer {i}: counts {counts} sum to {total}, the layer needs {need} channels")
    return config


def resolve_channel_config(spec: Union[str, ChannelConfig], widths: Sequence[Tuple[int, bool]],
                           subkernels: Sequence[str] = VIDEO_SUBKERNELS) -> ChannelConfig:
    """``spec`` = "uniform", an official name, a file path, or a list; returns a validated config."""
    if isinstance(spec, str):
        if spec == "uniform":
            spec = uniform_channel_config([w for w, _ in widths], subkernels)
        elif spec in official_config_names():
            spec = official_channel_config(spec)
        elif os.path.isfile(spec):
            spec = load_channel_config(spec)
        else:
            raise ValueError(f"{spec!r} is neither 'uniform', an official name {official_config_names()}, "
                             "nor an existing file")
    return validate_channel_config([dict(c) for c in spec], widths)


def conv_cost(counts: Dict[str, int], in_channels: int, out_thw: Tuple[int, int, int], k: int = 3) -> Tuple[int, int]:
    """(params, multiply-adds) of a CAKES layer's convolutions for output size ``out_thw``."""
    params = sum(n * in_channels * _volume(kernel_shape(s, k)) for s, n in counts.items())
    return params, params * _volume(out_thw)


def _volume(shape: Sequence[int]) -> int:
    out = 1
    for d in shape:
        out *= d
    return out


class CakesConv3d(nn.Module):
    """Reference CAKES layer: one Conv3d per present sub-kernel, concatenated, shared BN, ReLU.

    Input ``[N, C_in, T, H, W]``; output ``[N, C_out, T', H', W']`` with ``C_out`` the sum of
    the counts and ``T', H', W'`` set by ``stride`` (every sub-kernel pads to "same").
    Sub-kernel groups appear in vocabulary order; a zero count is skipped.
    """

    def __init__(self, in_channels: int, counts: Dict[str, int], stride=(1, 1, 1),
                 kernel_size: int = 3, relu: bool = True):
        super().__init__()
        self.subkernels = [s for s in SUBKERNELS if counts.get(s, 0) > 0]
        self.out_splits = [counts[s] for s in self.subkernels]
        self.convs = nn.ModuleList()
        for s, n in zip(self.subkernels, self.out_splits):
            shape = kernel_shape(s, kernel_size)
            self.convs.append(nn.Conv3d(in_channels, n, shape, stride=stride,
                                        padding=tuple(d // 2 for d in shape), bias=False))
        self.bn = nn.BatchNorm3d(sum(self.out_splits))
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    @property
    def counts(self) -> Dict[str, int]:
        return dict(zip(self.subkernels, self.out_splits))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.cat([conv(x) for conv in self.convs], dim=1)
        return self.relu(self.bn(y))
