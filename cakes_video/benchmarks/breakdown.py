"""Where the time of a forward goes: CAKES layers and dense convolutions, timed with hooks.

A breakdown (``breakdown`` with ``compare`` in :func:`~.models.measure`) runs, after the timed
interleaved runs, a separate set of ``runs`` hooked passes per model (the same input and the
same :class:`~.execution.ExecutionPath` call, inference or train step, as the timed runs,
interleaved the same way; medians reported). Not with ``compile``: forward hooks do not fire
inside a compiled graph. Forward pre/post hooks mark the time (:func:`~.timing.clock_for`: the
wall clock on the CPU; CUDA events on a GPU, read once the pass is over, so the GPU's queue is
never drained mid-pass) around:

- every *CAKES layer*: a :class:`~cakes_video.models.cakes.CakesConv3d` (reference or
  efficient) or, in the inference form, a :class:`~cakes_video.models.deploy.DeployedCakesConv3d`;
- every *dense convolution* of the base model: a ``Conv3d`` (or, after ``fuse``, a
  :class:`~cakes_video.models.fusion.FusedConv3d`) whose kernel has every dimension > 1
  (3x3x3, and e.g. a 3x7x7 stem), outside any CAKES layer;
- the model's whole forward (hooks on the root module), so shares are fractions of the same passes.

With ``train`` (a train step) the hooks time the forward part of each step only (the backward
is not split by layer), so every time below is then a forward time.

FLOPs are fvcore conv + linear counts (multiply-add = 1) of one view ``[1, 3, T, H, W]`` inside
the same modules (``Entry.module_gflops``), counted on the undeployed reference form of the
model: BatchNorm folding and plans change no FLOP. Rates multiply them by the batch. Keys
added to the results (times in ms per forward of the batch ``[B, 3, T, H, W]``):

base model (only when it has dense convolutions):
    ``dense_conv_ms``: time inside its dense convolutions; ``dense_conv_gflops``: their GFLOPs
    per view; ``dense_gflops_per_s`` (R): ``B * dense_conv_gflops / (dense_conv_ms / 1000)``, GFLOP/s.
every model: ``hooked_total_ms``: its whole forward in the hooked passes.
per layer (JSON): ``dense_convs`` (base) and ``cakes_layers`` (CAKES models): one
    ``{name, ms, gflops, gflops_per_s}`` per module, in forward order, timed in the same passes.
every CAKES model (one with a reference twin):
    ``cakes_layers_ms`` (L_eff): time inside its CAKES layers; ``reference_cakes_layers_ms`` (L)
    and ``reference_hooked_total_ms`` (T): the same for its reference twin;
    ``cakes_layers_gflops`` (F): GFLOPs per view inside its CAKES layers (their convolutions);
    ``cakes_layers_gflops_per_s``: ``B * F / (L_eff / 1000)``, the GFLOP/s its CAKES layers reach;
    ``cakes_layers_share``: ``L / T``;
    ``cakes_layers_speedup_vs_reference``: ``L / L_eff``, the reference CAKES layers' time over
    the efficient ones' (``speedup_vs_reference`` counts the whole network);
    ``speedup_ceiling``: ``1 / (1 - L / T)``, the ``speedup_vs_reference`` reached if the
    efficient CAKES layers took no time at all;
    with R known (``B * F / R`` below taken in ms): ``speedup_at_dense_rate``:
    ``T / (T - L + B * F / R)``, the speedup if the CAKES layers ran at the base's dense-conv
    FLOP rate, and ``efficiency_at_dense_rate``: its
    ``efficiency`` computed on the hooked passes with its CAKES layers at that rate,
    ``(T_base / (T_eff - L_eff + B * F / R)) / (gflops_base / gflops)`` (T_base, T_eff: the
    ``hooked_total_ms`` of the base and of this model), comparable to ``efficiency`` for
    inference and a forward-only figure for a train step.
"""
import contextlib
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..models.cakes import CakesConv3d
from ..models.deploy import DeployedCakesConv3d
from ..models.fusion import FusedConv3d
from .execution import Entry, ExecutionPath, make_step
from .timing import Sync, WallClock, clock_for, interleaved_times, median_ms

Watch = Dict[str, List[str]]  # group name -> qualified names of the modules timed together
LAYER = "layer:"  # prefix of the one-module groups that time each layer on its own


def cakes_layer_names(model: nn.Module) -> List[str]:
    """Qualified names of the CAKES layers of ``model`` (any form: reference, efficient, deployed)."""
    return [n for n, m in model.named_modules() if isinstance(m, (CakesConv3d, DeployedCakesConv3d))]


