"""BatchNorm folded into the convolution before it: the step of the inference form after the plan.

``fold_batchnorms(model)`` returns an eval-mode copy in which every CAKES layer becomes a
:class:`DeployedCakesConv3d` (its planned convolutions carry the folded BN as weight and
bias, ReLU in place) and every other ``Conv -> BatchNorm`` pair of the network is merged
into one convolution with bias, found by tracing the forward with ``torch.fx``. Applied to
every network alike (CAKES, 3D baselines, torchvision's models), so comparisons stay fair.
Outputs equal the eval-mode model's up to float rounding. The whole inference form (fold,
fuse, channels-last): :func:`cakes_video.models.inference.inference_form`.
"""
import copy
from typing import Optional, Tuple

import torch
from torch import fx, nn

from .cakes import CakesConv3d
from .conv import conv3d_same
from .plan import assemble
from .rewrite import replace_modules, set_module

_CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def bn_scale_shift(bn: nn.modules.batchnorm._BatchNorm) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-channel ``(scale, shift)`` with ``bn(y) == y * scale + shift`` in eval mode."""
    if bn.running_mean is None:
        raise ValueError("cannot fold a BatchNorm without running statistics (track_running_stats=False)")
    scale = bn.running_var.add(bn.eps).rsqrt()
    scale = scale * bn.weight if bn.affine else scale
    shift = -bn.running_mean * scale
    return scale, (shift + bn.bias if bn.affine else shift)


def fold_bn(weight: torch.Tensor, bias: Optional[torch.Tensor], scale: torch.Tensor,
            shift: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight ``[C_out, ...]`` and bias ``[C_out]`` of ``bn(conv(x))`` for per-channel scale/shift."""
    folded_w = weight * scale.reshape(-1, *([1] * (weight.dim() - 1)))
    folded_b = shift if bias is None else bias * scale + shift
    return folded_w, folded_b


class DeployedCakesConv3d(nn.Module):
    """A CAKES layer in inference form: ``convs.{i}`` (planned, BN folded, with bias), ReLU in place.

    Built from any :class:`CakesConv3d` (the reference or the efficient layer) by its ``plan``
    and ``planned_weights()``, the efficient layer's zero rows included (they stay zero and are
    left out of the output). ``[N, C_in, T, H, W] -> [N, C_out, T', H', W']``.
    """

    def __init__(self, layer: CakesConv3d):
        super().__init__()
        scale, shift = bn_scale_shift(layer.bn)
        offsets = dict(zip(layer.subkernels, layer.group_offsets))
        self.convs = nn.ModuleList()
        for (_, rows), weight, zero_rows in zip(layer.plan, layer.planned_weights(), layer.plan_zero_rows):
            # BN channel of each weight row: its sub-kernel group's offset + its row in the group;
            # the plan's zero padding rows get scale and shift 0, so they stay zero.
            channels = torch.cat([torch.arange(offsets[s] + first, offsets[s] + stop, device=scale.device)
                                  for s, first, stop in rows])
            zeros = scale.new_zeros(zero_rows)
            folded_w, folded_b = fold_bn(weight.detach(), None, torch.cat([scale[channels], zeros]),
                                         torch.cat([shift[channels], zeros]))
            self.convs.append(_conv_with(folded_w, folded_b, layer.stride))
        self.segments = layer.segments
        self.relu = isinstance(layer.relu, nn.ReLU)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = assemble([conv(x) for conv in self.convs], self.segments)
        return y.relu_() if self.relu else y


def _conv_with(weight: torch.Tensor, bias: torch.Tensor, stride) -> nn.Conv3d:
    """A Conv3d with a copy of ``weight`` ``[C_out, C_in, kt, kh, kw]`` and ``bias`` ``[C_out]``, "same" padding."""
    conv = conv3d_same(weight.shape[1], weight.shape[0], tuple(weight.shape[2:]), stride, bias=True).to(weight)
    conv.weight.data.copy_(weight)
    conv.bias.data.copy_(bias)
    return conv


class _CakesLeafTracer(fx.Tracer):
    """Keeps deployed CAKES layers, convs and norms (subclasses too) as single nodes."""

    def is_leaf_module(self, m: nn.Module, name: str) -> bool:
        return isinstance(m, (DeployedCakesConv3d,) + _CONVS + _NORMS) or super().is_leaf_module(m, name)


def fold_batchnorms(model: nn.Module) -> fx.GraphModule:
    """An eval-mode copy of ``model`` with every BatchNorm folded (see module doc), as a
    ``torch.fx.GraphModule``; raises ``torch.fx`` trace errors for forwards with
    data-dependent control flow."""
    model = copy.deepcopy(model).eval()
    replace_modules(model, CakesConv3d, DeployedCakesConv3d)
    graph = _CakesLeafTracer().trace(model)
    return _fold_conv_bn(fx.GraphModule(model, graph))


def _fold_conv_bn(gm: fx.GraphModule) -> fx.GraphModule:
    """Merges each BatchNorm node whose input is a conv node used only by it into that conv."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):
        if node.op != "call_module" or not isinstance(modules[node.target], _NORMS):
            continue
        src = node.args[0]
        if not (isinstance(src, fx.Node) and src.op == "call_module" and len(src.users) == 1
                and isinstance(modules[src.target], _CONVS)):
            continue
        conv, bn = modules[src.target], modules[node.target]
        w, b = fold_bn(conv.weight.detach(), None if conv.bias is None else conv.bias.detach(), *bn_scale_shift(bn))
        fused = copy.deepcopy(conv)
        fused.weight = nn.Parameter(w)
        fused.bias = nn.Parameter(b.detach())
        set_module(gm, src.target, fused)
        node.replace_all_uses_with(src)
        gm.graph.erase_node(node)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm
