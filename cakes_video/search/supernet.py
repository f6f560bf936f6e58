"""The CAKES supernet of a ResNet3D: every searched layer holds every candidate sub-kernel.

The searched layers are the block temporal convolutions, exactly those that
:func:`~cakes_video.models.resnet3d.cakes_layer_widths` lists, in that order (basic blocks:
``conv1`` and ``conv2``; bottlenecks: ``conv2``). A :class:`SupernetLayer` of width C with N
candidates holds N convolutions of C outputs each and ONE BatchNorm over the N x C outputs, so
``(candidate n, channel j)`` has its own scale ``gamma[n * C + j]`` (candidate-major):

- ``must_fill`` False (its output feeds the next conv of the block): the N x C outputs are
  concatenated, BN, ReLU; the next conv takes N x C inputs (official CAKES).
- ``must_fill`` True (its output feeds the residual sum): BN over the N x C, then the N
  candidates are summed per output channel j (C outputs). A derived network gives every j one
  candidate, so the layer keeps width C.

Performance priority (:data:`MODES`) adds channel dropout: each training forward keeps exactly
C of the N x C pairs of a ``must_fill`` False layer (uniformly at random) and exactly one
candidate per channel of a ``must_fill`` True layer, the dropped pairs' outputs zeroed after the
BN (so their weights and BN entries get no gradient while every BN running statistic updates).
A training forward is thus exactly a derived network, unscaled; evaluation scales every pair by
the keep probability 1/N instead (classic dropout), so train and eval agree in expectation.
"""
import logging
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..checkpoint.schema import load_model_state
from ..models.conv import conv3d_same
from ..models.resnet3d import BasicBlock, Bottleneck, ResNet3D
from ..models.rewrite import set_module
from ..models.subkernels import conv_cost, kernel_shape

logger = logging.getLogger(__name__)

Scores = List[Dict[str, torch.Tensor]]  # per searched layer: candidate -> |gamma| [C]
Selection = List[Dict[str, List[int]]]  # per searched layer: candidate -> sorted kept channels


@dataclass(frozen=True)
class SearchMode:
    """What a SEARCH.MODE trains: channel dropout (performance) or cost-weighted sparsity (cost)."""
    channel_dropout: bool
    sparsity: bool


# SEARCH.MODE -> its training; the keys are the allowed values.
MODES = {"cost": SearchMode(channel_dropout=False, sparsity=True),
         "performance": SearchMode(channel_dropout=True, sparsity=False)}


class SupernetLayer(nn.Module):
    """N candidate sub-kernel convs of ``width`` outputs each, one BN over the N x C, ReLU.

    ``[B, C_in, T, H, W] -> [B, N * C, T', H', W']`` (``must_fill`` False) or
    ``[B, C, T', H', W']`` (``must_fill`` True, candidates summed per channel); every
    candidate pads to "same" and shares ``stride``. ``channel_dropout``: see the module docstring.
    """

    def __init__(self, in_channels: int, width: int, candidates: Sequence[str], stride=(1, 1, 1),
                 kernel_size: int = 3, must_fill: bool = False, relu: bool = True, channel_dropout: bool = False):
        super().__init__()
        self.width, self.candidates, self.must_fill = width, list(candidates), must_fill
        self.kernel_size = kernel_size
        self.channel_dropout = channel_dropout
        self.convs = nn.ModuleList(conv3d_same(in_channels, width, kernel_shape(s, kernel_size), stride)
                                   for s in self.candidates)
        self.bn = nn.BatchNorm3d(len(self.candidates) * width)
        self.relu = nn.ReLU(inplace=True) if relu else nn.Identity()

    @property
    def out_channels(self) -> int:
        return self.width if self.must_fill else len(self.candidates) * self.width

    @property
    def group_offsets(self) -> List[int]:
        """Each candidate's first output channel in the layer's 2D source: 0 (all have the full width)."""
        return [0] * len(self.candidates)

    @property
    def eval_scale(self) -> float:
        """The factor evaluation applies to every (candidate, channel) pair: the keep probability."""
        return 1.0 / len(self.candidates) if self.channel_dropout else 1.0

    def gammas(self) -> torch.Tensor:
        """The BN scales as ``[N, C]`` (a view: row n is candidate n)."""
        return self.bn.weight.view(len(self.candidates), self.width)

    def cost_weights(self, reweight: bool = True) -> torch.Tensor:
        """``[N]`` float: each candidate's multiply-adds per output channel at this layer, normalised
        over the candidates (``reweight``; 9/13, 3/13, 1/13 for kxkxk, 1xkxk, kx1x1), else ones."""
        if not reweight:
            return torch.ones(len(self.candidates))
        in_channels = self.convs[0].in_channels
        macs = torch.tensor([float(conv_cost({s: 1}, in_channels, (1, 1, 1), self.kernel_size)[1])
                             for s in self.candidates])
        return macs / macs.sum()

    def sample_keep(self) -> torch.Tensor:
        """A random 0/1 float ``[N * C]`` (torch's CPU RNG, so a resumed run draws the same):
        C pairs uniformly (``must_fill`` False), or one candidate per channel (True)."""
        n, c = len(self.candidates), self.width
        keep = torch.zeros(n * c)
        if self.must_fill:
            keep[torch.randint(n, (c,)) * c + torch.arange(c)] = 1.0
        else:
            keep[torch.randperm(n * c)[:c]] = 1.0
        return keep

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.bn(torch.cat([conv(x) for conv in self.convs], dim=1))
        if self.channel_dropout:
            keep = self.sample_keep().to(y.device, y.dtype) if self.training else self.eval_scale
            y = y * (keep.view(1, -1, 1, 1, 1) if self.training else keep)
        if self.must_fill:
            y = y.unflatten(1, (len(self.candidates), self.width)).sum(dim=1)
        return self.relu(y)


