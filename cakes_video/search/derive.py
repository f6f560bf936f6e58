"""Deriving a network from a supernet's scores: the paper's per-layer top-C, or a budget for the whole network.

``scores`` (the search contract): one dict per searched layer, candidate -> ``[C]`` tensor of
|gamma|. A :data:`Selection` keeps, per layer, candidate -> sorted channel indices; its channel
config (:func:`channel_config_of`) is what ``MODEL.CAKES.CONV_CONFIG`` loads.

- :func:`top_c`: every layer keeps its width C. A layer whose output feeds another conv keeps
  the C largest |gamma| over all its candidates' channels; channels are ranked by (score
  descending, candidate in vocabulary order, channel index ascending), so ties never keep more
  than C (the official ``|gamma| >= C-th largest`` threshold keeps every tie and can overshoot).
  A layer whose output feeds the residual sum keeps every position (its channel j is added to the
  shortcut's channel j), and a CAKES layer lays its sub-kernel groups out as contiguous blocks in
  vocabulary order, so such a layer chooses block sizes: those of the largest total score of each
  position under its block's candidate (exact, by dynamic programming). The supernet's weights
  of such a selection are then inherited exactly (``search.supernet.inherit_weights``).
- :func:`derive_under_budget`: from top-C, a greedy on score lost per cost saved: each step
  applies the cheapest move (drop a chunk of one candidate's weakest kept channels, or move a
  chunk to another candidate) until the network fits the budget, then adds back (a chunk of the
  strongest unkept channels, or a move to a dearer candidate) the best score gained per cost
  while it still fits, so it lands within the tolerance below the budget and never above. Raw
  |gamma| is compared across layers, as network slimming's global threshold does. Costs come
  from :mod:`.costs` (params, GFLOPs: exact) or :mod:`.latency` (the measured table).

Counts are multiples of :func:`~.costs.layer_granularity` (SEARCH.DERIVE.GRANULARITY, or the
largest divisor of the width below it).
"""
import itertools
import logging
from dataclasses import dataclass
from typing import Callable, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

import torch
from fvcore.common.config import CfgNode

from ..config import ConfigError, check_choice
from ..models.resnet3d import cakes_layer_widths
from ..models.subkernels import ChannelConfig, in_vocabulary_order
from .costs import (NetworkCost, SearchedLayer, analytic_gflops, analytic_params, derive_input_shape,
                    granular_uniform_config, layer_granularity, searched_layers)
from .latency import latency_cost, measure_network_ms

logger = logging.getLogger(__name__)

Scores = List[Dict[str, torch.Tensor]]
Selection = List[Dict[str, List[int]]]
Counts = Dict[str, int]
Progress = Callable[[Iterable, str], Iterable]
LOWER_BAND = 0.02  # a budgeted derivation lands in [budget * (1 - LOWER_BAND), budget] by its cost model
LATENCY_ATTEMPTS = 6  # derivations under a latency budget, each target corrected by the measurements so far


def no_progress(iterable: Iterable, desc: str) -> Iterable:
    return iterable


def _params_cost(cfg, layers, input_shape, progress) -> NetworkCost:
    return analytic_params(cfg, layers, _reference(cfg, layers))


def _gflops_cost(cfg, layers, input_shape, progress) -> NetworkCost:
    return analytic_gflops(cfg, layers, _reference(cfg, layers), input_shape)


def _latency_cost(cfg, layers, input_shape, progress) -> NetworkCost:
    return latency_cost(cfg, layers, input_shape, _reference(cfg, layers), progress)


def _reference(cfg: CfgNode, layers: Sequence[SearchedLayer]) -> ChannelConfig:
    candidates = in_vocabulary_order(cfg.SEARCH.CANDIDATES)
    return granular_uniform_config(layers, candidates, cfg.SEARCH.DERIVE.GRANULARITY)


class BudgetKind(NamedTuple):
    unit: str
    tolerance: float  # the derived network's figure lands within this fraction of the budget
    cost_model: Callable  # (cfg, layers, input_shape, progress) -> NetworkCost
    additive: bool  # a layer's cost is linear in its counts: one candidate at full width is its dearest


