"""oneDNN post-op fusion for deployed (BatchNorm-folded) networks on the CPU.

``fuse_pointwise(gm)`` turns every ``Conv3d`` of an inference ``torch.fx`` graph into a
:class:`FusedConv3d`: one oneDNN call (``torch.ops.mkldnn._convolution_pointwise``) with the
following ReLU, or residual add (+ ReLU), applied in the same pass, and the weight reordered
to oneDNN's blocked layout once per input shape instead of on every call. CAKES layers in
inference form get the ReLU fused into each of their convolutions. Off the CPU (or without
oneDNN) a FusedConv3d runs the plain ops, so results never depend on the backend.
"""
import operator
from typing import Dict, Optional, Tuple

import torch
from torch import fx, nn
from torch.nn import functional as F

from .deploy import DeployedCakesConv3d
from .rewrite import set_module

_RELUS = (F.relu, torch.relu, torch.relu_)
_ADDS = (operator.add, torch.add, operator.iadd)


class FusedConv3d(nn.Module):
    """``relu?(conv(x) [+ other])`` in one oneDNN call. ``[N, C_in, T, H, W] -> [N, C_out, T', H', W']``."""

    def __init__(self, conv: nn.Conv3d, relu: bool = False):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("FusedConv3d needs explicit zero padding")
        self.register_buffer("weight", conv.weight.detach().clone())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.relu = relu
        self._packed: Dict[Tuple[int, ...], torch.Tensor] = {}  # input shape -> blocked weight

    def _weight_for(self, x: torch.Tensor) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape not in self._packed:
            self._packed[shape] = torch.ops.mkldnn._reorder_convolution_weight(self.weight, *self.args, list(shape))
        return self._packed[shape]

    def forward(self, x: torch.Tensor, other: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.device.type != "cpu" or not torch.backends.mkldnn.is_available() or x.dtype != torch.float32:
            padding, stride, dilation, groups = self.args  # oneDNN's order, not F.conv3d's
            y = F.conv3d(x, self.weight, self.bias, tuple(stride), tuple(padding), tuple(dilation), groups)
            y = y if other is None else y + other
            return y.relu_() if self.relu else y
        unary = "relu" if self.relu else "none"
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, self._weight_for(x), self.bias, *self.args,
                                                           unary, [None], "")
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, self._weight_for(x), self.bias, *self.args, "add", None, unary if self.relu else None,
            [None], "")


def _is_relu(node: fx.Node, modules: Dict[str, nn.Module]) -> bool:
    if node.op == "call_module":
        return isinstance(modules[node.target], nn.ReLU)
    if node.op == "call_function":
        return node.target in _RELUS
    return node.op == "call_method" and node.target in ("relu", "relu_")


def _single_user(node: fx.Node) -> Optional[fx.Node]:
    return next(iter(node.users)) if len(node.users) == 1 else None


def fuse_pointwise(gm: fx.GraphModule) -> fx.GraphModule:
    """Fuses each Conv3d node with a following ReLU, add, or add + ReLU (see module doc)."""
    modules = dict(gm.named_modules())
    for node in list(gm.graph.nodes):  # drop nn.Identity calls: they hide conv -> add patterns
        if node.op == "call_module" and isinstance(modules[node.target], nn.Identity):
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)
    for node in list(gm.graph.nodes):
        if node.op != "call_module":
            continue
        module = modules[node.target]
        if isinstance(module, DeployedCakesConv3d):
            module.convs = nn.ModuleList(FusedConv3d(c, relu=module.relu) for c in module.convs)
            module.relu = False
        elif isinstance(module, nn.Conv3d):
            _fuse_conv_node(gm, node, modules)
    gm.graph.lint()
    gm.delete_all_unused_submodules()
    gm.recompile()
    return gm


def _fuse_conv_node(gm: fx.GraphModule, node: fx.Node, modules: Dict[str, nn.Module]) -> None:
    user, relu, other = _single_user(node), None, None
    if user is not None and _is_relu(user, modules):
        relu = user
    elif (user is not None and user.op == "call_function" and user.target in _ADDS and len(user.args) == 2
          and not user.kwargs and all(isinstance(a, fx.Node) for a in user.args) and user.args[0] is not user.args[1]):
        other = user.args[1] if user.args[0] is node else user.args[0]
        after = _single_user(user)
        relu = after if after is not None and _is_relu(after, modules) else None
    set_module(gm, node.target, FusedConv3d(modules[node.target], relu is not None))
    if other is not None:
        user.prepend(node)  # the shortcut may be computed after the conv: run the conv at the add
        node.args = (node.args[0], other)
        user.replace_all_uses_with(node)
        gm.graph.erase_node(user)
    if relu is not None:
        relu.replace_all_uses_with(node)
        gm.graph.erase_node(relu)