def dense_conv_names(model: nn.Module) -> List[str]:
    """Qualified names of the Conv3d / FusedConv3d with every kernel dimension > 1, outside CAKES layers."""
    inside = tuple(n + "." for n in cakes_layer_names(model))
    names = []
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv3d):
            kernel = tuple(m.kernel_size)
        elif isinstance(m, FusedConv3d):
            kernel = tuple(m.weight.shape[2:])
        else:
            continue
        if min(kernel) > 1 and not name.startswith(inside):
            names.append(name)
    return names


class HookTimer:
    """Seconds and calls inside groups of submodules, and in the whole forward, during one pass.

    A context manager: hooks are attached on entry and removed on exit. ``reset()`` before each
    pass and ``settle()`` after it (exit settles too); then ``seconds[group]`` sums the time of
    every call of the group's modules, as ``clock`` measures it (:func:`~.timing.clock_for`), and
    ``seconds["total"]`` the root module's forward; ``calls`` counts the calls likewise.
    """

    def __init__(self, model: nn.Module, watch: Watch, clock):
        modules = dict(model.named_modules())
        groups_of: Dict[str, List[str]] = {"": ["total"]}  # module name -> the groups it counts in
        for group, names in watch.items():
            for name in names:
                groups_of.setdefault(name, []).append(group)
        self._targets = [(groups, modules[name]) for name, groups in groups_of.items()]  # one hook pair each
        self._groups = list(watch) + ["total"]  # an empty group stays: its 0 calls show it was never timed
        self._clock, self._handles = clock, []
        self.reset()

    def reset(self) -> None:
        self.seconds: Dict[str, float] = dict.fromkeys(self._groups, 0.0)
        self.calls: Dict[str, int] = dict.fromkeys(self._groups, 0)
        self._spans: List[Tuple[List[str], object, object]] = []  # (groups, start mark, end mark)

    def settle(self) -> None:
        """Waits for the clock, then adds the pass's spans to ``seconds`` and ``calls``."""
        self._clock.settle()
        for groups, start, end in self._spans:
            seconds = self._clock.seconds(start, end)
            for group in groups:
                self.seconds[group] += seconds
                self.calls[group] += 1
        self._spans = []

    def __enter__(self) -> "HookTimer":
        for groups, module in self._targets:
            starts: List[object] = []  # a stack: a module may be re-entered (recursion)
            self._handles += [module.register_forward_pre_hook(self._pre(starts)),
                              module.register_forward_hook(self._post(groups, starts))]
        return self

    def __exit__(self, *exc) -> bool:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        if not exc or exc[0] is None:  # after an error, a sync could raise again and hide it
            self.settle()
        return False

    def _pre(self, starts: List[object]) -> Callable:
        def hook(module, args):
            starts.append(self._clock.mark())
        return hook

    def _post(self, groups: List[str], starts: List[object]) -> Callable:
        def hook(module, args, output):
            end = self._clock.mark()
            self._spans.append((groups, starts.pop(), end))
        return hook


def hooked_passes(models: Dict[str, Tuple[nn.Module, Callable[[], None], Watch]], runs: int,
                  sync: Sync, clock=None) -> Dict[str, Dict[str, float]]:
    """Median ms per pass of each watched group and of ``"total"``, per model name.

    ``models`` maps a name to (module, the call that runs one pass, its watch groups); the passes
    are interleaved as the timed runs are. ``clock`` times the hooks (default
    ``WallClock(sync)``). Raises RuntimeError when a group's hooks never fire.
    """
    clock = clock or WallClock(sync)
    timers = {name: HookTimer(model, watch, clock) for name, (model, _, watch) in models.items()}
    samples: Dict[str, Dict[str, List[float]]] = {name: {} for name in models}

    def hooked(name: str, step: Callable[[], None]) -> Callable[[], None]:
        def run():
            timers[name].reset()
            step()
            timers[name].settle()
            for group, calls in timers[name].calls.items():
                if calls == 0:
                    raise RuntimeError(f"{name}: the forward hooks of {group!r} never fired")
                samples[name].setdefault(group, []).append(timers[name].seconds[group])
        return run

    steps = {name: hooked(name, step) for name, (_, step, _) in models.items()}
    with contextlib.ExitStack() as stack:
        for timer in timers.values():
            stack.enter_context(timer)
        interleaved_times(steps, runs, 0, sync)
    return {name: {g: median_ms(v) for g, v in groups.items()} for name, groups in samples.items()}


def sum_gflops(module_gflops: Dict[str, float], names: Sequence[str], model_name: str) -> float:
    """Sum of ``module_gflops`` over ``names``; a name it lacks is an error naming model and module."""
    missing = [n for n in names if n not in module_gflops]
    if missing:
        raise ValueError(f"{model_name}: no FLOP count for module(s) {missing}; the timed model's module "
                         "names must match the undeployed model's")
    return sum(module_gflops[n] for n in names)