# SEARCH.DERIVE.BUDGET_KIND -> its cost model ("" = top-C, no budget).
BUDGET_KINDS = {
    "gflops": BudgetKind("GFLOPs", 0.02, _gflops_cost, additive=True),
    "params": BudgetKind("params", 0.02, _params_cost, additive=True),
    # each sub-kernel group is one more conv call: a mix can be slower than any single candidate
    "latency_ms": BudgetKind("ms", 0.05, _latency_cost, additive=False),
}


def check_derive_config(cfg: CfgNode) -> None:
    """ConfigError naming SEARCH.DERIVE.BUDGET_KIND unless it is "" or a key of :data:`BUDGET_KINDS`."""
    check_choice(cfg, "SEARCH.DERIVE.BUDGET_KIND", ["", *BUDGET_KINDS])


def channel_config_of(selection: Selection) -> ChannelConfig:
    """The channel config of a selection: per layer, candidate -> number of kept channels (>0)."""
    return [{s: len(idx) for s, idx in layer.items() if idx} for layer in selection]


def check_scores(scores: Scores, widths: Sequence[Tuple[int, bool]], candidates: Sequence[str]) -> None:
    """ValueError naming the layer unless ``scores`` has one dict per layer, each with every
    candidate's ``[C]`` scores."""
    if len(scores) != len(widths):
        raise ValueError(f"scores: {len(scores)} layers, the network has {len(widths)} searched layers")
    for i, (layer, (width, _)) in enumerate(zip(scores, widths)):
        if sorted(layer) != sorted(candidates):
            raise ValueError(f"scores: layer {i} has candidates {sorted(layer)}, expected {sorted(candidates)}")
        for s, v in layer.items():
            if tuple(v.shape) != (width,):
                raise ValueError(f"scores: layer {i} candidate {s!r} has shape {tuple(v.shape)}, expected ({width},)")


class _Layer:
    """What both layer kinds share: ``counts`` (candidate -> kept channels) and copies of the
    layer with other counts."""

    candidates: List[str]
    counts: Counts

    def single(self, s: str, n: int):
        """This layer keeping ``n`` channels of candidate ``s`` only."""
        return self._with({t: n if t == s else 0 for t in self.candidates})

    def _with(self, counts: Counts):
        layer = object.__new__(type(self))
        layer.__dict__.update(self.__dict__, counts=counts)
        return layer


