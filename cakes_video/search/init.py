"""Where a supernet's weights come from (SEARCH.INIT) and how a 3D kernel is sliced into its
sub-kernels (SEARCH.SLICE_RULE).

Both non-scratch initialisations load a plain 3D network (every searched conv kxkxk) that
:func:`.supernet.supernet_from_3d` then slices into the candidates:

- "imagenet": a torchvision 2D ResNet inflated by checkpoint/convert.py (kxkxk = the 2D kernel
  repeated over time / k). Sliced by "sum" this gives the official rules: 1xkxk = the 2D kernel,
  kx1x1 = the 2D kernel summed over H and W, repeated over time / k.
- "checkpoint": a trained 3D model of this project (shrinking it: issue 12, item 7).
"""
import logging
from typing import Callable, Dict, Sequence

import torch
from torch import nn

from ..checkpoint.convert import NOT_INFLATED, inflate_2d_state, read_published
from ..checkpoint.schema import load_checkpoint, load_model_state

logger = logging.getLogger(__name__)


def slice_sum(weight: torch.Tensor, kernel: Sequence[int]) -> torch.Tensor:
    """``weight`` ``[O, I, kt, kh, kw]`` summed over every axis that ``kernel`` (the sub-kernel's
    (kt', kh', kw'), each the full extent or 1) collapses: ``[O, I, *kernel]``.

    Exact away from the zero-padded borders: 1xkxk on a static clip (every frame the same), kx1x1
    on a spatially constant one, kxkxk always.
    """
    dims = [2 + d for d, (have, want) in enumerate(zip(weight.shape[2:], kernel)) if want == 1 and have != 1]
    out = weight.sum(dim=dims, keepdim=True) if dims else weight.clone()
    if tuple(out.shape[2:]) != tuple(kernel):
        raise ValueError(f"cannot slice a {tuple(weight.shape[2:])} kernel into {tuple(kernel)}")
    return out


# SEARCH.SLICE_RULE -> slice(weight [O, I, kt, kh, kw], sub-kernel shape) -> [O, I, *shape].
SLICE_RULES: Dict[str, Callable] = {"sum": slice_sum}


def load_imagenet_2d(plain: nn.Module, path: str) -> None:
    """Inflates the torchvision 2D ResNet state dict file ``path`` into ``plain`` (its head stays random)."""
    state, _ = inflate_2d_state(read_published(path), plain)
    load_model_state(plain, state, source=path, allow_missing=list(NOT_INFLATED))


def load_trained_3d(plain: nn.Module, path: str) -> None:
    """Loads a project checkpoint of a trained 3D model into ``plain``; a head of another number of
    classes is left out (a search on another dataset keeps the body)."""
    state, own = load_checkpoint(path)["model"], plain.state_dict()
    head = [k for k in state if k.startswith(NOT_INFLATED)]
    if any(k not in own or own[k].shape != state[k].shape for k in head):
        logger.info("%s: its head has another number of classes; the supernet's head starts afresh", path)
        state = {k: v for k, v in state.items() if k not in head}
    load_model_state(plain, state, source=path, allow_missing=list(NOT_INFLATED))


# SEARCH.INIT -> load(plain 3D network, SEARCH.INIT_CHECKPOINT) or None (the network's own random init).
INITS: Dict[str, Callable] = {"scratch": None, "imagenet": load_imagenet_2d, "checkpoint": load_trained_3d}
