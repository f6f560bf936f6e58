"""Optimizers, parameter groups and per-iteration learning-rate schedules.

The schedule is a pure function of the optimizer-step index, so resuming needs nothing but
the iteration counter, and a test can read the LR at any step without training.
"""
import bisect
import math
from typing import Callable, Dict, List

import torch
from torch import nn

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)


def param_groups(model: nn.Module, weight_decay: float, zero_wd_norm_bias: bool) -> List[Dict]:
    """Trainable parameters as optimizer groups.

    With ``zero_wd_norm_bias`` the weights of normalisation layers and every bias form a second
    group with weight decay 0 (decaying them only shrinks scales/offsets that BN re-learns).
    Each group carries ``name`` for logs.
    """
    decay, no_decay = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            exempt = zero_wd_norm_bias and (isinstance(module, NORM_TYPES) or name == "bias")
            (no_decay if exempt else decay).append(p)
    groups = [{"name": "decay", "params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"name": "no_decay", "params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


def _sgd(groups: List[Dict], solver) -> torch.optim.Optimizer:
    return torch.optim.SGD(groups, lr=solver.BASE_LR, momentum=solver.MOMENTUM, nesterov=solver.NESTEROV)


def _adamw(groups: List[Dict], solver) -> torch.optim.Optimizer:
    return torch.optim.AdamW(groups, lr=solver.BASE_LR, betas=tuple(solver.ADAMW_BETAS), eps=solver.ADAMW_EPS)


OPTIMIZERS = {"sgd": _sgd, "adamw": _adamw}  # SOLVER.OPTIMIZER -> builder(param groups, cfg.SOLVER)


def build_optimizer(model: nn.Module, solver) -> torch.optim.Optimizer:
    """SGD (momentum, Nesterov) or AdamW over :func:`param_groups`; ``solver`` is cfg.SOLVER."""
    if solver.OPTIMIZER not in OPTIMIZERS:
        raise ValueError(f"SOLVER.OPTIMIZER: unknown optimizer {solver.OPTIMIZER!r}; "
                         f"expected one of {list(OPTIMIZERS)}")
    return OPTIMIZERS[solver.OPTIMIZER](param_groups(model, solver.WEIGHT_DECAY, solver.ZERO_WD_NORM_BIAS), solver)


def _cosine(solver, iters_per_epoch: int) -> Callable[[int], float]:
    base, end, total = solver.BASE_LR, solver.COSINE_END_LR, solver.MAX_EPOCH * iters_per_epoch
    return lambda it: end + (base - end) * 0.5 * (1.0 + math.cos(math.pi * min(it, total) / total))


def _steps(solver, iters_per_epoch: int) -> Callable[[int], float]:
    base, gamma = solver.BASE_LR, solver.GAMMA
    boundaries = [int(round(e * iters_per_epoch)) for e in solver.STEPS]
    return lambda it: base * gamma ** bisect.bisect_right(boundaries, it)


# SOLVER.LR_POLICY -> lr(iteration) of the main schedule (before warm-up) for (cfg.SOLVER, steps per epoch).
LR_POLICIES = {"cosine": _cosine, "steps": _steps}


def lr_function(solver, iters_per_epoch: int) -> Callable[[int], float]:
    """``lr(iteration)`` for cfg.SOLVER: cosine or steps, with linear warm-up; iteration counts
    optimizer steps from 0. The warm-up ends at the main schedule's value, so there is no jump."""
    warmup = int(round(solver.WARMUP_EPOCHS * iters_per_epoch))
    main = LR_POLICIES[solver.LR_POLICY](solver, iters_per_epoch)
    if warmup == 0:
        return main
    start, end = solver.WARMUP_START_LR, main(warmup)

    def lr(it: int) -> float:
        return start + (end - start) * it / warmup if it < warmup else main(it)

    return lr


class IterationScheduler:
    """Sets every group's LR from ``lr_fn(iteration)`` before each optimizer step.

    ``state_dict`` holds only the next iteration (the function comes from the config).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, lr_fn: Callable[[int], float]):
        self.optimizer, self.lr_fn, self.iteration = optimizer, lr_fn, 0

    def apply(self) -> float:
        """Sets the LR for the step about to be taken; returns it."""
        lr = self.lr_fn(self.iteration)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        return lr

    def step(self) -> None:
        self.iteration += 1

    def state_dict(self) -> Dict[str, int]:
        return {"iteration": self.iteration}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.iteration = int(state["iteration"])
