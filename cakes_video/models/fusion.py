"""oneDNN post-op fusion for deployed (BatchNorm-folded) networks on the CPU.

``fuse_pointwise(gm)`` turns every ``Conv3d`` of an inference ``torch.fx`` graph into a
:class:`FusedConv3d`: one oneDNN call (``torch.ops.mkldnn._convolution_pointwise``) with the
following ReLU, or residual add (+ ReLU), applied in the same pass, and the weight reordered
to oneDNN's blocked layout once per input shape instead of on every call. CAKES layers in
inference form get the ReLU fused into each of their convolutions. Off the CPU (or without
oneDNN) a FusedConv3d runs the plain ops, so results never depend on the backend.

A convolution with a 2D form (:func:`frames2d_form`: ``1xkxk`` over the frames, ``kx1x1`` over
``(T, H*W)``) runs as that 2D convolution on a view of the same channels-last-3d memory, no
copy: oneDNN runs it as fast as the 3D one or faster (up to 1.2x on small convolutions and
1.1x on a 1x7x7 stem, ``tools/benchmark_conv.py``). Every model's convs get this alike: a
dense 3x3x3 has no 2D form, so it is simply left as it is.
"""
import operator
from typing import Dict, Optional, Tuple

import torch
from torch import fx, nn
from torch.nn import functional as F

from .deploy import DeployedCakesConv3d, set_module

_RELUS = (F.relu, torch.relu, torch.relu_)
Triple = Tuple[int, int, int]


def frames2d_form(kernel: Triple, stride: Triple, padding: Triple) -> Optional[str]:
    """How a 3D convolution runs as a 2D one on a view of channels-last-3d data, or None:
    "frames" for ``1xkxk`` with no temporal stride or padding (``kxk`` over the ``N*T`` frames),
    "rows" for ``kx1x1`` with spatial stride 1 and no spatial padding (``kx1`` over ``(T, H*W)``)."""
    if kernel[0] == 1 and stride[0] == 1 and padding[0] == 0:
        return "frames"
    if kernel[1:] == (1, 1) and stride[1:] == (1, 1) and padding[1:] == (0, 0):
        return "rows"
    return None


def as_2d(x: torch.Tensor, form: str) -> torch.Tensor:
    """View of channels-last-3d ``x`` ``[N, C, T, H, W]``: "frames" ``[N*T, C, H, W]``, "rows"
    ``[N, C, T, H*W]``, both channels-last, sharing ``x``'s memory."""
    n, c, t, h, w = x.shape
    if form == "frames":
        return x.as_strided((n * t, c, h, w), (h * w * c, 1, w * c, c))
    return x.as_strided((n, c, t, h * w), (t * h * w * c, 1, h * w * c, c))


def from_2d(y: torch.Tensor, form: str, n: int, hw: Tuple[int, int]) -> torch.Tensor:
    """The output ``y`` of a 2D form (channels-last) as ``[N, C, T', H', W']`` channels-last-3d,
    no copy; ``n`` is the batch, ``hw`` the (H', W') of a "rows" output."""
    if form == "frames":
        nt, c, h, w = y.shape
        t = nt // n
    else:
        _, c, t, _ = y.shape
        h, w = hw
    y = y.contiguous(memory_format=torch.channels_last)  # a no-op for oneDNN's output; the view needs it
    return y.as_strided((n, c, t, h, w), (t * h * w * c, 1, h * w * c, w * c, c))


def _weight_2d(weight: torch.Tensor, form: str) -> torch.Tensor:
    """``[O, C, 1, k, k] -> [O, C, k, k]`` ("frames") or ``[O, C, k, 1, 1] -> [O, C, k, 1]`` ("rows")."""
    w = weight[:, :, 0] if form == "frames" else weight[..., 0]
    return w.contiguous(memory_format=torch.channels_last)
_ADDS = (operator.add, torch.add, operator.iadd)


class FusedConv3d(nn.Module):
    """``relu?(conv(x) [+ other])`` in one oneDNN call. ``[N, C_in, T, H, W] -> [N, C_out, T', H', W']``.

    ``frames2d``: run a conv that has a 2D form (:func:`frames2d_form`) as that 2D conv when
    ``x`` (and ``other``) are channels-last-3d; False always runs the 3D conv.
    """

    def __init__(self, conv: nn.Conv3d, relu: bool = False, frames2d: bool = True):
        super().__init__()
        if conv.padding_mode != "zeros" or isinstance(conv.padding, str):
            raise ValueError("FusedConv3d needs explicit zero padding")
        self.register_buffer("weight", conv.weight.detach().clone())
        self.register_buffer("bias", None if conv.bias is None else conv.bias.detach().clone())
        self.args = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.relu = relu
        plain = conv.groups == 1 and tuple(conv.dilation) == (1, 1, 1)
        self.form = frames2d_form(conv.kernel_size, conv.stride, conv.padding) if frames2d and plain else None
        self._packed: Dict[Tuple[int, ...], torch.Tensor] = {}  # input shape (3D or 2D view) -> blocked weight

    def _args_2d(self) -> tuple:
        """(padding, stride, dilation, groups) of the 2D form."""
        (pt, ph, pw), (st, sh, sw) = self.args[0], self.args[1]
        return ([ph, pw], [sh, sw], [1, 1], 1) if self.form == "frames" else ([pt, 0], [st, 1], [1, 1], 1)

    def _weight_for(self, x: torch.Tensor, args: tuple) -> torch.Tensor:
        shape = tuple(x.shape)
        if shape not in self._packed:
            weight = self.weight if x.dim() == 5 else _weight_2d(self.weight, self.form)
            self._packed[shape] = torch.ops.mkldnn._reorder_convolution_weight(weight, *args, list(shape))
        return self._packed[shape]

    def forward(self, x: torch.Tensor, other: Optional[torch.Tensor] = None) -> torch.Tensor:
        if x.device.type != "cpu" or not torch.backends.mkldnn.is_available() or x.dtype != torch.float32:
            y = F.conv3d(x, self.weight, self.bias, *[tuple(a) for a in self.args[:3]], self.args[3])
            y = y if other is None else y + other
            return y.relu_() if self.relu else y
        layout = torch.channels_last_3d
        if self.form and x.is_contiguous(memory_format=layout) and (other is None or other.is_contiguous(
                memory_format=layout)):
            y = self._onednn(as_2d(x, self.form), None if other is None else as_2d(other, self.form), self._args_2d())
            return from_2d(y, self.form, x.shape[0], x.shape[3:])
        return self._onednn(x, other, self.args)

    def _onednn(self, x: torch.Tensor, other: Optional[torch.Tensor], args: tuple) -> torch.Tensor:
        unary = "relu" if self.relu else "none"
        if other is None:
            return torch.ops.mkldnn._convolution_pointwise(x, self._weight_for(x, args), self.bias, *args,
                                                           unary, [None], "")
        return torch.ops.mkldnn._convolution_pointwise.binary(
            x, other, self._weight_for(x, args), self.bias, *args, "add", None, unary if self.relu else None,
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
