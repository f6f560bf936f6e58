"""FLOP rates of the single convolutions a model runs, through each way of calling them on the CPU.

A breakdown (:mod:`.breakdown`) times whole CAKES layers; this goes one level down. One
forward pass of an undeployed model records the input of every CAKES layer (its planned convolutions, see
:func:`~cakes_video.models.plan.plan_convs`) and of every dense convolution (every kernel
dimension > 1, outside CAKES layers). Each distinct convolution is then timed alone, on random
channels-last-3d data, through three paths, interleaved run by run:

- ``conv3d``: ``F.conv3d``, as an eval-mode or deployed model calls it. PyTorch's CPU
  dispatcher picks the kernel, and reorders the weight to oneDNN's layout on every call when it
  picks oneDNN. For a float32 batch-1 input with ``N * C_in * T * H <= 20480`` it picks its
  native kernel instead, unless kernel H and W are both > 3 (e.g. a 3x7x7 stem) or groups > 1;
  with one thread it also does for stride-1 kernels that are 1x1 in H and W when N < 16.
- ``onednn``: one oneDNN call with the weight reordered once, as a fused model runs it
  (:class:`~cakes_video.models.fusion.FusedConv3d` without a post-op).
- ``frames2d``: the same convolution as a 2D one on a view of the same memory (no copy), one
  oneDNN call with the 2D weight reordered once, so like for like with ``onednn``: ``1xkxk``
  as ``kxk`` over the ``N * T`` frames, ``kx1x1`` (spatial stride 1) as ``kx1`` over
  ``(T, H * W)``; other kernels have no such form (None).

FLOPs are the multiply-adds of the output channels the layer keeps, each at its own
sub-kernel's size (fvcore's count of the reference layer): the zero rows a planned conv
appends, and the zero taps of channels it runs inside a larger kernel, are waste, not work.
Rates are those FLOPs per second.
"""
import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..models.cakes import CakesConv3d
from ..models.deploy import DeployedCakesConv3d
from ..models.fusion import FusedConv3d
from ..models.subkernels import conv_cost, kernel_shape
from ..utils.modes import evaluating
from .breakdown import dense_conv_names
from .timing import aligned, interleaved_times, median_ms, no_sync

PATHS = ("conv3d", "onednn", "frames2d")


@dataclass(frozen=True)
class ConvCall:
    """One convolution as a model runs it: input ``[N, C_in, T, H, W]``, weight
    ``[out_channels, C_in, *kernel]`` (``out_channels`` counts a planned conv's zero rows);
    no groups, no dilation."""

    input_shape: Tuple[int, ...]
    out_channels: int
    kernel: Tuple[int, int, int]
    stride: Tuple[int, int, int]
    padding: Tuple[int, int, int]

    def output_thw(self) -> Tuple[int, ...]:
        """``(T', H', W')`` of the output."""
        return tuple((i + 2 * p - k) // s + 1
                     for i, k, s, p in zip(self.input_shape[2:], self.kernel, self.stride, self.padding))


@dataclass
class ConvUse:
    """Where a :class:`ConvCall` occurs: ``role`` ("cakes" or "dense"), the modules running it
    (qualified names) and its useful GFLOPs per call (see module doc)."""

    call: ConvCall
    role: str
    modules: List[str]
    gflops: float


def _cakes_calls(layer: nn.Module, input_shape: Tuple[int, ...]) -> List[Tuple[ConvCall, float]]:
    """(call, useful GFLOPs) of each planned convolution of a CAKES layer on ``input_shape`` ``[N, C_in, T, H, W]``:
    the layer's own cost model (:func:`~cakes_video.models.subkernels.conv_cost`) of the rows it computes."""
    calls = []
    for (kernel_name, rows), zero_rows, padding in zip(layer.plan, layer.plan_zero_rows, layer.plan_padding):
        counts = {s: stop - first for s, first, stop in rows}  # a sub-kernel has one row range per conv
        call = ConvCall(input_shape, sum(counts.values()) + zero_rows, kernel_shape(kernel_name, layer.kernel_size),
                        tuple(layer.stride), tuple(padding))
        _, macs = conv_cost(counts, input_shape[1], call.output_thw(), layer.kernel_size)
        calls.append((call, macs * input_shape[0] / 1e9))
    return calls


