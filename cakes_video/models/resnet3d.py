"""ResNet3D: the R3D / MC3 / R(2+1)D / C2D / I3D / P3D / CAKES family on one backbone.

A stem, four stages of basic (depth 10/18/34) or bottleneck (50/101) blocks, and a head.
Each block's spatio-temporal convolution comes from :mod:`temporal_ops` by op code, chosen
per stage. Input ``[N, 3, T, H, W]`` float, output logits ``[N, num_classes]``. Widths scale
with a base width (the stem's output channels; stages x1, x2, x4, x8; 64 by default).

Module names (the checkpoint converters rely on them):
``stem.{conv,bn}`` (or ``stem.{conv_s,bn_s,conv_t,bn}`` for the 2plus1d stem), ``layer{1-4}.{j}``
with ``conv1``/``conv2`` (temporal convs) in basic blocks and ``conv1, bn1, conv2, conv3, bn3``
in bottlenecks (``conv2`` the temporal conv), ``downsample.{0,1}``, and ``head.fc``.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import nn

from .heads import make_head
from .registry import MODEL_REGISTRY
from .subkernels import VIDEO_SUBKERNELS, resolve_channel_config
from .temporal_ops import Conv2Plus1d, ConvBN, make_temporal_conv, r2plus1d_midplanes, temporal_conv_out_channels

BLOCKS_PER_STAGE = {10: [1, 1, 1, 1], 18: [2, 2, 2, 2], 34: [3, 4, 6, 3], 50: [3, 4, 6, 3], 101: [3, 4, 23, 3]}
DEFAULT_BASE_WIDTH = 64  # the published networks: stem 64, stages 64 / 128 / 256 / 512
STAGE_WIDTH_MULTIPLIERS = (1, 2, 4, 8)
SPATIAL_STRIDES = (1, 2, 2, 2)
R2PLUS1D_STEM_MIDPLANES = 45  # torchvision's R(2+1)D stem width, at base width 64


def is_bottleneck(depth: int) -> bool:
    if depth not in BLOCKS_PER_STAGE:
        raise ValueError(f"unsupported ResNet depth {depth}; expected one of {sorted(BLOCKS_PER_STAGE)}")
    return depth >= 50


def stage_widths(base_width: int = DEFAULT_BASE_WIDTH) -> List[int]:
    """The 4 stage widths (bottleneck inner widths): ``base_width`` x (1, 2, 4, 8)."""
    return [base_width * m for m in STAGE_WIDTH_MULTIPLIERS]


def cakes_layer_widths(depth: int, base_width: int = DEFAULT_BASE_WIDTH) -> List[Tuple[int, bool]]:
    """(width, must_fill) of every CAKES layer of a ResNet of ``depth`` and ``base_width``, in order.

    Bottleneck nets have one CAKES layer per block (the middle conv); basic-block nets two
    (both 3x3x3 convs). ``must_fill`` marks layers whose output feeds the residual sum, so
    their counts must add up to the width exactly; others may use fewer channels.
    """
    layers = []
    for width, blocks in zip(stage_widths(base_width), BLOCKS_PER_STAGE[depth]):
        for _ in range(blocks):
            layers += [(width, False)] if is_bottleneck(depth) else [(width, False), (width, True)]
    return layers


def _downsample(in_channels: int, out_channels: int, stride) -> Optional[nn.Module]:
    """1x1x1 conv + BN on the shortcut when the block changes shape; None otherwise."""
    if tuple(stride) == (1, 1, 1) and in_channels == out_channels:
        return None
    return nn.Sequential(nn.Conv3d(in_channels, out_channels, 1, stride=stride, bias=False),
                         nn.BatchNorm3d(out_channels))


class BasicBlock(nn.Module):
    """Two temporal convs (``conv1`` with ReLU, ``conv2`` without) plus the shortcut, then ReLU.

    ``counts`` gives one CAKES channel dict per conv (None entries for other ops).
    ``[N, C_in, T, H, W] -> [N, width, T/st, H/s, W/s]``.
    """

    expansion = 1
    num_temporal_convs = 2

    def __init__(self, in_channels: int, width: int, stride, op: str, counts: Sequence = (None, None),
                 **op_kwargs):
        super().__init__()
        # torchvision's R(2+1)D rule: both convs use the midplanes of the block's (in, width).
        mid = r2plus1d_midplanes(in_channels, width, op_kwargs.get("kernel_size", 3))
        self.conv1 = make_temporal_conv(op, in_channels, width, stride, relu=True, midplanes=mid,
                                        counts=counts[0], **op_kwargs)
        mid_channels = temporal_conv_out_channels(op, width, counts[0])
        self.conv2 = make_temporal_conv(op, mid_channels, width, (1, 1, 1), relu=False, midplanes=mid,
                                        counts=counts[1], **op_kwargs)
        self.downsample = _downsample(in_channels, width, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.conv2(self.conv1(x)) + shortcut)


class Bottleneck(nn.Module):
    """1x1x1 ``conv1``/``bn1``, temporal ``conv2`` (strided), 1x1x1 ``conv3``/``bn3`` (x4), shortcut.

    When a CAKES ``conv2`` produces fewer channels than ``width``, ``conv3`` takes that many.
    ``[N, C_in, T, H, W] -> [N, 4 * width, T/st, H/s, W/s]``.
    """

    expansion = 4
    num_temporal_convs = 1

    def __init__(self, in_channels: int, width: int, stride, op: str, counts: Sequence = (None,),
                 **op_kwargs):
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv3d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm3d(width)
        mid = r2plus1d_midplanes(in_channels, width, op_kwargs.get("kernel_size", 3))
        self.conv2 = make_temporal_conv(op, width, width, stride, relu=True, midplanes=mid,
                                        counts=counts[0], **op_kwargs)
        self.conv3 = nn.Conv3d(temporal_conv_out_channels(op, width, counts[0]), out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_channels)
        self.downsample = _downsample(in_channels, out_channels, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.bn3(self.conv3(self.conv2(y)))
        return self.relu(y + shortcut)


def r2plus1d_stem_midplanes(base_width: int) -> int:
    """The R(2+1)D stem's width between its 1x7x7 and 3x1x1 convs: 45 at base width 64, scaled."""
    return max(1, R2PLUS1D_STEM_MIDPLANES * base_width // DEFAULT_BASE_WIDTH)


# MODEL.STEM -> stem of ``width`` output channels, ``[N, 3, T, H, W] -> [N, width, T, H/2, W/2]``
# (no temporal stride).
STEMS = {
    "3x7x7": lambda width: ConvBN(3, width, (3, 7, 7), (1, 2, 2)),
    "1x7x7": lambda width: ConvBN(3, width, (1, 7, 7), (1, 2, 2)),
    "2plus1d": lambda width: Conv2Plus1d(3, width, r2plus1d_stem_midplanes(width), (3, 7, 7), (1, 2, 2)),
}


def make_stem(stem: str, width: int = DEFAULT_BASE_WIDTH) -> nn.Module:
    """The stem named ``stem`` (a key of :data:`STEMS`) with ``width`` output channels."""
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; expected one of {list(STEMS)}")
    return STEMS[stem](width)


class ResNet3D(nn.Module):
    """3D ResNet with a per-stage temporal op. ``[N, 3, T, H, W] -> [N, num_classes]``.

    Args:
        depth: 10, 18, 34 (basic blocks) or 50, 101 (bottlenecks).
        stage_ops: 4 op codes of :mod:`temporal_ops` ("3d", "2d", "2plus1d", "p3d", "cakes").
        temporal_strides: 4 temporal strides (spatial strides are 1, 2, 2, 2); they apply to the
            first block of each stage, on its temporal conv and its shortcut.
        stem_pool: 1x3x3 max-pool, stride (1, 2, 2), after the stem.
        temporal_pool: 3x1x1 max-pool, stride (2, 1, 1), pad (1, 0, 0) after stage 1 (T -> ceil(T/2)).
        channel_config: a CAKES channel config (list of sub-kernel -> count dicts, one entry per
            temporal conv of the network in :func:`cakes_layer_widths` order) or a spec that
            :func:`resolve_channel_config` resolves ("uniform", an official name, a file path);
            required when a stage uses "cakes", ignored otherwise; entries of stages using other
            ops are not used.
        cakes_subkernels: the sub-kernel vocabulary a "uniform" channel config splits over.
        p3d_variants: P3D variants cycled over the blocks of the network.
        cakes_impl: "reference" or "efficient" CAKES layer.
        base_width: the stem's output channels; stage widths are ``base_width`` x (1, 2, 4, 8)
            (x4 more at the output of a bottleneck). 64 is the published networks.
    """

    def __init__(self, depth: int = 18, num_classes: int = 400, stem: str = "3x7x7", stem_pool: bool = False,
                 stage_ops: Sequence[str] = ("3d",) * 4, temporal_strides: Sequence[int] = (1, 2, 2, 2),
                 temporal_pool: bool = False, head: str = "clip", dropout: float = 0.0, kernel_size: int = 3,
                 channel_config: Union[str, List[Dict[str, int]], None] = None,
                 p3d_variants: Sequence[str] = ("A", "B", "C"), cakes_impl: str = "reference",
                 cakes_subkernels: Sequence[str] = VIDEO_SUBKERNELS, base_width: int = DEFAULT_BASE_WIDTH):
        super().__init__()
        if len(stage_ops) != 4 or len(temporal_strides) != 4:
            raise ValueError("stage_ops and temporal_strides need 4 entries each")
        if base_width < 1:
            raise ValueError(f"base_width must be a positive int, got {base_width}")
        block = Bottleneck if is_bottleneck(depth) else BasicBlock
        widths = stage_widths(base_width)
        layer_counts = self._layer_counts(cakes_layer_widths(depth, base_width), stage_ops, channel_config,
                                          cakes_subkernels)
        self.stem = make_stem(stem, base_width)
        self.stem_pool = nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)) if stem_pool else nn.Identity()
        self.temporal_pool = nn.MaxPool3d((3, 1, 1), (2, 1, 1), (1, 0, 0)) if temporal_pool else nn.Identity()
        in_channels, block_index = base_width, 0
        for stage, num_blocks in enumerate(BLOCKS_PER_STAGE[depth]):
            first_stride = (temporal_strides[stage], SPATIAL_STRIDES[stage], SPATIAL_STRIDES[stage])
            blocks = []
            for j in range(num_blocks):
                counts = [layer_counts.pop(0) for _ in range(block.num_temporal_convs)]
                variant = p3d_variants[block_index % len(p3d_variants)]
                blocks.append(block(in_channels, widths[stage], first_stride if j == 0 else (1, 1, 1),
                                    stage_ops[stage], counts, kernel_size=kernel_size, cakes_impl=cakes_impl,
                                    p3d_variant=variant))
                in_channels, block_index = widths[stage] * block.expansion, block_index + 1
            self.add_module(f"layer{stage + 1}", nn.Sequential(*blocks))
        self.head = make_head(head, in_channels, num_classes, dropout)
        self._init_weights()

    @staticmethod
    def _layer_counts(widths: List[Tuple[int, bool]], stage_ops: Sequence[str], channel_config,
                      subkernels: Sequence[str]) -> list:
        """Per-temporal-conv CAKES counts in network order (None where unused) for the CAKES layer
        ``widths`` of :func:`cakes_layer_widths`: the one place the model resolves (reads,
        validates) its channel config."""
        if "cakes" not in stage_ops:
            return [None] * len(widths)
        if channel_config is None:
            raise ValueError("a stage uses op 'cakes' but no channel_config was given")
        return list(resolve_channel_config(channel_config, widths, subkernels))

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Backbone output ``[N, C, T', H', W']`` before the head (C = 8 x base width, 32 x with
        bottlenecks: 512 or 2048 at base width 64)."""
        x = self.stem_pool(self.stem(x))
        x = self.temporal_pool(self.layer1(x))
        return self.layer4(self.layer3(self.layer2(x)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


# Network-level op codes of MODEL.TEMPORAL_OP that are not one block op: code -> the 4 stage ops
# for MODEL.MC_NUM_3D_STAGES. "mc" is MC3: 3d in the first stages, 2d after.
MIXED_OPS = {"mc": lambda num_3d: ["3d" if s < num_3d else "2d" for s in range(4)]}


def resolve_stage_ops(temporal_op: str, stage_ops: Sequence[str] = (), mc_num_3d_stages: int = 1) -> List[str]:
    """The 4 per-stage op codes: ``stage_ops`` if given, else ``temporal_op`` for every stage
    (a :data:`MIXED_OPS` code resolves per stage)."""
    if stage_ops:
        return list(stage_ops)
    if temporal_op in MIXED_OPS:
        return MIXED_OPS[temporal_op](mc_num_3d_stages)
    return [temporal_op] * 4


@MODEL_REGISTRY.register
def resnet3d(cfg) -> ResNet3D:
    """Builds :class:`ResNet3D` from ``cfg.MODEL`` (registered as "resnet3d")."""
    m = cfg.MODEL
    return ResNet3D(
        depth=m.DEPTH, num_classes=m.NUM_CLASSES, stem=m.STEM, stem_pool=m.STEM_POOL,
        stage_ops=resolve_stage_ops(m.TEMPORAL_OP, m.STAGE_TEMPORAL_OPS, m.MC_NUM_3D_STAGES),
        temporal_strides=m.TEMPORAL_STRIDES, temporal_pool=m.TEMPORAL_POOL, head=m.HEAD, dropout=m.DROPOUT,
        kernel_size=m.KERNEL_SIZE, p3d_variants=m.P3D_VARIANTS, cakes_impl=m.CAKES.IMPL,
        channel_config=m.CAKES.CONV_CONFIG, cakes_subkernels=m.CAKES.SUBKERNELS, base_width=m.BASE_WIDTH,
    )
