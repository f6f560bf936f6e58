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


def to_reference(model: nn.Module) -> nn.Module:
    """``model`` itself when it has no efficient CAKES layer, else a copy using reference layers.

    The copy has the same state dict and outputs; it serves nominal FLOP counts and
    reference-vs-efficient timing.
    """
    if not any(isinstance(m, EfficientCakesConv3d) for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    replace_modules(model, EfficientCakesConv3d, _reference_layer)
    return model


def _reference_layer(layer: EfficientCakesConv3d) -> CakesConv3d:
    """A :class:`CakesConv3d` with ``layer``'s weights, device and train/eval mode."""
    ref = CakesConv3d(layer.convs[0].in_channels, layer.counts, layer.stride, layer.kernel_size,
                      isinstance(layer.relu, nn.ReLU)).to(layer.bn.weight.device)
    ref.load_state_dict(layer.state_dict())
    return ref.train(layer.training)


def set_module(root: nn.Module, target: str, module: nn.Module) -> None:
    """Puts ``module`` at the dotted path ``target`` (e.g. ``"layer1.0.conv1"``) under ``root``."""
    parent, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def to_efficient(model: nn.Module, channel_block: Optional[int] = None) -> nn.Module:
    """A copy of ``model`` whose reference CAKES layers are efficient ones (same state dict and
    outputs, convolutions grouped by the plan for ``channel_block``); ``model`` itself when it
    has no reference CAKES layer."""
    if not any(type(m) is CakesConv3d for m in model.modules()):
        return model
    model = copy.deepcopy(model)
    replace_modules(model, CakesConv3d, lambda layer: _efficient_layer(layer, channel_block))
    return model


def _efficient_layer(layer: CakesConv3d, channel_block: Optional[int]) -> EfficientCakesConv3d:
    if isinstance(layer, EfficientCakesConv3d):
        return layer
    fast = EfficientCakesConv3d(layer.convs[0].in_channels, layer.counts, layer.stride, layer.kernel_size,
                                isinstance(layer.relu, nn.ReLU), channel_block).to(layer.bn.weight.device)
    fast.load_state_dict(layer.state_dict())
    return fast.train(layer.training)