def add_breakdown(results: List[Dict], entries: Sequence[Entry], x: torch.Tensor, *, path: ExecutionPath,
                  runs: int, sync: Sync) -> None:
    """Runs the hooked passes and adds the module doc's keys to ``results`` in place.

    ``results[i]`` is the timed result of ``entries[i]`` (``entries[0]`` the base; entries need
    ``module_gflops``); ``x`` is the timed input ``[B, 3, T, H, W]``, ``path`` the timed run's
    (its ``train`` picks the call; a compiled path is refused by :func:`~.models.check_run`).
    """
    base = entries[0]
    models, watches = {}, {}
    for e in entries:
        dense = dense_conv_names(e.model) if e is base else []
        watch = watches[e.name] = {"dense": dense} if dense else {}
        if e.reference is not None:
            watch["cakes"] = cakes_layer_names(e.model)
            models[e.name + "[reference]"] = (e.reference, make_step(e.reference, x, path),
                                              {"cakes": cakes_layer_names(e.reference)})
        layers = {LAYER + n: [n] for n in watch.get("dense", []) + watch.get("cakes", [])}
        models[e.name] = (e.model, make_step(e.model, x, path), {**watch, **layers})
    medians = hooked_passes(models, runs, sync, clock_for(path.device, sync))
    batch = x.shape[0]
    dense = watches[base.name].get("dense")
    rate = _dense_keys(results[0], base, dense, medians[base.name], batch) if dense else None
    for result, e in zip(results, entries):
        result["hooked_total_ms"] = medians[e.name]["total"]
    for result, e in zip(results, entries):  # after every total: _cakes_keys reads the base's
        watch = watches[e.name]
        if e.reference is not None:
            _cakes_keys(result, results[0], e, watch["cakes"], medians[e.name], medians[e.name + "[reference]"],
                        batch, rate)
        for key, group in (("dense_convs", "dense"), ("cakes_layers", "cakes")):
            if group in watch:
                result[key] = _per_layer(watch[group], medians[e.name], e.module_gflops, batch)


def _per_layer(names: Sequence[str], ms: Dict[str, float], module_gflops: Dict[str, float],
               batch: int) -> List[Dict]:
    """``[{name, ms, gflops, gflops_per_s}]`` of each module in ``names``: where a group's time goes."""
    rows = []
    for n in names:
        gflops = module_gflops[n]  # present: the group sums (sum_gflops) have checked every name
        rows.append({"name": n, "ms": ms[LAYER + n], "gflops": gflops,
                     "gflops_per_s": batch * gflops / (ms[LAYER + n] / 1e3)})
    return rows


def _dense_keys(result: Dict, base: Entry, names: Sequence[str], ms: Dict[str, float], batch: int) -> float:
    """Adds the base's dense-conv keys (its dense convs ``names``) to ``result``; returns its rate R in GFLOP/s."""
    gflops = sum_gflops(base.module_gflops, names, base.name)
    rate = batch * gflops / (ms["dense"] / 1e3)
    result.update(dense_conv_ms=ms["dense"], dense_conv_gflops=gflops, dense_gflops_per_s=rate)
    return rate


def _cakes_keys(result: Dict, base_result: Dict, e: Entry, names: Sequence[str], own: Dict[str, float],
                ref: Dict[str, float], batch: int, rate: Optional[float]) -> None:
    """Adds a CAKES model's keys (see module doc; ``names``: its CAKES layers) from its and its
    twin's median hooked ms."""
    flops = sum_gflops(e.module_gflops, names, e.name)
    total, layers = ref["total"], ref["cakes"]
    share = layers / total
    result.update(cakes_layers_ms=own["cakes"], reference_cakes_layers_ms=layers, reference_hooked_total_ms=total,
                  cakes_layers_gflops=flops, cakes_layers_gflops_per_s=batch * flops / (own["cakes"] / 1e3),
                  cakes_layers_share=share, cakes_layers_speedup_vs_reference=layers / own["cakes"],
                  speedup_ceiling=1 / (1 - share))
    if rate is None:
        return
    at_rate_ms = batch * flops / rate * 1e3
    result["speedup_at_dense_rate"] = total / (total - layers + at_rate_ms)
    hooked_at_rate_ms = own["total"] - own["cakes"] + at_rate_ms
    result["efficiency_at_dense_rate"] = ((base_result["hooked_total_ms"] / hooked_at_rate_ms)
                                          / (base_result["gflops"] / result["gflops"]))
