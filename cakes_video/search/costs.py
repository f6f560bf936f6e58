"""What a derived network costs as a function of its channel config, without building it.

The searched layers are those of :func:`cakes_video.models.resnet3d.cakes_layer_widths`, in
that order. Changing a layer's counts changes its own convolutions and BatchNorm and the conv
that reads its output: a basic block's ``conv2`` (itself searched: its input channels are
``conv1``'s total) or a bottleneck's 1x1x1 ``conv3`` (the layer's *tail*). So the cost of a
network is ``fixed + sum_i layer_cost(i, counts_i, in_channels_i)``, where ``in_channels_i`` is
the previous layer's total for a layer fed by it, and ``fixed`` (stem, shortcuts, head, the
1x1x1 convs that do not change) is calibrated once on one real network, so the figure equals
the project's own: ``models.complexity.count_params`` and ``count_gflops(...)["gflops"]``
(fvcore, every counted op, one view, batch 1: what ``engine.testing`` reports per view).

Per output voxel a layer with counts ``n_s``, ``c_in`` inputs and tail ``t`` channels holds
``sum_s n_s * c_in * |k_s|`` conv weights, ``2 * n`` BatchNorm weights and biases and ``n * t``
tail weights (``n`` = its total); fvcore counts each weight once per output voxel (a BatchNorm
in eval mode costs 2 per element), so its FLOPs are its params times the output volume.
"""
import math
from dataclasses import dataclass
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from fvcore.common.config import CfgNode
from torch import nn

from ..models import build_model
from ..models.complexity import count_gflops, count_params
from ..models.resnet3d import BasicBlock, Bottleneck, cakes_layer_widths
from ..models.subkernels import ChannelConfig, in_vocabulary_order, kernel_shape

Triple = Tuple[int, int, int]
Counts = Dict[str, int]


@dataclass(frozen=True)
class SearchedLayer:
    """One searched layer at full width: input ``[B, in_channels, *in_thw]`` -> ``[B, n, *out_thw]``.

    ``fed_by_previous``: its input is the previous searched layer's output (a basic block's
    ``conv2``), so ``in_channels`` is that layer's total in a derived network.
    ``tail_channels``: outputs of the 1x1x1 conv (+ BN) that reads this layer (a bottleneck's
    ``conv3``), 0 when the reader is itself searched.
    """

    name: str
    width: int
    must_fill: bool
    in_channels: int
    fed_by_previous: bool
    stride: Triple
    in_thw: Triple
    out_thw: Triple
    tail_channels: int
    kernel_size: int


def derive_input_shape(cfg: CfgNode) -> Tuple[int, int, int, int]:
    """(C, T, H, W) of SEARCH.DERIVE.INPUT_SHAPE, or 3 x DATA.NUM_FRAMES x DATA.TEST_CROP_SIZE^2
    (the view whose params and GFLOPs testing reports)."""
    if cfg.SEARCH.DERIVE.INPUT_SHAPE:
        return tuple(int(v) for v in cfg.SEARCH.DERIVE.INPUT_SHAPE)
    return 3, cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE


def cakes_model_cfg(cfg: CfgNode, channel_config) -> CfgNode:
    """A copy of ``cfg`` whose network is CAKES in every stage with ``channel_config`` (a list,
    a file path or a packaged name; "uniform" splits over SEARCH.CANDIDATES)."""
    derived = cfg.clone()
    derived.defrost()
    derived.MODEL.TEMPORAL_OP = "cakes"
    derived.MODEL.STAGE_TEMPORAL_OPS = []
    derived.MODEL.CAKES.SUBKERNELS = in_vocabulary_order(cfg.SEARCH.CANDIDATES)
    derived.MODEL.CAKES.CONV_CONFIG = channel_config
    return derived


def build_derived_model(cfg: CfgNode, channel_config) -> nn.Module:
    """The network of ``cfg`` with CAKES layers of ``channel_config`` (:func:`cakes_model_cfg`)."""
    return build_model(cakes_model_cfg(cfg, channel_config))


