"""Model size and cost: parameter count and fvcore FLOPs of one view.

fvcore counts ONE multiply-add as ONE FLOP (so its "GFLOPs" are GMACs), the convention of
torchvision's and most video papers' tables. ``count_gflops`` reports two figures:

- ``gflops``: every op fvcore counts (convolutions, matmuls/linear, BatchNorm, ...);
- ``gflops_conv_linear``: only convolutions and linear/matmul ops, the figure papers quote.

``conv_linear_gflops_by_module`` splits the latter by module (e.g. the FLOPs inside CAKES layers).

Costs are nominal: an efficient CAKES layer is counted as its reference form (one conv per
sub-kernel), not by the zero-padded convolutions it may run instead.
"""
import logging
import warnings
from typing import Dict, Sequence, Tuple

import torch
from torch import nn

from ..utils.modes import evaluating
from .rewrite import to_reference

# fvcore operator names (see fvcore.nn.flop_count) that are convolutions or linear maps.
CONV_LINEAR_OPS = ("conv", "linear", "matmul", "addmm", "bmm", "einsum")


def count_params(model: nn.Module) -> int:
    """Number of parameters (trainable or not; buffers such as BN statistics excluded)."""
    return sum(p.numel() for p in model.parameters())


def count_gflops(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, float]:
    """fvcore GFLOPs (multiply-add = 1) of one forward of a batch of 1 ``[1, C, T, H, W]``.

    Args:
        model: any module taking one ``[N, C, T, H, W]`` tensor; traced in eval mode on a copy's
            device, its own training flag is restored afterwards.
        input_shape: ``(C, T, H, W)`` of one view.
    Returns:
        ``{"gflops": all counted ops, "gflops_conv_linear": conv + linear/matmul ops only}``.
    """
    return count_gflops_and_modules(model, input_shape)[0]


def conv_linear_gflops_by_module(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, float]:
    """Conv + linear/matmul fvcore GFLOPs inside each submodule for one view ``[1, C, T, H, W]``.

    Keys are qualified module names as in ``model.named_modules()`` (``""`` is the whole model);
    a module's count includes its descendants'. Counted like :func:`count_gflops` (eval mode,
    efficient CAKES layers in their reference form, which keeps every module name), so
    ``result[""] == count_gflops(...)["gflops_conv_linear"]``. Norms and activations are left out:
    the figure is the convolution work a module does, comparable across conv implementations.
    """
    return count_gflops_and_modules(model, input_shape)[1]


def count_gflops_and_modules(model: nn.Module, input_shape: Sequence[int]
                             ) -> Tuple[Dict[str, float], Dict[str, float]]:
    """:func:`count_gflops` and :func:`conv_linear_gflops_by_module` from one fvcore trace."""
    by_module = _by_module_and_operator(model, input_shape)
    whole = by_module[""]
    totals = {"gflops": sum(whole.values()) / 1e9, "gflops_conv_linear": _conv_linear(whole) / 1e9}
    return totals, {name: _conv_linear(ops) / 1e9 for name, ops in by_module.items()}


def _conv_linear(ops: Dict[str, float]) -> float:
    return sum(v for k, v in ops.items() if k in CONV_LINEAR_OPS)


def _by_module_and_operator(model: nn.Module, input_shape: Sequence[int]) -> Dict[str, Dict[str, float]]:
    """fvcore FLOPs by module and operator of the reference form of ``model`` in eval mode on ``[1, *input_shape]``."""
    if len(input_shape) != 4:
        raise ValueError(f"input_shape must be (C, T, H, W), got {tuple(input_shape)}")
    model = to_reference(model)
    device = next(model.parameters()).device
    with evaluating(model), _quiet_fvcore():
        from fvcore.nn import FlopCountAnalysis  # imported while quiet: importing it warns

        analysis = FlopCountAnalysis(model, torch.zeros(1, *input_shape, device=device))
        analysis.unsupported_ops_warnings(False)
        analysis.uncalled_modules_warnings(False)
        return analysis.by_module_and_operator()


class _quiet_fvcore:
    """Silences fvcore's logger and the tracer's deprecation/trace warnings while counting."""

    def __enter__(self):
        self._logger = logging.getLogger("fvcore")
        self._level = self._logger.level
        self._logger.setLevel(logging.ERROR)
        self._warnings = warnings.catch_warnings()
        self._warnings.__enter__()
        warnings.simplefilter("ignore")
        return self

    def __exit__(self, *exc):
        self._warnings.__exit__(*exc)
        self._logger.setLevel(self._level)
        return False
