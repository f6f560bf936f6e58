"""Latency, throughput and cost of models, and fair side-by-side comparisons.

A model is named by a spec: a YAML config path (built with :func:`build_model`; CAKES
layers use ``cakes_impl``), optionally followed by overrides of its own as ``@KEY=VALUE``
(``r3d_18.yaml@MODEL.TEMPORAL_OP=cakes@MODEL.CAKES.CONV_CONFIG=uniform``), or
``torchvision:NAME`` for ``torchvision.models.video.NAME``.
Every model of a run gets the same :class:`~.execution.ExecutionPath`: eval mode under
``torch.inference_mode`` (or a forward+backward train step), the same device and memory format,
the same ``deploy`` folding (and ``fuse`` post-ops), the same ``compile`` (``torch.compile``,
inductor, with weight freezing for inference; compiled during the first warm-up run, whose wall
time is reported as ``compile_seconds``), the same threads and input ``[B, 3, T, H, W]``.
Latencies are measured interleaved (:func:`~.timing.interleaved_times`: one run of each model in
turn, rotating who goes first) so load drift on a shared machine hits all alike; the reported
latency is the median over runs. Costs are fvcore FLOPs (multiply-add = 1 FLOP) of one view
``[1, 3, T, H, W]`` (see :mod:`cakes_video.models.complexity`).
With ``breakdown`` (and ``compare``), separate hooked passes then measure the time and FLOPs
inside the CAKES layers and the base's dense convolutions, and the speedup / efficiency they
cap (keys defined in :mod:`.breakdown`; :data:`BREAKDOWN_COLUMNS` is their table).
With ``runtimes=("onnxruntime",)`` each model is also exported to ONNX (its inference form,
:mod:`cakes_video.engine.export`) and run by ONNX Runtime on the CPU with torch's thread count,
as one more entry ``"NAME [onnxruntime]"`` timed in the same interleaved rounds (with
``compare``, its reference-layer twin exported too); every result names its ``runtime``.
"""
import os
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from torchvision.models import video as torchvision_video

from ..config import ConfigError
from ..config_loader import load_config
from ..engine.export import OnnxSession, example_input, export_onnx
from ..models import build_model
from ..models.complexity import count_gflops_and_modules, count_params
from ..models.inference import inference_form
from ..models.rewrite import to_reference
from ..zoo import get_weights
from .breakdown import add_breakdown
from .execution import Entry, ExecutionPath, SettingError, make_input, make_step
from .timing import TIMERS, aligned, best_ms, cudnn_autotune, first_call_seconds, interleaved_times, median_ms, sync_for

TORCHVISION_PREFIX = "torchvision:"
ZOO_PREFIX = "zoo:"  # a zoo model's config (with its own overrides, @KEY=VALUE); weights do not matter here
PYTORCH, ONNXRUNTIME = "pytorch", "onnxruntime"
# Runtimes a run can time beside PyTorch (which always runs: its rows are the reference).
RUNTIMES = (ONNXRUNTIME,)


def split_spec(spec: str) -> Tuple[str, List[str]]:
    """``"cfg.yaml@K1=V1@K2=V2"`` -> ``("cfg.yaml", ["K1", "V1", "K2", "V2"])``."""
    path, *pairs = spec.split("@")
    overrides = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{spec}: per-model overrides are written @KEY=VALUE, got {pair!r}")
        overrides += [key, value]
    return path, overrides


def spec_name(spec: str) -> str:
    """Display name: ``torchvision:NAME`` and ``zoo:NAME`` as they are, a config by its file stem
    (+ its @overrides)."""
    if spec.startswith((TORCHVISION_PREFIX, ZOO_PREFIX)):
        return spec
    path, _ = split_spec(spec)
    stem = os.path.splitext(os.path.basename(path))[0]
    return stem + spec[len(path):]


def check_unique_specs(specs: Sequence[str]) -> None:
    """Raises ValueError when two specs share a display name (:func:`spec_name`): results are keyed by it."""
    names = [spec_name(s) for s in specs]
    if len(set(names)) < len(names):
        raise ValueError(f"a config is given twice: {names}; results are keyed by name")


def build_from_spec(spec: str, overrides: Sequence[str] = (), cakes_impl: str = "efficient") -> nn.Module:
    """The model of ``spec`` with random weights; ``overrides`` (KEY VALUE) apply before the spec's own."""
    if spec.startswith(TORCHVISION_PREFIX):
        name = spec[len(TORCHVISION_PREFIX):]
        if not name or name.startswith("_") or not callable(getattr(torchvision_video, name, None)):
            raise ConfigError(f"{spec}: torchvision.models.video has no model {name!r}")
        return getattr(torchvision_video, name)(weights=None)
    path, own = split_spec(spec)
    settings = list(overrides) + own + ["MODEL.CAKES.IMPL", cakes_impl]
    if path.startswith(ZOO_PREFIX):
        return build_model(zoo_config(path[len(ZOO_PREFIX):], settings))
    return build_model(load_config(path, settings))