@dataclass(frozen=True)
class SearchedSite:
    """One searched conv of a ResNet3D: its module path and, when its output feeds another conv of
    the block (``must_fill`` False), the path of that conv (``consumer``)."""
    path: str
    consumer: Optional[str]

    @property
    def must_fill(self) -> bool:
        return self.consumer is None


def searched_sites(model: ResNet3D) -> List[SearchedSite]:
    """The searched convs of ``model`` in :func:`cakes_layer_widths` order (the same paths in the
    plain 3D network, its supernet and every network derived from it)."""
    sites = []
    for stage in range(1, 5):
        for j, block in enumerate(getattr(model, f"layer{stage}")):
            p = f"layer{stage}.{j}"
            if isinstance(block, Bottleneck):
                sites.append(SearchedSite(f"{p}.conv2", f"{p}.conv3"))
            elif isinstance(block, BasicBlock):
                sites += [SearchedSite(f"{p}.conv1", f"{p}.conv2"), SearchedSite(f"{p}.conv2", None)]
    return sites


def make_supernet(plain: ResNet3D, candidates: Sequence[str], channel_dropout: bool = False) -> ResNet3D:
    """Turns ``plain`` (a ResNet3D whose searched convs are "3d" ConvBN ops), in place, into its
    supernet: every searched conv becomes a :class:`SupernetLayer` of ``candidates`` with the same
    width, stride and ReLU, and the conv consuming a ``must_fill`` False layer takes its N x C
    outputs. The new layers are initialised by the network's own rule; returns ``plain``."""
    widened = {}  # consumer path -> its input width
    for site in searched_sites(plain):
        old = plain.get_submodule(site.path)
        layer = SupernetLayer(widened.get(site.path, old.conv.in_channels), old.conv.out_channels, candidates,
                              old.conv.stride, old.conv.kernel_size[0], site.must_fill, isinstance(old.relu, nn.ReLU),
                              channel_dropout)
        set_module(plain, site.path, layer)
        if site.consumer is not None:
            widened[site.consumer] = layer.out_channels
            consumer = plain.get_submodule(site.consumer)
            if isinstance(consumer, nn.Conv3d):  # a bottleneck's conv3 (a basic block's conv2 is searched)
                set_module(plain, site.consumer, nn.Conv3d(layer.out_channels, consumer.out_channels, 1, bias=False))
    plain._init_weights()  # the model's own initialisation, applied to the new layers too
    return plain


def supernet_layers(model: nn.Module) -> List[SupernetLayer]:
    """The supernet's searched layers in :func:`cakes_layer_widths` order (``model`` may be DDP-wrapped)."""
    return [m for m in model.modules() if isinstance(m, SupernetLayer)]