def searched_layers(cfg: CfgNode, input_shape: Sequence[int]) -> List[SearchedLayer]:
    """The searched layers of ``cfg``'s network at ``input_shape`` (C, T, H, W), in
    ``cakes_layer_widths`` order; shapes read from one forward on the meta device (no memory, no time)."""
    with torch.device("meta"):
        model = build_derived_model(cfg, "uniform").eval()
        convs = []  # (module name, conv, fed by the previous searched layer, tail channels)
        for name, block in model.named_modules():
            if isinstance(block, BasicBlock):
                convs += [(f"{name}.conv1", block.conv1, False, 0), (f"{name}.conv2", block.conv2, True, 0)]
            elif isinstance(block, Bottleneck):
                convs.append((f"{name}.conv2", block.conv2, False, block.conv3.out_channels))
        shapes = {}

        def record(module, inputs, output):  # returns None: the output stays as it is
            shapes[module] = (inputs[0].shape, output.shape)

        hooks = [conv.register_forward_hook(record) for _, conv, _, _ in convs]
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    widths = cakes_layer_widths(cfg.MODEL.DEPTH, cfg.MODEL.BASE_WIDTH)
    return [SearchedLayer(name=name, width=width, must_fill=must_fill, in_channels=shapes[conv][0][1],
                          fed_by_previous=fed, stride=tuple(conv.stride), in_thw=tuple(shapes[conv][0][2:]),
                          out_thw=tuple(shapes[conv][1][2:]), tail_channels=tail, kernel_size=conv.kernel_size)
            for (name, conv, fed, tail), (width, must_fill) in zip(convs, widths)]


def in_channels_of(layers: Sequence[SearchedLayer], config: ChannelConfig, i: int) -> int:
    """Input channels of searched layer ``i`` in a network of channel config ``config``."""
    return sum(config[i - 1].values()) if layers[i].fed_by_previous else layers[i].in_channels


def params_per_voxel(layer: SearchedLayer, counts: Counts, in_channels: int) -> int:
    """Weights of the layer's convs, its BatchNorm and its tail (see the module doc)."""
    total = sum(counts.values())
    conv = sum(n * in_channels * math.prod(kernel_shape(s, layer.kernel_size)) for s, n in counts.items())
    return conv + 2 * total + total * layer.tail_channels


LayerCost = Callable[[int, Counts, int], float]  # (layer index, counts, in_channels) -> cost


class NetworkCost:
    """``total(config) = fixed + sum_i layer_cost(i, counts_i, in_channels_i)`` in ``unit``."""

    def __init__(self, layers: Sequence[SearchedLayer], layer_cost: LayerCost, unit: str, fixed: float = 0.0):
        self.layers, self.layer_cost, self.unit, self.fixed = list(layers), layer_cost, unit, fixed

    def term(self, config: ChannelConfig, i: int) -> float:
        return self.layer_cost(i, config[i], in_channels_of(self.layers, config, i))

    def total(self, config: ChannelConfig) -> float:
        return self.fixed + sum(self.term(config, i) for i in range(len(self.layers)))

    def calibrated(self, config: ChannelConfig, figure: float) -> "NetworkCost":
        """The same model with ``fixed`` set so that ``total(config) == figure``."""
        variable = self.total(config) - self.fixed
        return NetworkCost(self.layers, self.layer_cost, self.unit, figure - variable)


def analytic_params(cfg: CfgNode, layers: Sequence[SearchedLayer], reference: ChannelConfig) -> NetworkCost:
    """Exact parameter count (``count_params``), calibrated on the network of ``reference``
    built on the meta device."""
    cost = NetworkCost(layers, lambda i, counts, c_in: params_per_voxel(layers[i], counts, c_in), "params")
    with torch.device("meta"):
        figure = count_params(build_derived_model(cfg, reference))
    return cost.calibrated(reference, figure)


def analytic_gflops(cfg: CfgNode, layers: Sequence[SearchedLayer], reference: ChannelConfig,
                    input_shape: Sequence[int]) -> NetworkCost:
    """Exact fvcore GFLOPs of one view (``count_gflops(...)["gflops"]``), calibrated by one
    fvcore count of the network of ``reference``."""
    def layer_gflops(i, counts, c_in):
        return params_per_voxel(layers[i], counts, c_in) * math.prod(layers[i].out_thw) / 1e9

    cost = NetworkCost(layers, layer_gflops, "GFLOPs")
    figure = count_gflops(build_derived_model(cfg, reference), input_shape)["gflops"]
    return cost.calibrated(reference, figure)


def layer_granularity(width: int, granularity: int) -> int:
    """The channel step of a layer of ``width``: ``granularity`` when it divides the width, else
    their greatest common divisor (a width of 24 at granularity 16 moves by 8)."""
    return math.gcd(width, granularity)


def granular_uniform_config(layers: Sequence[SearchedLayer], candidates: Sequence[str],
                            granularity: int) -> ChannelConfig:
    """Every layer at full width, its steps of :func:`layer_granularity` dealt to the candidates
    in turn: a reference network whose counts lie on every layer's grid."""
    config = []
    for layer in layers:
        step = layer_granularity(layer.width, granularity)
        counts = {s: 0 for s in candidates}
        for k in range(layer.width // step):
            counts[candidates[k % len(candidates)]] += step
        config.append({s: n for s, n in counts.items() if n})
    return config