def zoo_config(name: str, overrides: Sequence[str]):
    """The config of zoo model ``name`` with ``overrides``; ConfigError naming it when the zoo has none."""
    try:
        return get_weights(name).config(overrides)
    except KeyError as e:
        raise ConfigError(f"{ZOO_PREFIX}{name}: {e.args[0]}") from None


def build_entries(specs: Sequence[str], frames: int, size: int, *, path: ExecutionPath = ExecutionPath(),
                  with_reference: bool = False, overrides: Sequence[str] = (),
                  runtimes: Sequence[str] = ()) -> List[Entry]:
    """Builds, counts and prepares (``path.prepare``) every spec; CAKES models get a reference twin if asked.
    Each of ``runtimes`` (:data:`RUNTIMES`) adds an entry per spec after its PyTorch one
    (:func:`onnxruntime_entry`).

    FLOPs (totals and ``Entry.module_gflops``, of one view ``[1, 3, frames, size, size]``) are
    counted before deploying, on the reference form. With ``path.compile``, Dynamo's caches are
    reset first (``torch.compiler.reset()``, process-wide): graphs left by earlier runs would
    count against its recompile limit.
    """
    check_unique_specs(specs)
    if path.compile:
        torch.compiler.reset()
    entries = []
    for spec in specs:
        model = build_from_spec(spec, overrides)
        reference = to_reference(model)  # one copy, counted and (if asked) timed as the twin
        entry = Entry(spec_name(spec), model)
        totals, entry.module_gflops = count_gflops_and_modules(reference, (3, frames, size, size))
        entry.result.update(name=entry.name, runtime=PYTORCH, params=count_params(model), **totals)
        twin = reference if with_reference and reference is not model else None
        if ONNXRUNTIME in runtimes:
            onnx_entry = onnxruntime_entry(entry, model, twin, frames, size)
        if twin is not None:
            entry.reference = path.prepare(twin)
        entry.model = path.prepare(model)
        entries += [entry, onnx_entry] if ONNXRUNTIME in runtimes else [entry]
    return entries


def onnxruntime_entry(entry: Entry, model: nn.Module, reference: Optional[nn.Module], frames: int,
                      size: int) -> Entry:
    """``entry``'s ``model`` (and its ``reference`` twin, if any) exported to ONNX in inference form
    and run by ONNX Runtime (:class:`~cakes_video.engine.export.OnnxSession`) with torch's current
    intra-op thread count, worker threads not spinning between calls (they would take the CPU from
    the models timed after them); named ``"NAME [onnxruntime]"``, costs copied from ``entry``."""
    with tempfile.TemporaryDirectory() as folder:  # a session holds its model in memory

        def session(module: nn.Module, file_name: str) -> OnnxSession:
            path = export_onnx(inference_form(module, channels_last=False), example_input(frames, size),
                               os.path.join(folder, file_name), {})
            return OnnxSession(path, threads=torch.get_num_threads(), spinning=False)

        name = f"{entry.name} [{ONNXRUNTIME}]"
        run = session(model, "model.onnx")
        twin = session(reference, "reference.onnx") if reference is not None else None
    return Entry(name, run, reference=twin, module_gflops=entry.module_gflops,
                 result=dict(entry.result, name=name, runtime=ONNXRUNTIME, execution=f"inference; {run.describe()}"))


def check_run(path: ExecutionPath, warmup: int, compare: bool, breakdown: bool, timer: str,
              runtimes: Sequence[str] = ()) -> None:
    """Raises :class:`~.execution.SettingError` for run settings that cannot go together, naming
    them as :func:`run_benchmark`'s arguments (``path``'s fields for ``device`` and ``compile``)."""
    for runtime in runtimes:
        if runtime not in RUNTIMES:
            raise SettingError("unknown {runtimes} {given!r}; expected one of {choices}", given=runtime,
                               choices=list(RUNTIMES))
    if ONNXRUNTIME in runtimes and (torch.device(path.device).type != "cpu" or path.train or path.amp or breakdown):
        raise SettingError("{runtimes} onnxruntime times float32 inference on the CPU, without forward hooks: "
                           "not with {device} other than cpu, {train}, {amp} or {breakdown}")
    if timer not in TIMERS:
        raise SettingError("unknown {timer} {given!r}; expected one of {choices}", given=timer, choices=list(TIMERS))
    if timer == "cpu" and torch.device(path.device).type != "cpu":
        raise SettingError("{timer} cpu counts this process's CPU time, not the device's; use wall time off the CPU")
    if warmup < 1 and torch.device(path.device).type == "cuda":
        raise SettingError("{device} cuda needs {warmup} >= 1: cuDNN autotunes every convolution in its first "
                           "call, which must not be timed")
    if breakdown and not compare:
        raise SettingError("{breakdown} needs {compare}: its rates and ceilings are relative to the base "
                           "(first) model and to each CAKES model's reference twin")
    if breakdown and path.compile:
        raise SettingError("{breakdown} cannot time a {compile} run: forward hooks do not fire inside a "
                           "compiled graph; drop one of them")
    if path.compile and warmup < 1:
        raise SettingError("{compile} needs {warmup} >= 1: models compile during their first (warm-up) call, "
                           "which must not be timed")