def supernet_scores(model: nn.Module) -> Scores:
    """Per searched layer, candidate -> ``|gamma|`` of its C channels (float ``[C]`` on the CPU)."""
    return [{s: g.detach().abs().float().cpu() for s, g in zip(layer.candidates, layer.gammas())}
            for layer in supernet_layers(model)]


def apply_sparsity(model: nn.Module, sparsity: float, reweight: bool = True, grad_scale: float = 1.0) -> None:
    """Cost priority, after ``backward()``: ``grad(gamma) += s * w_k * sign(gamma)`` on every
    searched layer's BN scales, ``w_k`` = :meth:`SupernetLayer.cost_weights` of candidate k and
    s = ``sparsity`` (times ``grad_scale``, the loss scale of mixed precision, so that
    unscaling leaves s itself). The same on every rank, so DDP replicas stay equal."""
    for layer in supernet_layers(model):
        gamma = layer.gammas()
        if layer.bn.weight.grad is None:
            continue
        w = layer.cost_weights(reweight).to(gamma.device, gamma.dtype).view(-1, 1)
        layer.bn.weight.grad.add_((sparsity * grad_scale * w * torch.sign(gamma.detach())).flatten())


def supernet_from_3d(plain: ResNet3D, candidates: Sequence[str], channel_dropout: bool,
                     slice_kernel: Callable, source: str = "3D weights") -> ResNet3D:
    """The supernet of ``plain`` carrying ``plain``'s weights (``plain`` is rebuilt in place).

    Each candidate of a searched conv is ``slice_kernel(weight, kernel shape)`` of its kernel, its
    BN entries are repeated per candidate, and the conv after a ``must_fill`` False layer takes
    each candidate's copy of its inputs. Scaled so that the supernet in eval mode computes what
    ``plain`` does wherever the slices are exact: each candidate's share of a sum is
    ``1 / (N * eval_scale)``, 1/N in cost mode and 1 in performance mode (where a training
    forward takes one candidate per channel, unscaled).
    """
    state, sites = {k: v.clone() for k, v in plain.state_dict().items()}, searched_sites(plain)
    supernet = make_supernet(plain, candidates, channel_dropout)  # re-initialises plain's tensors
    out, input_share = dict(state), {}  # consumer path -> its share of each input copy
    for site, layer in zip(sites, supernet_layers(supernet)):
        share = 1.0 / (len(candidates) * layer.eval_scale)
        w = out.pop(f"{site.path}.conv.weight")
        for n, conv in enumerate(layer.convs):
            tiled = _tile_inputs(slice_kernel(w, conv.kernel_size), conv.in_channels)
            out[f"{site.path}.convs.{n}.weight"] = tiled * input_share.get(site.path, 1.0)
        for name in ("weight", "bias", "running_mean", "running_var"):
            value = out[f"{site.path}.bn.{name}"].repeat(len(candidates))
            out[f"{site.path}.bn.{name}"] = value * share if site.must_fill and name in ("weight", "bias") else value
        if site.consumer is not None:
            input_share[site.consumer] = share
            if f"{site.consumer}.weight" in out:  # a bottleneck's conv3
                consumer = f"{site.consumer}.weight"
                out[consumer] = _tile_inputs(out[consumer], layer.out_channels) * share
    load_model_state(supernet, out, source=source)
    return supernet