class _OpenLayer(_Layer):
    """A layer whose total may be below its width: candidate s keeps its ``counts[s]`` best channels."""

    def __init__(self, scores: Dict[str, List[float]], candidates: Sequence[str], width: int, step: int,
                 counts: Optional[Counts] = None):
        self.candidates, self.width, self.step = list(candidates), width, step
        self.ranked = {s: sorted(range(width), key=lambda j, s=s: (-scores[s][j], j)) for s in candidates}
        self.values = {s: [scores[s][j] for j in self.ranked[s]] for s in candidates}
        self.counts = counts if counts is not None else self._top()

    def _top(self) -> Counts:
        """The best ``width`` channels in chunks of ``step`` (optimal: each candidate's gains fall)."""
        counts = {s: 0 for s in self.candidates}
        for _ in range(self.width // self.step):
            best = max(self.candidates, key=lambda s: (self._gain(counts, s), -self.candidates.index(s)))
            counts[best] += self.step
        return counts

    def _gain(self, counts: Counts, s: str) -> float:
        n = counts[s]
        return sum(self.values[s][n:n + self.step]) if n + self.step <= self.width else float("-inf")

    def moves(self) -> Iterable[Tuple[float, "_OpenLayer"]]:
        """(score lost, new layer) for dropping, adding or moving one chunk."""
        total, g = sum(self.counts.values()), self.step
        for s in self.candidates:
            n = self.counts[s]
            drop = sum(self.values[s][n - g:n]) if n >= g else None
            if drop is not None and total - g >= 1:
                yield drop, self._with({**self.counts, s: n - g})
            if total + g <= self.width:
                yield -self._gain(self.counts, s), self._with({**self.counts, s: n + g})
            for t in self.candidates:
                if t != s and drop is not None and self.counts[t] + g <= self.width:
                    yield drop - self._gain(self.counts, t), self._with({**self.counts, s: n - g, t: self.counts[t] + g})

    def selection(self) -> Dict[str, List[int]]:
        return {s: sorted(self.ranked[s][:n]) for s, n in self.counts.items()}


class _FilledLayer(_Layer):
    """A layer that keeps its width and feeds the residual sum: its output channel j must stay at
    position j, and a CAKES layer lays its groups out in vocabulary order, so candidate s owns
    one contiguous block of ``counts[s]`` positions (the blocks follow the candidates' order)."""

    def __init__(self, scores: Dict[str, List[float]], candidates: Sequence[str], width: int, step: int,
                 counts: Optional[Counts] = None):
        self.scores, self.candidates, self.width, self.step = scores, list(candidates), width, step
        self.prefix = {s: [0.0] + list(itertools.accumulate(scores[s])) for s in candidates}
        self.counts = counts if counts is not None else self._top()

    def score(self, counts: Counts) -> float:
        """Sum of the scores of each candidate's block of positions."""
        total, first = 0.0, 0
        for s in self.candidates:
            stop = first + counts[s]
            total += self.prefix[s][stop] - self.prefix[s][first]
            first = stop
        return total

    def _top(self) -> Counts:
        """The block sizes (multiples of step, summing to the width) of the largest score: a
        dynamic programme over the block boundaries, candidates in order."""
        bounds = range(0, self.width + 1, self.step)
        best = {0: (0.0, ())}  # boundary after the candidates so far -> (score, their counts)
        for i, s in enumerate(self.candidates):
            last = i == len(self.candidates) - 1
            nxt = {}
            for b in ([self.width] if last else bounds):
                options = [(v + self.prefix[s][b] - self.prefix[s][a], c + (b - a,))
                           for a, (v, c) in best.items() if a <= b]
                nxt[b] = max(options, key=lambda o: (o[0], o[1]))  # ties: the earlier candidates' blocks larger
            best = nxt
        return dict(zip(self.candidates, best[self.width][1]))

    def moves(self) -> Iterable[Tuple[float, "_FilledLayer"]]:
        """(score lost, new layer) for moving one step of positions from candidate s's block to t's."""
        here = self.score(self.counts)
        for s in self.candidates:
            if self.counts[s] < self.step:
                continue
            for t in self.candidates:
                if t != s:
                    counts = {**self.counts, s: self.counts[s] - self.step, t: self.counts[t] + self.step}
                    yield here - self.score(counts), self._with(counts)

    def selection(self) -> Dict[str, List[int]]:
        selection, first = {}, 0
        for s in self.candidates:
            selection[s] = list(range(first, first + self.counts[s]))
            first += self.counts[s]
        return selection


def _layers(scores: Scores, widths: Sequence[Tuple[int, bool]], candidates: Sequence[str], granularity: int) -> list:
    check_scores(scores, widths, candidates)
    layers = []
    for layer_scores, (width, must_fill) in zip(scores, widths):
        values = {s: [float(v) for v in layer_scores[s].detach().cpu()] for s in candidates}
        kind = _FilledLayer if must_fill else _OpenLayer
        layers.append(kind(values, candidates, width, layer_granularity(width, granularity)))
    return layers


def _selection(layers: list) -> Selection:
    return [layer.selection() for layer in layers]


def top_c(scores: Scores, widths: Sequence[Tuple[int, bool]], candidates: Sequence[str],
          granularity: int = 1) -> Selection:
    """The paper's derivation: every layer keeps its width (see the module doc for the ranking).

    Args:
        scores: the supernet's |gamma| per layer and candidate (``[C]`` each).
        widths: ``(C, must_fill)`` per layer (:func:`~cakes_video.models.resnet3d.cakes_layer_widths`).
        candidates: the candidate sub-kernels, in vocabulary order.
        granularity: counts are multiples of it (per layer, :func:`~.costs.layer_granularity`).
    """
    return _selection(_layers(scores, widths, candidates, granularity))


def extreme_config(cost: NetworkCost, candidates: Sequence[str], granularity: int, largest: bool) -> ChannelConfig:
    """The smallest legal network (one chunk of the cheapest candidate where a layer may shrink,
    the whole width of the cheapest elsewhere) or the largest (every layer full, dearest candidate)."""
    config = []
    pick = max if largest else min
    for i, layer in enumerate(cost.layers):
        c_in = sum(config[i - 1].values()) if layer.fed_by_previous else layer.in_channels
        n = layer.width if largest or layer.must_fill else layer_granularity(layer.width, granularity)
        config.append({pick(candidates, key=lambda s: cost.layer_cost(i, {s: n}, c_in)): n})
    return config


def check_budget(cost: NetworkCost, kind: str, budget: float, candidates: Sequence[str], granularity: int) -> None:
    """ConfigError naming the budget and the smallest reachable value when no legal network fits it
    (or, for an additive cost, the largest when even that is too small to land near it)."""
    smallest = cost.total(extreme_config(cost, candidates, granularity, largest=False))
    if budget < smallest:
        raise ConfigError(f"SEARCH.DERIVE.BUDGET: {kind}={budget:g} is below the smallest reachable network, "
                          f"{smallest:g} {cost.unit} (SEARCH.DERIVE.GRANULARITY {granularity})")
    largest = cost.total(extreme_config(cost, candidates, granularity, largest=True))
    if BUDGET_KINDS[kind].additive and largest < budget * (1 - LOWER_BAND):
        raise ConfigError(f"SEARCH.DERIVE.BUDGET: {kind}={budget:g} is above the largest reachable network, "
                          f"{largest:g} {cost.unit}")


def derive_under_budget(scores: Scores, cost: NetworkCost, candidates: Sequence[str], budget: float,
                        granularity: int = 1) -> Selection:
    """The selection of most score whose ``cost.total`` lies in ``[budget * (1 - LOWER_BAND), budget]``
    (greedy, see the module doc). ValueError when the greedy cannot land in that band."""
    widths = [(layer.width, layer.must_fill) for layer in cost.layers]
    layers = _layers(scores, widths, candidates, granularity)
    try:
        _Greedy(layers, cost).run(budget)
    except _Stuck:  # a measured cost need not fall with every move: grow from the smallest network instead
        smallest = extreme_config(cost, candidates, granularity, largest=False)
        layers = [layer.single(*next(iter(counts.items()))) for layer, counts in zip(layers, smallest)]
        _Greedy(layers, cost).run(budget)
    return _selection(layers)


class _Stuck(ConfigError):
    """Raised when no move lowers the cost of a network above the budget."""


class _Greedy:
    """The two phases of :func:`derive_under_budget` on ``layers`` (changed in place)."""

    def __init__(self, layers: list, cost: NetworkCost):
        self.layers, self.cost = layers, cost
        self.config = [layer.counts for layer in layers]
        self.total = cost.total(self.config)
        self._moves: Dict[int, List[Tuple[float, float, object]]] = {}

    def _delta(self, i: int, counts: Counts) -> float:
        """Cost change of layer i taking ``counts``: its own term and its fed successor's."""
        new = [*self.config[:i], counts, *self.config[i + 1:]]
        changed = [i] + ([i + 1] if i + 1 < len(self.layers) and self.cost.layers[i + 1].fed_by_previous else [])
        return sum(self.cost.term(new, k) - self.cost.term(self.config, k) for k in changed)

    def moves(self, i: int) -> List[Tuple[float, float, object]]:
        if i not in self._moves:
            self._moves[i] = [(loss, self._delta(i, layer.counts), layer) for loss, layer in self.layers[i].moves()]
        return self._moves[i]

    def apply(self, i: int, delta: float, layer) -> None:
        self.layers[i], self.config[i] = layer, layer.counts
        self.total += delta
        for k in (i - 1, i, i + 1):
            self._moves.pop(k, None)

    def candidates(self, keep: Callable[[float], bool]):
        return [(loss, delta, i, layer) for i in range(len(self.layers))
                for loss, delta, layer in self.moves(i) if keep(delta)]

    def run(self, budget: float) -> None:
        while self.total > budget:
            moves = self.candidates(lambda d: d < 0)
            if not moves:
                raise _Stuck(f"SEARCH.DERIVE.BUDGET: the derivation cannot get below {budget:g} {self.cost.unit}; "
                             f"it stops at {self.total:g}")
            loss, delta, i, layer = min(moves, key=lambda m: (m[0] / -m[1], m[2]))
            self.apply(i, delta, layer)
        floor = budget * (1 - LOWER_BAND)
        while True:
            moves = self.candidates(lambda d: d > 0 and self.total + d <= budget)
            if not moves:
                break
            loss, delta, i, layer = max(moves, key=lambda m: (-m[0] / m[1], -m[2]))
            if loss >= 0 and self.total >= floor:
                break
            self.apply(i, delta, layer)
        self.total = self.cost.total(self.config)  # the running sum, recomputed without rounding drift
        if not floor <= self.total <= budget:
            raise ConfigError(f"SEARCH.DERIVE.BUDGET: the derivation lands at {self.total:g} {self.cost.unit}, "
                              f"not within {LOWER_BAND:.0%} below the budget {budget:g}: lower "
                              "SEARCH.DERIVE.GRANULARITY")


@dataclass
class Derivation:
    """A derived network: its selection and channel config, the budget it was derived for, the
    target its cost model aimed at (the budget, or under a latency budget the budget corrected by
    measured / predicted), the figure the cost model predicts (exact for params and GFLOPs) and,
    under a latency budget, the latency measured."""

    selection: Selection
    channel_config: ChannelConfig
    budget_kind: str
    budget: float
    target: Optional[float] = None
    predicted: Optional[float] = None
    measured_latency_ms: Optional[float] = None
    cost: Optional[NetworkCost] = None


def budget_cost(cfg: CfgNode, progress: Progress = no_progress) -> Optional[NetworkCost]:
    """The cost model of SEARCH.DERIVE.BUDGET_KIND (None for top-C), its budget checked: call it
    before a search, so that an impossible budget fails (ConfigError naming the budget and the
    smallest reachable value) before anything trains. A latency budget builds (or reuses) the
    latency table here. ``progress(iterable, desc)`` wraps long loops (``engine.monitor.progress``)."""
    d = cfg.SEARCH.DERIVE
    check_derive_config(cfg)
    if not d.BUDGET_KIND:
        return None
    input_shape = derive_input_shape(cfg)
    layers = searched_layers(cfg, input_shape)
    cost = BUDGET_KINDS[d.BUDGET_KIND].cost_model(cfg, layers, input_shape, progress)
    candidates = in_vocabulary_order(cfg.SEARCH.CANDIDATES)
    if d.BUDGET_KIND == "latency_ms":
        check_latency_budget(cfg, cost, candidates)
    else:
        check_budget(cost, d.BUDGET_KIND, d.BUDGET, candidates, d.GRANULARITY)
    return cost


def check_latency_budget(cfg: CfgNode, cost: NetworkCost, candidates: Sequence[str]) -> None:
    """ConfigError when SEARCH.DERIVE.BUDGET is below the smallest network's latency, beyond the
    tolerance. The table's prediction decides only when the budget is above it; below, the
    smallest network is measured, since a table can overrate a small network (per-call overheads
    that do not add up layer by layer), and the measurement is what the budget is about."""
    d = cfg.SEARCH.DERIVE
    smallest = extreme_config(cost, candidates, d.GRANULARITY, largest=False)
    if d.BUDGET >= cost.total(smallest):
        return
    measured = measure_network_ms(cfg, smallest, derive_input_shape(cfg))
    if d.BUDGET < measured * (1 - BUDGET_KINDS["latency_ms"].tolerance):
        raise ConfigError(f"SEARCH.DERIVE.BUDGET: latency_ms={d.BUDGET:g} is below the smallest reachable network, "
                          f"measured {measured:g} ms (predicted {cost.total(smallest):g} ms; "
                          f"SEARCH.DERIVE.GRANULARITY {d.GRANULARITY})")


def derive(cfg: CfgNode, scores: Scores, cost: Optional[NetworkCost] = None,
           progress: Progress = no_progress) -> Derivation:
    """The derivation SEARCH.DERIVE asks for: top-C without a budget kind, else the budget for
    the whole network at :func:`~.costs.derive_input_shape`, with ``cost`` (from
    :func:`budget_cost`, which is called when it is None). Under a latency budget it derives,
    measures and re-derives with the target corrected by the measurements
    (:func:`next_latency_target`), up to :data:`LATENCY_ATTEMPTS` times, and returns the one
    measured closest to the budget."""
    d, candidates = cfg.SEARCH.DERIVE, in_vocabulary_order(cfg.SEARCH.CANDIDATES)
    check_derive_config(cfg)
    if not d.BUDGET_KIND:
        widths = cakes_layer_widths(cfg.MODEL.DEPTH, cfg.MODEL.BASE_WIDTH)
        selection = top_c(scores, widths, candidates, d.GRANULARITY)
        return Derivation(selection, channel_config_of(selection), "", 0.0)
    cost = cost or budget_cost(cfg, progress)
    check_scores(scores, [(layer.width, layer.must_fill) for layer in cost.layers], candidates)
    if d.BUDGET_KIND != "latency_ms":
        selection = derive_under_budget(scores, cost, candidates, d.BUDGET, d.GRANULARITY)
        config = channel_config_of(selection)
        return Derivation(selection, config, d.BUDGET_KIND, d.BUDGET, d.BUDGET, cost.total(config), cost=cost)
    return _derive_latency(cfg, scores, cost)


def _derive_latency(cfg: CfgNode, scores: Scores, cost: NetworkCost) -> Derivation:
    d, candidates = cfg.SEARCH.DERIVE, in_vocabulary_order(cfg.SEARCH.CANDIDATES)
    tolerance, tried = BUDGET_KINDS["latency_ms"].tolerance, []
    reachable = tuple(cost.total(extreme_config(cost, candidates, d.GRANULARITY, largest)) for largest in (False, True))
    target = min(max(d.BUDGET, reachable[0]), reachable[1])  # the table may be off: start where it can land
    for _ in range(LATENCY_ATTEMPTS):
        try:
            selection = derive_under_budget(scores, cost, candidates, target, d.GRANULARITY)
        except ValueError as e:  # a corrected target the greedy cannot land near: keep the closest so far
            if not tried:
                raise
            logger.warning("latency derivation: %s", e)
            break
        config = channel_config_of(selection)
        measured = measure_network_ms(cfg, config, derive_input_shape(cfg))
        tried.append(Derivation(selection, config, "latency_ms", d.BUDGET, target, cost.total(config), measured, cost))
        if abs(measured - d.BUDGET) <= tolerance * d.BUDGET:
            break
        target = next_latency_target(tried, d.BUDGET, reachable)
        if target is None:
            break
    best = min(tried, key=lambda t: abs(t.measured_latency_ms - d.BUDGET))
    if abs(best.measured_latency_ms - d.BUDGET) > tolerance * d.BUDGET:
        logger.warning("latency derivation: measured %.3f ms against the budget %.3f ms (predicted %.3f ms)",
                       best.measured_latency_ms, d.BUDGET, best.predicted)
    return best


def next_latency_target(tried: Sequence[Derivation], budget: float, reachable: Tuple[float, float]) -> Optional[float]:
    """The next target of the cost model after the derivations ``tried`` (their targets and measured
    latencies): between the closest tried below and above the budget, interpolated linearly, once
    the measurements bracket it; before that the last target scaled by budget / measured (the
    table off by a factor), kept within the model's ``reachable`` (smallest, largest) totals.
    None when that target was tried already (nothing new to learn)."""
    below = [t for t in tried if t.measured_latency_ms < budget]
    above = [t for t in tried if t.measured_latency_ms > budget]
    if below and above:
        lo = max(below, key=lambda t: t.measured_latency_ms)
        hi = min(above, key=lambda t: t.measured_latency_ms)
        share = (budget - lo.measured_latency_ms) / (hi.measured_latency_ms - lo.measured_latency_ms)
        target = lo.target + share * (hi.target - lo.target)
    else:
        last = tried[-1]
        target = min(max(last.target * budget / last.measured_latency_ms, reachable[0]), reachable[1])
    if any(abs(target - t.target) <= 1e-9 * max(1.0, abs(target)) for t in tried):
        return None
    return target
