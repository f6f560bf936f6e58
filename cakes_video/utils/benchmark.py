"""Latency, throughput and cost of models, and fair side-by-side comparisons.

A model is named by a spec: a YAML config path (built with :func:`build_model`; CAKES
layers use ``cakes_impl``), optionally followed by overrides of its own as ``@KEY=VALUE``
(``r3d_18.yaml@MODEL.TEMPORAL_OP=cakes@MODEL.CAKES.CONV_CONFIG=uniform``), or
``torchvision:NAME`` for ``torchvision.models.video.NAME``.
Every model of a run gets the same execution path: eval mode under ``torch.inference_mode``
(or a forward+backward train step), the same memory format, the same ``deploy`` folding,
the same threads and input. Latencies are measured interleaved (one run of each model in
turn, rotating who goes first) so load drift on a shared machine hits all alike; the
reported latency is the median over runs. Costs are fvcore FLOPs (multiply-add = 1 FLOP)
of one view at batch 1 (see :mod:`.complexity`).
With ``breakdown`` (and ``compare``), separate hooked passes then measure the time and FLOPs
inside the CAKES layers and the base's dense convolutions, and the speedup / efficiency they
cap (keys defined in :mod:`.time_breakdown`; :data:`BREAKDOWN_COLUMNS` is their table).
"""
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .complexity import conv_linear_gflops_by_module, count_gflops, count_params

TORCHVISION_PREFIX = "torchvision:"
TIMERS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class Entry:
    """One model in a run: ``name``, the module, and the reference-layer twin of a CAKES model.

    ``module_gflops`` (filled for a breakdown): conv + linear GFLOPs of one view inside each
    module of the undeployed model, by qualified name (deploying keeps the names).
    """

    name: str
    model: nn.Module
    reference: Optional[nn.Module] = None
    result: Dict = field(default_factory=dict)
    module_gflops: Dict[str, float] = field(default_factory=dict)


def split_spec(spec: str) -> Tuple[str, List[str]]:
    """``"cfg.yaml@K1=V1@K2=V2"`` -> ``("cfg.yaml", ["K1", "V1", "K2", "V2"])``."""
    path, *pairs = spec.split("@")
    overrides = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"{spec}: per-model overrides are written @KEY=VALUE, got {pair!r}")
        overrides += [key, value]
    return path, overrides


def spec_name(spec: str) -> str:
    """Display name: ``torchvision:NAME`` as is, a config by its file stem (+ its @overrides)."""
    if spec.startswith(TORCHVISION_PREFIX):
        return spec
    path, _ = split_spec(spec)
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem + spec[len(path):]


def build_from_spec(spec: str, overrides: Sequence[str] = (), cakes_impl: str = "efficient") -> nn.Module:
    """The model of ``spec`` with random weights; ``overrides`` (KEY VALUE) apply before the spec's own."""
    if spec.startswith(TORCHVISION_PREFIX):
        from torchvision.models import video

        name = spec[len(TORCHVISION_PREFIX):]
        if not name or name.startswith("_") or not callable(getattr(video, name, None)):
            raise ValueError(f"{spec}: torchvision.models.video has no model {name!r}")
        return getattr(video, name)(weights=None)
    from ..config import load_config
    from ..models import build_model

    path, own = split_spec(spec)
    return build_model(load_config(path, list(overrides) + own + ["MODEL.CAKES.IMPL", cakes_impl]))


def has_cakes(model: nn.Module) -> bool:
    from ..models.cakes import CakesConv3d

    return any(isinstance(m, CakesConv3d) for m in model.modules())


def prepare(model: nn.Module, device: str, channels_last: bool, deploy: bool, train: bool,
            fuse: bool = False) -> nn.Module:
    """The model as it will run: on ``device``, deployed (BN folded; ``fuse``: oneDNN post-ops) or not."""
    if deploy and train:
        raise ValueError("--deploy folds BatchNorm for inference; it cannot time a train step")
    if fuse and not deploy:
        raise ValueError("--fuse applies to a deployed model; add --deploy")
    if deploy:
        from ..models.deploy import deploy as deploy_model

        model = deploy_model(model, fuse)
    model = model.to(device).train(train)
    return model.to(memory_format=torch.channels_last_3d) if channels_last else model


