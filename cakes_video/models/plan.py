"""The efficient CAKES layer's plan: a layer's sub-kernel groups regrouped into convolutions
that fill oneDNN's output-channel blocks, and the way their outputs go back in order.

A :data:`ConvPlan` lists one ``(kernel sub-kernel, [(sub-kernel, first, stop) weight rows])``
per convolution; rows of a smaller sub-kernel inside a larger kernel are zero-padded, centred.
"""
import itertools
import math
from typing import Dict, List, Sequence, Tuple

import torch

from .subkernels import SUBKERNELS, kernel_shape

# One planned convolution: (kernel sub-kernel, [(sub-kernel, first, stop) weight rows it computes]).
ConvPlan = List[Tuple[str, List[Tuple[str, int, int]]]]


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
