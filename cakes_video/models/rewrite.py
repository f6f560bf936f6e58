"""Whole-network rewriting: replacing submodules by kind or by path, and the reference form
of a network with efficient CAKES layers."""
import copy
from typing import Callable, Optional

from torch import nn

from .cakes import CakesConv3d, EfficientCakesConv3d


def replace_modules(module: nn.Module, kind: type, make: Callable[[nn.Module], nn.Module]) -> None:
    """Replaces, in place, each submodule of ``module`` that is a ``kind`` by ``make(submodule)``.

    The children of a replaced submodule are not visited.
    """
    for name, child in module.named_children():
        if isinstance(child, kind):
            setattr(module, name, make(child))
        else:
            replace_modules(child, kind, make)


def set_module(root: nn.Module, target: str, module: nn.Module) -> None:
    """Puts ``module`` at the dotted path ``target`` (e.g. ``"layer1.0.conv1"``) under ``root``."""
    parent, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def to_reference(model: nn.Module) -> nn.Module:
    """``model`` itself when it has no efficient CAKES layer, else a copy using reference layers.

    The copy has the same state dict and outputs; it serves nominal FLOP counts and
    reference-vs-efficient timing.
    """
    return _with_cakes_layers(model, lambda m: isinstance(m, EfficientCakesConv3d), CakesConv3d)


def to_efficient(model: nn.Module, channel_block: Optional[int] = None) -> nn.Module:
    """``model`` itself when it has no reference CAKES layer, else a copy whose reference CAKES
    layers are efficient ones (same state dict and outputs, convolutions grouped by the plan for
    ``channel_block``, default :func:`~.plan.default_channel_block`)."""
    return _with_cakes_layers(model, lambda m: type(m) is CakesConv3d, EfficientCakesConv3d,
                              channel_block=channel_block)


def _with_cakes_layers(model: nn.Module, selects: Callable[[nn.Module], bool], layer_class: type,
                       **layer_kwargs) -> nn.Module:
    """A copy of ``model`` whose CAKES layers that ``selects`` are rebuilt as ``layer_class`` with
    their weights, device and train/eval mode; ``model`` itself when none is selected."""
    if not any(selects(m) for m in model.modules()):
        return model
    model = copy.deepcopy(model)

    def rebuilt(layer: CakesConv3d) -> CakesConv3d:
        if not selects(layer):
            return layer
        new = layer_class(layer.convs[0].in_channels, layer.counts, layer.stride, layer.kernel_size,
                          isinstance(layer.relu, nn.ReLU), **layer_kwargs).to(layer.bn.weight.device)
        new.load_state_dict(layer.state_dict())
        return new.train(layer.training)

    replace_modules(model, CakesConv3d, rebuilt)
    return model