def _dense_call(name: str, conv: nn.Conv3d, input_shape: Tuple[int, ...]) -> Tuple[ConvCall, float]:
    """(call, GFLOPs) of a dense Conv3d on ``input_shape`` ``[N, C_in, T, H, W]``."""
    if conv.groups != 1 or tuple(conv.dilation) != (1, 1, 1) or isinstance(conv.padding, str):
        raise ValueError(f"{name}: conv rates time plain convolutions (groups 1, dilation 1, explicit padding)")
    call = ConvCall(input_shape, conv.out_channels, tuple(conv.kernel_size), tuple(conv.stride), tuple(conv.padding))
    return call, conv.weight.numel() * input_shape[0] * math.prod(call.output_thw()) / 1e9


def collect_convs(model: nn.Module, x: torch.Tensor) -> List[ConvUse]:
    """Every distinct convolution of ``model``'s CAKES layers and dense convs on input ``x``
    ``[B, 3, T, H, W]`` (one eval-mode forward pass with hooks; ``model`` keeps its modes), in
    first-use order. Calls of one shape and the same useful FLOPs are merged into one use."""
    modules = dict(model.named_modules())
    if any(isinstance(m, (DeployedCakesConv3d, FusedConv3d)) for m in modules.values()):
        raise ValueError("collect_convs reads undeployed models: their layers know their own convolutions")
    dense = set(dense_conv_names(model))
    uses: Dict[Tuple[ConvCall, str, float], ConvUse] = {}

    def record(name: str) -> Callable:
        def hook(module, args):
            shape = tuple(args[0].shape)
            role = "dense" if name in dense else "cakes"
            found = [_dense_call(name, module, shape)] if role == "dense" else _cakes_calls(module, shape)
            for call, gflops in found:
                uses.setdefault((call, role, gflops), ConvUse(call, role, [], gflops)).modules.append(name)
        return hook

    watched = [n for n, m in modules.items() if isinstance(m, CakesConv3d) or n in dense]
    handles = [modules[n].register_forward_pre_hook(record(n)) for n in watched]
    try:
        with torch.inference_mode(), evaluating(model):
            model(x)
    finally:
        for h in handles:
            h.remove()
    return list(uses.values())


def frames2d_view(x: torch.Tensor, call: ConvCall
                  ) -> Optional[Tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor], List[int], List[int]]]:
    """``(x2d, to_2d_weight, stride, padding)`` running ``call`` as a 2D convolution on a view of
    channels-last-3d ``x``, or None when the call has no 2D form. ``1xkxk``: ``x2d`` =
    ``[N*T, C, H, W]``, weight ``[O, C, 1, k, k] -> [O, C, k, k]``; ``kx1x1`` with spatial stride 1:
    ``x2d`` = ``[N, C, T, H*W]``, weight ``[O, C, k, 1, 1] -> [O, C, k, 1]``. Outputs are views of
    ``[N, O, T', H', W']`` channels-last-3d data likewise."""
    n, c, t, h, w = x.shape
    if not x.is_contiguous(memory_format=torch.channels_last_3d):
        raise ValueError("frames2d_view needs a channels_last_3d input")
    (kt, kh, kw), (st, sh, sw), (pt, ph, pw) = call.kernel, call.stride, call.padding
    if kt == 1 and st == 1 and pt == 0:
        frames = x.as_strided((n * t, c, h, w), (h * w * c, 1, w * c, c))
        return frames, lambda weight: weight[:, :, 0], [sh, sw], [ph, pw]
    if kh == kw == 1 and sh == sw == 1 and ph == pw == 0:
        rows = x.as_strided((n, c, t, h * w), (t * h * w * c, 1, h * w * c, c))
        return rows, lambda weight: weight[..., 0], [st, 1], [pt, 0]
    return None


