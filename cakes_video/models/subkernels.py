"""The CAKES sub-kernel vocabulary and channel configs.

A sub-kernel is named by its time x height x width extents, ``k`` standing for the kernel
size: ``kxkxk``, ``1xkxk``, ``kx1x1``, ... A *channel config* says how many output channels
of each CAKES layer of a network use each sub-kernel: a list with one dict per layer, e.g.
``[{"kxkxk": 28, "1xkxk": 35, "kx1x1": 1}, ...]``, in the order of
:func:`cakes_video.models.resnet3d.cakes_layer_widths`.
"""
import math
import os
from collections import OrderedDict
from typing import Dict, List, Sequence, Tuple, Union

import yaml

from ..config import config_names, find_config_file

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
CHANNEL_CONFIGS = "channel_configs"  # their folder among the packaged configs
OFFICIAL_PREFIX = "CAKES"  # the paper's searched configs: CAKES12D_P, ..., CAKES123D_C


def in_vocabulary_order(names: Sequence[str]) -> List[str]:
    """``names`` (sub-kernels) in :data:`SUBKERNELS` order: the order a CAKES layer lays its groups
    out in, whatever order a config lists them in."""
    return [s for s in SUBKERNELS if s in names]


def kernel_shape(subkernel: str, k: int = 3) -> Tuple[int, int, int]:
    """(kT, kH, kW) of a sub-kernel name for kernel size ``k``."""
    if subkernel not in SUBKERNELS:
        raise ValueError(f"unknown sub-kernel {subkernel!r}; expected one of {list(SUBKERNELS)}")
    return tuple(k if d == "k" else 1 for d in SUBKERNELS[subkernel])


def official_config_names() -> List[str]:
    """The six searched configs of the paper (ResNet-50), packaged as channel configs."""
    return [n for n in packaged_channel_configs() if n.startswith(OFFICIAL_PREFIX)]


def official_channel_config(name: str) -> ChannelConfig:
    """One of the six searched configs of the paper (ResNet-50), e.g. ``"CAKES123D_P"``."""
    if name not in official_config_names():
        raise ValueError(f"unknown official CAKES config {name!r}; expected one of {official_config_names()}")
    return load_channel_config(find_config_file(f"{CHANNEL_CONFIGS}/{name}"))


def packaged_channel_configs() -> List[str]:
    """Names of the channel configs that ship in ``cakes_video/configs/channel_configs/``."""
    prefix = CHANNEL_CONFIGS + "/"
    return [n[len(prefix):] for n in config_names() if n.startswith(prefix)]


def load_channel_config(path: str) -> ChannelConfig:
    """Reads a channel config from a JSON or YAML file (a list of dicts)."""
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


def validate_channel_config(config: ChannelConfig, widths: Sequence[Tuple[int, bool]]) -> ChannelConfig:
    """Checks counts are non-negative ints of known sub-kernels that fit each layer; returns config."""
    if len(config) != len(widths):
        raise ValueError(f"channel config has {len(config)} layers, the network has {len(widths)} CAKES layers")
    for i, (counts, (width, must_fill)) in enumerate(zip(config, widths)):
        if not isinstance(counts, dict):
            raise ValueError(f"layer {i}: expected a dict of sub-kernel counts, got {counts!r}")
        check_counts(counts, f"layer {i}")
        total = sum(counts.values())
        if total == 0 or total > width or (must_fill and total != width):
            need = f"exactly {width}" if must_fill else f"1 to {width}"
            raise ValueError(f"layer {i}: counts {counts} sum to {total}, the layer needs {need} channels")
    return config


def resolve_channel_config(spec: Union[str, ChannelConfig], widths: Sequence[Tuple[int, bool]],
                           subkernels: Sequence[str] = VIDEO_SUBKERNELS) -> ChannelConfig:
    """``spec`` = "uniform", a file path, the name of a packaged channel config (an official name
    such as ``"CAKES123D_P"``, or ``"cakes_18_block16"``), or a list; returns a validated config."""
    if isinstance(spec, str) and spec == "uniform":
        spec = uniform_channel_config([w for w, _ in widths], subkernels)
    elif isinstance(spec, str):
        path = spec if os.path.isfile(spec) else find_config_file(f"{CHANNEL_CONFIGS}/{spec}")
        if path is None:
            raise ValueError(f"{spec!r} is neither 'uniform', an existing file, nor a packaged channel config "
                             f"{packaged_channel_configs()}")
        spec = load_channel_config(path)
    return validate_channel_config([dict(c) for c in spec], widths)


def conv_cost(counts: Dict[str, int], in_channels: int, out_thw: Tuple[int, int, int], k: int = 3) -> Tuple[int, int]:
    """(params, multiply-adds) of a CAKES layer's convolutions for output size ``out_thw``."""
    params = sum(n * in_channels * math.prod(kernel_shape(s, k)) for s, n in counts.items())
    return params, params * math.prod(out_thw)


def check_counts(counts: Dict[str, int], where: str) -> None:
    """Raises ValueError (prefixed by ``where``) for an unknown sub-kernel or a count that is
    not a non-negative int."""
    for name, n in counts.items():
        kernel_shape(name)
        if not isinstance(n, int) or n < 0:
            raise ValueError(f"{where}: count of {name!r} must be a non-negative int, got {n!r}")
