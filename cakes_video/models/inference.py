"""The inference form of a network, built one way for testing, prediction and benchmarks.

:func:`inference_form` composes, on an eval-mode copy: the efficient CAKES plan (``plan``:
reference CAKES layers regrouped to fill oneDNN's channel blocks, :mod:`.plan`), BatchNorm
folded into every conv (:mod:`.deploy`), each conv fused with its ReLU / residual add
(``fuse``, :mod:`.fusion`), and channels-last-3d memory (``channels_last``). Scores equal
``model.eval()``'s up to float rounding.
"""
import torch
from torch import nn

from .deploy import fold_batchnorms
from .fusion import fuse_pointwise
from .rewrite import to_efficient


class ChannelsLast3d(nn.Module):
    """Runs ``model`` on its input in channels-last-3d memory format (``[N, C, T, H, W]``, any
    layout, in; the model's output out): the format oneDNN's fastest 3D convolutions use."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last_3d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.contiguous(memory_format=torch.channels_last_3d))


def inference_form(model: nn.Module, *, plan: bool = False, fuse: bool = False,
                   channels_last: bool = True) -> nn.Module:
    """Plan -> fold -> fuse -> channels-last (see module doc); ``model`` is left as it is.

    What ``TEST.DEPLOY`` (and ``TEST.FUSE``) run. ``[N, 3, T, H, W] -> [N, num_classes]`` like
    ``model``; a ``torch.fx.GraphModule`` inside (``ChannelsLast3d`` around it with ``channels_last``).
    """
    graph = fold_batchnorms(to_efficient(model) if plan else model)
    if fuse:
        graph = fuse_pointwise(graph)
    return ChannelsLast3d(graph).eval() if channels_last else graph
