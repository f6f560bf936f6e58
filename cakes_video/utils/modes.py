"""How a module runs: train / eval mode switched for a while and put back exactly, and the
autocast dtypes of mixed precision."""
import contextlib
from typing import Iterator

import torch
from torch import nn

# TRAIN.MIXED_PRECISION (and the benchmarks' --amp) -> autocast dtype; "off" runs float32.
AMP_DTYPES = {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}


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