def make_step(model: nn.Module, x: torch.Tensor, train: bool) -> Callable[[], None]:
    """One timed call: an inference forward, or forward + backward of the logits' sum."""
    if not train:
        def forward():
            with torch.inference_mode():
                model(x)
        return forward

    def train_step():
        model.zero_grad(set_to_none=True)
        model(x).float().sum().backward()
    return train_step


def interleaved_times(steps: Dict[str, Callable[[], None]], runs: int, warmup: int,
                      sync: Callable[[], None], clock: Callable[[], float] = time.perf_counter
                      ) -> Dict[str, List[float]]:
    """Seconds (of ``clock``) of each step per run; every run calls each step once, the first rotating."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(runs):
        for name in names[r % len(names):] + names[:r % len(names)]:
            sync()
            start = clock()
            steps[name]()
            sync()
            times[name].append(clock() - start)
    return times


def build_entries(specs: Sequence[str], frames: int, size: int, device: str = "cpu", channels_last: bool = True,
                  deploy: bool = False, train: bool = False, with_reference: bool = False,
                  overrides: Sequence[str] = (), fuse: bool = False, breakdown: bool = False) -> List[Entry]:
    """Builds, counts and prepares every spec; CAKES models get a reference twin if asked.

    ``breakdown`` also counts each model's FLOPs by module (``Entry.module_gflops``), before deploying.
    """
    names = [spec_name(s) for s in specs]
    for name in names:
        if names.count(name) > 1:
            raise ValueError(f"model {name!r} is given twice; results are keyed by name")
    entries = []
    for spec in specs:
        model = build_from_spec(spec, overrides)
        entry = Entry(spec_name(spec), model)
        entry.result.update(name=entry.name, params=count_params(model),
                            **count_gflops(model, (3, frames, size, size)))
        if breakdown:
            entry.module_gflops = conv_linear_gflops_by_module(model, (3, frames, size, size))
        if with_reference and has_cakes(model):
            from ..models.cakes import to_reference

            entry.reference = prepare(to_reference(model), device, channels_last, deploy, train, fuse)
        entry.model = prepare(model, device, channels_last, deploy, train, fuse)
        entries.append(entry)
    return entries


def make_input(batch: int, frames: int, size: int, device: str = "cpu", channels_last: bool = True) -> torch.Tensor:
    """Random clips ``[batch, 3, frames, size, size]`` in the chosen memory format."""
    x = torch.randn(batch, 3, frames, size, size, device=device)
    return x.contiguous(memory_format=torch.channels_last_3d) if channels_last else x


def run_benchmark(specs: Sequence[str], frames: int, size: int, batch: int = 1, runs: int = 10,
                  warmup: int = 2, device: str = "cpu", channels_last: bool = True, deploy: bool = False,
                  train: bool = False, compare: bool = False, overrides: Sequence[str] = (),
                  timer: str = "wall", fuse: bool = False, breakdown: bool = False) -> List[Dict]:
    """Measures every spec (see module doc); returns one result dict per spec, in order.

    Keys: ``name, params, gflops, gflops_conv_linear`` (one view, batch 1), ``latency_ms``
    (median of ``runs``), ``latency_min_ms``, ``clips_per_s`` (batch / median latency); with
    ``compare``: ``efficiency`` against ``specs[0]`` and, for CAKES models,
    ``speedup_vs_reference`` (reference-layer twin's latency over this model's).
    ``timer="cpu"`` measures process CPU time instead of wall time: on a shared, loaded
    machine with ``--threads 1`` it ignores time spent descheduled (with more threads it
    also counts OpenMP spin-waiting, so use it single-threaded).
    ``breakdown`` (needs ``compare``) adds the keys of :mod:`.time_breakdown` from separate
    hooked passes (always wall time), run after the timed ones.
    """
    if timer not in TIMERS:
        raise ValueError(f"unknown timer {timer!r}; expected one of {list(TIMERS)}")
    if breakdown and not compare:
        raise ValueError("breakdown needs compare: its rates and ceilings are relative to the base "
                         "(first) model and to each CAKES model's reference twin")
    entries = build_entries(specs, frames, size, device, channels_last, deploy, train, compare, overrides, fuse,
                            breakdown)
    x = make_input(batch, frames, size, device, channels_last)
    steps = {}
    for e in entries:
        steps[e.name] = make_step(e.model, x, train)
        if e.reference is not None:
            steps[e.name + "[reference]"] = make_step(e.reference, x, train)
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    times = interleaved_times(steps, runs, warmup, sync, TIMERS[timer])
    results = [dict(_summarise(e, times, batch, entries[0] if compare else None), timer=timer) for e in entries]
    if breakdown:
        from .time_breakdown import add_breakdown  # it imports this module

        add_breakdown(results, entries, x, train, runs, sync)
    return results


def _summarise(e: Entry, times: Dict[str, List[float]], batch: int, base: Optional[Entry]) -> Dict:
    median = statistics.median(times[e.name])
    out = dict(e.result, latency_ms=median * 1e3, latency_min_ms=min(times[e.name]) * 1e3,
               clips_per_s=batch / median)
    if base is not None:
        base_median = statistics.median(times[base.name])
        out["efficiency"] = (base_median / median) / (base.result["gflops"] / e.result["gflops"])
        if e.reference is not None:
            out["speedup_vs_reference"] = statistics.median(times[e.name + "[reference]"]) / median
    return out


MAIN_COLUMNS = [("name", "{}"), ("params", "{:,}"), ("gflops", "{:.2f}"), ("gflops_conv_linear", "{:.2f}"),
                ("latency_ms", "{:.1f}"), ("latency_min_ms", "{:.1f}"), ("clips_per_s", "{:.2f}"),
                ("efficiency", "{:.3f}"), ("speedup_vs_reference", "{:.3f}")]
# Breakdown keys (see .time_breakdown), printed one key per row by format_breakdown.
BREAKDOWN_COLUMNS = [("hooked_total_ms", "{:.1f}"), ("dense_conv_ms", "{:.1f}"), ("dense_conv_gflops", "{:.3f}"),
                     ("dense_gflops_per_s", "{:.1f}"), ("cakes_layers_ms", "{:.1f}"),
                     ("reference_hooked_total_ms", "{:.1f}"), ("reference_cakes_layers_ms", "{:.1f}"),
                     ("cakes_layers_gflops", "{:.3f}"), ("cakes_layers_gflops_per_s", "{:.1f}"),
                     ("cakes_layers_share", "{:.3f}"), ("speedup_ceiling", "{:.3f}"),
                     ("speedup_at_dense_rate", "{:.3f}"), ("efficiency_at_dense_rate", "{:.3f}")]


def format_table(results: Sequence[Dict], columns: Sequence[Tuple[str, str]] = tuple(MAIN_COLUMNS)) -> str:
    """A fixed-width text table of :func:`run_benchmark` results: one row per model, one column
    per ``(key, format)`` of ``columns`` that some result has ("-" where one lacks it)."""
    cols = [(k, f) for k, f in columns if any(k in r for r in results)]
    rows = [[k for k, _ in cols]] + [[f.format(r[k]) if k in r else "-" for k, f in cols] for r in results]
    return _aligned(rows)


def format_breakdown(results: Sequence[Dict]) -> str:
    """The :data:`BREAKDOWN_COLUMNS` of ``results`` transposed: one row per key, one column per model."""
    keys = [(k, f) for k, f in BREAKDOWN_COLUMNS if any(k in r for r in results)]
    rows = [["name"] + [r["name"] for r in results]]
    rows += [[k] + [f.format(r[k]) if k in r else "-" for r in results] for k, f in keys]
    return _aligned(rows)


def _aligned(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as text: first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def profile_table(model: nn.Module, x: torch.Tensor, rows: int = 15) -> str:
    """torch.profiler table of one inference forward: the ops that take the time."""
    from torch.profiler import ProfilerActivity, profile

    with torch.inference_mode():
        model(x)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            model(x)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=rows)