def run_benchmark(specs: Sequence[str], frames: int, size: int, *, path: ExecutionPath = ExecutionPath(),
                  batch: int = 1, runs: int = 10, warmup: int = 2, compare: bool = False,
                  overrides: Sequence[str] = (), timer: str = "wall", breakdown: bool = False,
                  runtimes: Sequence[str] = ()) -> List[Dict]:
    """Builds every spec (:func:`build_entries`) and measures it (:func:`measure`); one result per
    spec and runtime (PyTorch, then each of ``runtimes``).

    ``overrides`` (KEY VALUE) apply to every YAML spec before its own ``@KEY=VALUE``.
    """
    check_run(path, warmup, compare, breakdown, timer, runtimes)
    entries = build_entries(specs, frames, size, path=path, with_reference=compare, overrides=overrides,
                            runtimes=runtimes)
    return measure(entries, frames, size, path=path, batch=batch, runs=runs, warmup=warmup, compare=compare,
                   timer=timer, breakdown=breakdown)


def measure(entries: Sequence[Entry], frames: int, size: int, *, path: ExecutionPath = ExecutionPath(),
            batch: int = 1, runs: int = 10, warmup: int = 2, compare: bool = False, timer: str = "wall",
            breakdown: bool = False) -> List[Dict]:
    """Times ``entries`` (built by :func:`build_entries` for ``path``, with twins if ``compare``) on
    ``path`` (see module doc) with input ``[batch, 3, frames, size, size]``; returns one result
    dict per entry, in order. The caller has checked the settings (:func:`check_run`).

    Keys: ``name, params, gflops, gflops_conv_linear`` (one view, batch 1), ``latency_ms``
    (median of ``runs``), ``latency_min_ms``, ``clips_per_s`` (batch / median latency); with
    ``compare``: ``efficiency`` against ``entries[0]`` and, for CAKES models,
    ``speedup_vs_reference`` (reference-layer twin's latency over this model's); with
    ``path.compile``: ``compile_seconds`` (wall time of the model's first call, in the warm-up;
    shorter when inductor's on-disk caches already hold its kernels) and, for a twin,
    ``reference_compile_seconds``.
    ``timer="cpu"`` measures process CPU time instead of wall time: on a shared, loaded
    machine with one thread it ignores time spent descheduled (with more threads it
    also counts OpenMP spin-waiting, so use it single-threaded).
    ``breakdown`` (needs ``compare``, not ``path.compile``) adds the keys of :mod:`.breakdown`
    from separate hooked passes (wall time; CUDA events on a GPU), run after the timed ones.
    Every result also names its ``runtime`` and ``execution`` (:meth:`~.execution.ExecutionPath.describe`,
    or the ONNX Runtime session's). On
    CUDA, cuDNN autotunes each convolution during the warm-up (so keep ``warmup >= 1``).
    """
    x = make_input(batch, frames, size, path)
    steps = {}
    for e in entries:
        steps[e.name] = make_step(e.model, x, path)
        if e.reference is not None:
            steps[e.name + "[reference]"] = make_step(e.reference, x, path)
    on_cuda = torch.device(path.device).type == "cuda"
    sync = sync_for(path.device)
    execution = path.describe()
    with cudnn_autotune(on_cuda):
        first = first_call_seconds(steps, sync) if warmup else {}
        times = interleaved_times(steps, runs, max(warmup - 1, 0), sync, TIMERS[timer])
        base = entries[0] if compare else None
        results = [{"execution": execution, **_summarise(e, times, batch, base, first if path.compile else None),
                    "timer": timer} for e in entries]
        if breakdown:
            add_breakdown(results, entries, x, path=path, runs=runs, sync=sync)
    return results