def _tile_inputs(weight: torch.Tensor, in_channels: int) -> torch.Tensor:
    """``weight`` ``[O, I, ...]`` with its input channels repeated to ``in_channels`` (a multiple of I)."""
    return weight.repeat(1, in_channels // weight.shape[1], *([1] * (weight.dim() - 2)))


def contiguous_selection(derived: ResNet3D) -> Selection:
    """The selection that gives ``derived``'s CAKES layers the supernet channels at their own
    positions: group s of a layer takes candidate s's channels ``offset_s .. offset_s + n_s - 1``, so
    with a supernet sliced from a 3D model (:func:`supernet_from_3d`) each output channel keeps
    the sub-kernel sliced from its own 3D kernel (a shrink without a search)."""
    selection = []
    for site in searched_sites(derived):
        layer = derived.get_submodule(site.path)
        selection.append({s: list(range(first, first + n)) for s, first, n in
                          zip(layer.subkernels, layer.group_offsets, layer.out_splits)})
    return selection


def inherit_weights(supernet: nn.Module, derived: ResNet3D, selection: Selection) -> ResNet3D:
    """Loads into ``derived`` (the CAKES network of ``selection``'s channel config) the supernet's
    weights of the kept channels; returns ``derived``.

    Layer i's group s takes candidate s's rows ``selection[i][s]`` and their BN entries; the conv
    after a ``must_fill`` False layer takes the matching input channels (candidate n's channel j
    is input n * C + j). A ``must_fill`` True layer's output channel p meets the residual channel
    p, and a CAKES layer's groups are contiguous (vocabulary order), so there group s takes
    candidate s's rows at its own positions: the selection's counts are kept, and its per-channel
    assignment too when it is contiguous (a warning says when it is not). Everything else is
    copied. With the dropped pairs' BN scale and shift zeroed (cost mode), or as one training
    forward with those pairs kept (performance mode), the supernet computes what ``derived`` does.
    """
    sup = supernet.state_dict()
    out, kept_inputs, scattered = {}, {}, []
    sites, layers = searched_sites(derived), supernet_layers(supernet)
    if not (len(sites) == len(layers) == len(selection)):
        raise ValueError(f"selection has {len(selection)} layers, the supernet {len(layers)}, "
                         f"the derived network {len(sites)}")
    for i, (site, layer, chosen) in enumerate(zip(sites, layers, selection)):
        rows = _kept_rows(i, layer, derived.get_submodule(site.path), chosen, site.must_fill, scattered)
        in_cols = kept_inputs.get(site.path)
        for g, (n, idx) in enumerate(rows):
            w = sup[f"{site.path}.convs.{n}.weight"][idx]
            out[f"{site.path}.convs.{g}.weight"] = w if in_cols is None else w[:, in_cols]
        bn_rows = torch.cat([n * layer.width + idx for n, idx in rows])
        for name in ("weight", "bias", "running_mean", "running_var"):
            out[f"{site.path}.bn.{name}"] = sup[f"{site.path}.bn.{name}"][bn_rows]
        out[f"{site.path}.bn.num_batches_tracked"] = sup[f"{site.path}.bn.num_batches_tracked"]
        if site.consumer is not None:
            kept_inputs[site.consumer] = bn_rows
            if f"{site.consumer}.weight" in sup:  # a bottleneck's conv3
                out[f"{site.consumer}.weight"] = sup[f"{site.consumer}.weight"][:, bn_rows]
    if scattered:
        logger.warning("layers %s: a residual layer's CAKES groups are contiguous, so their channels keep the "
                       "selection's counts, not its per-channel assignment", scattered)
    for key in derived.state_dict():
        out.setdefault(key, sup.get(key))
    load_model_state(derived, {k: v for k, v in out.items() if v is not None}, source="the supernet")
    return derived


def _kept_rows(i: int, layer: SupernetLayer, cakes_layer: nn.Module, chosen: Dict[str, List[int]],
               must_fill: bool, scattered: List[int]) -> List[Tuple[int, torch.Tensor]]:
    """``(candidate index, supernet rows [n_s] long)`` per group of layer ``i``'s CAKES layer, checked
    against the selection ``chosen``; appends ``i`` to ``scattered`` when a ``must_fill`` layer's
    selection is not contiguous."""
    counts = {s: len(idx) for s, idx in chosen.items() if idx}
    unknown = [s for s in counts if s not in layer.candidates]
    if unknown or counts != cakes_layer.counts:
        raise ValueError(f"layer {i}: selection {counts} does not match the derived layer's {cakes_layer.counts} "
                         f"over the candidates {layer.candidates}")
    if must_fill and sorted(j for idx in chosen.values() for j in idx) != list(range(layer.width)):
        raise ValueError(f"layer {i}: a residual layer's selection must give each of its {layer.width} "
                         "channels exactly one candidate")
    rows = []
    for s, first in zip(cakes_layer.subkernels, cakes_layer.group_offsets):
        idx = list(range(first, first + counts[s])) if must_fill else sorted(chosen[s])
        if must_fill and sorted(chosen[s]) != idx and i not in scattered:
            scattered.append(i)
        rows.append((layer.candidates.index(s), torch.tensor(idx, dtype=torch.long)))
    return rows
