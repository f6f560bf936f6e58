"""Train / eval mode of a module tree, switched for a while and put back exactly."""
import contextlib
from typing import Iterator

from torch import nn


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[nn.Module]:
    """``model`` in eval mode inside the block; on exit every submodule gets back its own mode
    (``model.train(previous)`` would set one mode for the whole tree)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for module, training in modes:
            module.training = training