def calls_by_path(call: ConvCall, seed: int = 0) -> Dict[str, Callable[[], torch.Tensor]]:
    """Path name -> a zero-argument callable running ``call`` that way (output ``[N, C_out, T', H', W']``,
    or its 2D view for ``frames2d``), on random channels-last-3d data; only the paths that apply."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(call.input_shape, generator=gen).contiguous(memory_format=torch.channels_last_3d)
    conv = nn.Conv3d(call.input_shape[1], call.out_channels, call.kernel, call.stride, call.padding, bias=False)
    conv = conv.to(memory_format=torch.channels_last_3d).eval()
    fused = FusedConv3d(conv)
    steps = {"conv3d": lambda: conv(x), "onednn": lambda: fused(x)}
    view = frames2d_view(x, call)
    if view is not None:
        x2d, to_2d_weight, stride, padding = view
        args = (padding, stride, [1, 1], 1)  # padding, stride, dilation, groups
        weight = to_2d_weight(conv.weight.detach()).contiguous(memory_format=torch.channels_last)
        packed = torch.ops.mkldnn._reorder_convolution_weight(weight, *args, list(x2d.shape))
        steps["frames2d"] = lambda: torch.ops.mkldnn._convolution_pointwise(x2d, packed, None, *args,
                                                                            "none", [None], "")
    return steps


def time_convs(uses: Sequence[ConvUse], runs: int = 20, warmup: int = 3) -> List[Dict]:
    """Times every use's call through each path (:data:`PATHS`, interleaved; medians). One row per
    use: ``role``, ``first_module``, ``calls_per_forward``, ``gflops`` (useful, per call), the
    :class:`ConvCall` fields, and per path ``{path}_ms`` (ms per call) and ``{path}_gflops_per_s``,
    both None where the path does not apply."""
    results = []
    for use in uses:
        steps = calls_by_path(use.call)
        with torch.inference_mode():
            times = interleaved_times(steps, runs, warmup, sync=no_sync)
        row = dict(role=use.role, first_module=use.modules[0], calls_per_forward=len(use.modules),
                   gflops=use.gflops, **asdict(use.call))
        for path in PATHS:
            ms = median_ms(times[path]) if path in times else None
            row[f"{path}_ms"] = ms
            row[f"{path}_gflops_per_s"] = None if ms is None else use.gflops / (ms / 1e3)
        results.append(row)
    return results


def totals(rows: Sequence[Dict], role: str) -> Dict[str, Optional[float]]:
    """Per path: ms per forward (each call times ``calls_per_forward``) of the ``role`` convs and
    their useful GFLOP/s; ``frames2d`` counts ``onednn``'s time where it does not apply."""
    mine = [r for r in rows if r["role"] == role]
    gflops = sum(r["gflops"] * r["calls_per_forward"] for r in mine)
    out: Dict[str, Optional[float]] = {"gflops": gflops}
    for path in PATHS:
        ms = sum((r[f"{path}_ms"] if r[f"{path}_ms"] is not None else r["onednn_ms"]) * r["calls_per_forward"]
                 for r in mine)
        out[f"{path}_ms"] = ms
        out[f"{path}_gflops_per_s"] = gflops / (ms / 1e3) if ms else None
    return out


def format_rows(rows: Sequence[Dict]) -> str:
    """A text table: one line per convolution, then one line of totals per role."""
    def cell(ms: Optional[float], rate: Optional[float], digits: int) -> str:
        return "-" if ms is None else f"{ms:.{digits}f} / {rate:.0f}"

    lines = [["role", "first module", "calls", "input", "kernel", "out", "GFLOPs"]
             + [f"{p} ms / GF/s" for p in PATHS]]
    for r in rows:
        lines.append([r["role"], r["first_module"], str(r["calls_per_forward"]), "x".join(map(str, r["input_shape"])),
                      "x".join(map(str, r["kernel"])), str(r["out_channels"]), f"{r['gflops']:.3f}"]
                     + [cell(r[f"{p}_ms"], r[f"{p}_gflops_per_s"], 2) for p in PATHS])
    for role in sorted({r["role"] for r in rows}):
        t = totals(rows, role)
        lines.append([role, "all (per forward)", "", "", "", "", f"{t['gflops']:.3f}"]
                     + [cell(t[f"{p}_ms"], t[f"{p}_gflops_per_s"], 1) for p in PATHS])
    return aligned(lines)