def _summarise(e: Entry, times: Dict[str, List[float]], batch: int, base: Optional[Entry],
               compile_seconds: Optional[Dict[str, float]]) -> Dict:
    median = median_ms(times[e.name])
    out = dict(e.result, latency_ms=median, latency_min_ms=best_ms(times[e.name]), clips_per_s=batch / (median / 1e3))
    if compile_seconds is not None:
        out["compile_seconds"] = compile_seconds[e.name]
        if e.reference is not None:
            out["reference_compile_seconds"] = compile_seconds[e.name + "[reference]"]
    if base is not None:
        base_median = median_ms(times[base.name])
        out["efficiency"] = (base_median / median) / (base.result["gflops"] / e.result["gflops"])
        if e.reference is not None:
            out["speedup_vs_reference"] = median_ms(times[e.name + "[reference]"]) / median
    return out


MAIN_COLUMNS = [("name", "{}"), ("runtime", "{}"), ("params", "{:,}"), ("gflops", "{:.2f}"), ("gflops_conv_linear", "{:.2f}"),
                ("latency_ms", "{:.1f}"), ("latency_min_ms", "{:.1f}"), ("clips_per_s", "{:.2f}"),
                ("efficiency", "{:.3f}"), ("speedup_vs_reference", "{:.3f}"), ("compile_seconds", "{:.1f}")]
# Breakdown keys (see .breakdown), printed one key per row by format_breakdown.
BREAKDOWN_COLUMNS = [("hooked_total_ms", "{:.1f}"), ("dense_conv_ms", "{:.1f}"), ("dense_conv_gflops", "{:.3f}"),
                     ("dense_gflops_per_s", "{:.1f}"), ("cakes_layers_ms", "{:.1f}"),
                     ("reference_hooked_total_ms", "{:.1f}"), ("reference_cakes_layers_ms", "{:.1f}"),
                     ("cakes_layers_gflops", "{:.3f}"), ("cakes_layers_gflops_per_s", "{:.1f}"),
                     ("cakes_layers_share", "{:.3f}"), ("cakes_layers_speedup_vs_reference", "{:.3f}"),
                     ("speedup_ceiling", "{:.3f}"),
                     ("speedup_at_dense_rate", "{:.3f}"), ("efficiency_at_dense_rate", "{:.3f}")]


def format_table(results: Sequence[Dict], columns: Sequence[Tuple[str, str]] = tuple(MAIN_COLUMNS)) -> str:
    """A fixed-width text table of :func:`run_benchmark` results: one row per model, one column
    per ``(key, format)`` of ``columns`` that some result has ("-" where one lacks it)."""
    cols = [(k, f) for k, f in columns if any(k in r for r in results)]
    rows = [[k for k, _ in cols]] + [[f.format(r[k]) if k in r else "-" for k, f in cols] for r in results]
    return aligned(rows)


def format_breakdown(results: Sequence[Dict]) -> str:
    """The :data:`BREAKDOWN_COLUMNS` of ``results`` transposed: one row per key, one column per model."""
    keys = [(k, f) for k, f in BREAKDOWN_COLUMNS if any(k in r for r in results)]
    rows = [["name"] + [r["name"] for r in results]]
    rows += [[k] + [f.format(r[k]) if k in r else "-" for r in results] for k, f in keys]
    return aligned(rows)


def format_layers(results: Sequence[Dict]) -> str:
    """The per-layer rows of a breakdown (``dense_convs``, ``cakes_layers``): one line per layer."""
    rows = [["model", "layer", "ms", "gflops", "gflops_per_s"]]
    for r in results:
        for layer in r.get("dense_convs", []) + r.get("cakes_layers", []):
            rows.append([r["name"], layer["name"], f"{layer['ms']:.2f}", f"{layer['gflops']:.3f}",
                         f"{layer['gflops_per_s']:.1f}"])
    return aligned(rows)


def profile_table(model: nn.Module, x: torch.Tensor, path: ExecutionPath = ExecutionPath(), rows: int = 15) -> str:
    """torch.profiler table of one inference forward of ``x`` ``[B, 3, T, H, W]`` (under
    ``path``'s autocast), after one untimed forward: the ops that take the time."""
    # Lazy: the profiler is heavy to import and only profiled runs need it.
    from torch.profiler import ProfilerActivity, profile

    on_cuda = torch.device(path.device).type == "cuda"
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_cuda else [])
    with torch.inference_mode(), path.autocast():
        model(x)
        with profile(activities=activities) as prof:
            model(x)
    # on a GPU, the kernels' time; the CPU side there is only launching them
    return prof.key_averages().table(sort_by="self_device_time_total" if on_cuda else "self_cpu_time_total",
                                     row_limit=rows)
