"""Latency, throughput and cost of models, and fair side-by-side comparisons.

A model is named by a spec: a YAML config path (built with :func:`build_model`; CAKES
layers use ``cakes_impl``), optionally followed by overrides of its own as ``@KEY=VALUE``
(``r3d_18.yaml@MODEL.TEMPORAL_OP=cakes@MODEL.CAKES.CONV_CONFIG=uniform``), or
``torchvision:NAME`` for ``torchvision.models.video.NAME``.
Every model of a run gets the same :class:`ExecutionPath`: eval mode under ``torch.inference_mode``
(or a forward+backward train step), the same device and memory format, the same ``deploy``
folding (and ``fuse`` post-ops), the same ``compile`` (``torch.compile``, inductor, with weight
freezing for inference; compiled during the first warm-up run, whose wall time is reported as
``compile_seconds``), the same threads and input. Latencies are measured interleaved (one run
of each model in turn, rotating who goes first) so load drift on a shared machine hits all
alike; the reported latency is the median over runs. Costs are fvcore FLOPs (multiply-add =
1 FLOP) of one view at batch 1 (see :mod:`.complexity`).
With ``breakdown`` (and ``compare``), separate hooked passes then measure the time and FLOPs
inside the CAKES layers and the base's dense convolutions, and the speedup / efficiency they
cap (keys defined in :mod:`.time_breakdown`; :data:`BREAKDOWN_COLUMNS` is their table).
"""
import argparse
import contextlib
import os
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..config import ConfigError
from .complexity import count_gflops_and_modules, count_params

TORCHVISION_PREFIX = "torchvision:"
AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
TIMERS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass
class Entry:
    """One model in a run: ``name``, the module, and the reference-layer twin of a CAKES model.

    ``module_gflops``: conv + linear GFLOPs of one view inside each
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
            raise ConfigError(f"{spec}: per-model overrides are written @KEY=VALUE, got {pair!r}")
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
            raise ConfigError(f"{spec}: torchvision.models.video has no model {name!r}")
        return getattr(video, name)(weights=None)
    from ..config import load_config
    from ..models import build_model

    path, own = split_spec(spec)
    return build_model(load_config(path, list(overrides) + own + ["MODEL.CAKES.IMPL", cakes_impl]))


class CompiledModel(nn.Module):
    """``torch.compile(model)`` (inductor), called with the config it needs: ``[N, 3, T, H, W]`` -> logits.

    ``freeze``: inductor's weight freezing (constants folded, BN folded into convs, oneDNN weights
    prepacked) whenever the call runs without grad (``torch.inference_mode`` / ``no_grad``).
    Dynamo reads the *global* ``torch._inductor.config.freezing`` while tracing (whether to lift
    weights as graph inputs), so ``torch.compile(options={"freezing": True})`` alone freezes
    nothing; the flag is therefore patched around every call (~30 µs a call on this CPU). A
    compile that would exceed Dynamo's recompile limit (8 graphs per code object and process:
    frozen weights make one graph per model of a class) raises instead of silently running eager.
    """

    def __init__(self, model: nn.Module, freeze: bool):
        super().__init__()
        self.compiled = torch.compile(model)
        self.freeze = freeze

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import torch._dynamo.config as dynamo_config
        import torch._inductor.config as inductor_config

        with inductor_config.patch(freezing=self.freeze), dynamo_config.patch(fail_on_recompile_limit_hit=True):
            return self.compiled(x)


@dataclass(frozen=True)
class ExecutionPath:
    """How every model of a run executes; one object, so that all models get the same path.

    ``device``; ``channels_last``: channels_last_3d weights and input (else contiguous);
    ``deploy``: BatchNorm folded into the convs (:func:`~cakes_video.models.deploy.deploy`);
    ``fuse``: with ``deploy``, conv + ReLU / residual add in one oneDNN call; ``compile``:
    :class:`CompiledModel` applied last (weights frozen for inference; not with ``fuse``, whose
    convs break the graph, while inductor's freezing fuses the same post-ops itself); ``train``:
    time a forward + backward step instead of an inference forward; ``amp``: "bf16" or "fp16"
    runs every call under ``torch.autocast`` in that dtype (weights stay float32, as in
    mixed-precision training), None runs float32.
    """

    device: str = "cpu"
    channels_last: bool = True
    deploy: bool = False
    fuse: bool = False
    compile: bool = False
    train: bool = False
    amp: Optional[str] = None

    def __post_init__(self):
        if self.deploy and self.train:
            raise ValueError("deploy (--deploy) folds BatchNorm for inference; it cannot time a train step "
                             "(--train-step)")
        if self.fuse and not self.deploy:
            raise ValueError("fuse (--fuse) applies to a deployed model; add deploy (--deploy)")
        if self.fuse and self.compile:
            # FusedConv3d caches packed weights in Python: Dynamo breaks the graph at every conv.
            raise ValueError("fuse (--fuse) cannot go with compile (--compile): each fused conv breaks the "
                             "compiled graph; compile with weight freezing already fuses conv + ReLU / add "
                             "(oneDNN post-ops), so use --deploy --compile")
        try:
            device = torch.device(self.device)
        except RuntimeError as err:
            raise ValueError(f"device (--device) {self.device!r} is not a torch device: {err}") from None
        kind = device.type
        if kind not in ("cpu", "cuda"):
            raise ValueError(f"device (--device) {self.device!r}: runs are timed on the CPU or on CUDA only")
        if kind == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
            raise ValueError(f"device (--device) {self.device!r}: this torch sees {torch.cuda.device_count()} "
                             f"CUDA device(s)")
        if self.fuse and kind != "cpu":
            raise ValueError("fuse (--fuse) fuses oneDNN calls, on the CPU only; drop it off the CPU")
        if self.amp is not None and self.amp not in AMP_DTYPES:
            raise ValueError(f"amp (--amp) {self.amp!r}: expected one of {sorted(AMP_DTYPES)}")
        if self.amp is not None and self.fuse:
            raise ValueError("amp (--amp) cannot go with fuse (--fuse): the fused oneDNN convs run float32 only")

    def autocast(self):
        """The context every call runs in: ``torch.autocast`` for ``amp``, else a no-op."""
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=AMP_DTYPES[self.amp])

    def prepare(self, model: nn.Module) -> nn.Module:
        """``model`` as it will run: deployed (+ fused), on the device, in train / eval mode, in
        the memory format, then compiled. May return a new module (deploy copies, compile wraps)."""
        if self.deploy:
            from ..models.deploy import deploy as deploy_model

            model = deploy_model(model, self.fuse)
        model = model.to(self.device).train(self.train)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last_3d)
        return CompiledModel(model, freeze=not self.train) if self.compile else model

    def describe(self) -> str:
        """One line, e.g. ``"inference, deployed, compiled; cpu, channels_last"``; on CUDA it
        also names the GPU and says whether cuDNN may run float32 convolutions in TF32."""
        flags = [name for on, name in ((self.deploy, "deployed"), (self.fuse, "fused"), (self.compile, "compiled"),
                                       (self.amp, f"autocast {self.amp}")) if on]
        memory = "channels_last" if self.channels_last else "contiguous"
        where = f"{self.device}, {memory}"
        if torch.device(self.device).type == "cuda":
            where += f", {torch.cuda.get_device_name(self.device)}, cuDNN TF32 {'on' if _cudnn_tf32() else 'off'}"
        return ", ".join(["train step" if self.train else "inference"] + flags) + f"; {where}"


def _cudnn_tf32() -> bool:
    """Whether cuDNN may run float32 convolutions in TF32 (``allow_tf32`` raises in torch >= 2.9
    once the newer per-op precision settings disagree; the conv one is what counts here)."""
    conv = getattr(getattr(torch.backends.cudnn, "conv", None), "fp32_precision", None)
    return conv == "tf32" if conv is not None else torch.backends.cudnn.allow_tf32


def make_step(model: nn.Module, x: torch.Tensor, path: ExecutionPath) -> Callable[[], None]:
    """One timed call of ``model`` on ``x`` ``[B, 3, T, H, W]``: an inference forward, or with
    ``path.train`` forward + backward of the logits' sum."""
    if not path.train:
        def forward():
            with torch.inference_mode(), path.autocast():
                model(x)
        return forward

    def train_step():
        model.zero_grad(set_to_none=True)
        with path.autocast():
            loss = model(x).float().sum()
        loss.backward()
    return train_step


def first_call_seconds(steps: Dict[str, Callable[[], None]], sync: Callable[[], None]) -> Dict[str, float]:
    """Wall seconds of one call of each step, in order: the first warm-up round (a compiled model compiles in it)."""
    seconds = {}
    for name, step in steps.items():
        sync()
        start = time.perf_counter()
        step()
        sync()
        seconds[name] = time.perf_counter() - start
    return seconds


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


def build_entries(specs: Sequence[str], frames: int, size: int, *, path: ExecutionPath = ExecutionPath(),
                  with_reference: bool = False, overrides: Sequence[str] = ()) -> List[Entry]:
    """Builds, counts and prepares (``path.prepare``) every spec; CAKES models get a reference twin if asked.

    FLOPs (totals and ``Entry.module_gflops``) are counted before deploying, on the reference form.
    With ``path.compile``, Dynamo's caches are reset first (``torch.compiler.reset()``, process-wide):
    graphs left by earlier runs would count against its recompile limit.
    """
    check_unique_specs(specs)
    if path.compile:
        torch.compiler.reset()
    from ..models.cakes import to_reference

    entries = []
    for spec in specs:
        model = build_from_spec(spec, overrides)
        reference = to_reference(model)  # one copy, counted and (if asked) timed as the twin
        entry = Entry(spec_name(spec), model)
        totals, entry.module_gflops = count_gflops_and_modules(reference, (3, frames, size, size))
        entry.result.update(name=entry.name, params=count_params(model), **totals)
        if with_reference and reference is not model:
            entry.reference = path.prepare(reference)
        entry.model = path.prepare(model)
        entries.append(entry)
    return entries


def add_model_input_arguments(p: argparse.ArgumentParser, runs: int, warmup: int, timed: str,
                              configs_help: str = "") -> None:
    """The arguments every model benchmark tool takes: configs, input size, runs and warm-up runs
    (of each ``timed`` thing), threads, overrides."""
    p.add_argument("configs", nargs="+",
                   help="YAML configs (optionally @KEY=VALUE) or torchvision:NAME" + configs_help)
    p.add_argument("--frames", type=int, required=True, help="frames per clip (T)")
    p.add_argument("--size", type=int, required=True, help="crop size (H = W)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=runs, help=f"timed runs per {timed} (median reported)")
    p.add_argument("--warmup", type=int, default=warmup, help=f"untimed runs per {timed} first")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for every YAML config")


def check_model_input_arguments(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Exits through ``p.error`` naming the first of --frames, --size, --batch, --runs below 1,
    --warmup below 0, or a config given twice (results are keyed by name)."""
    for key in ("frames", "size", "batch", "runs"):
        if getattr(args, key) < 1:
            p.error(f"--{key} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    try:
        check_unique_specs(args.configs)
    except ValueError as err:
        p.error(str(err))


def check_unique_specs(specs: Sequence[str]) -> None:
    """Raises ValueError when two specs share a display name (:func:`spec_name`): results are keyed by it."""
    names = [spec_name(s) for s in specs]
    if len(set(names)) < len(names):
        raise ValueError(f"a config is given twice: {names}; results are keyed by name")


def make_input(batch: int, frames: int, size: int, path: ExecutionPath = ExecutionPath()) -> torch.Tensor:
    """Random clips ``[batch, 3, frames, size, size]`` on ``path.device``, in its memory format."""
    x = torch.randn(batch, 3, frames, size, size, device=path.device)
    return x.contiguous(memory_format=torch.channels_last_3d) if path.channels_last else x


def check_run(path: ExecutionPath, warmup: int, compare: bool, breakdown: bool, timer: str) -> None:
    """Raises ValueError for run options that cannot go together, naming the tool's flags
    (:func:`run_benchmark`'s arguments of the same names; ``path`` for ``--compile``)."""
    if timer not in TIMERS:
        raise ValueError(f"unknown timer {timer!r}; expected one of {list(TIMERS)}")
    if timer == "cpu" and torch.device(path.device).type != "cpu":
        raise ValueError("--timer cpu counts this process's CPU time, not the device's; use wall time off the CPU")
    if warmup < 1 and torch.device(path.device).type == "cuda":
        raise ValueError("--device cuda needs --warmup >= 1: cuDNN autotunes every convolution in its first "
                         "call, which must not be timed")
    if breakdown and not compare:
        raise ValueError("--breakdown needs --compare: its rates and ceilings are relative to the base "
                         "(first) model and to each CAKES model's reference twin")
    if breakdown and path.compile:
        raise ValueError("--breakdown cannot time a --compile run: forward hooks do not fire inside a "
                         "compiled graph; drop one of them")
    if path.compile and warmup < 1:
        raise ValueError("--compile needs --warmup >= 1: models compile during their first (warm-up) call, "
                         "which must not be timed")


def run_benchmark(specs: Sequence[str], frames: int, size: int, *, path: ExecutionPath = ExecutionPath(),
                  batch: int = 1, runs: int = 10, warmup: int = 2, compare: bool = False,
                  overrides: Sequence[str] = (), timer: str = "wall", breakdown: bool = False) -> List[Dict]:
    """Builds every spec (:func:`build_entries`) and measures it (:func:`measure`); one result per spec.

    ``overrides`` (KEY VALUE) apply to every YAML spec before its own ``@KEY=VALUE``.
    """
    check_run(path, warmup, compare, breakdown, timer)
    entries = build_entries(specs, frames, size, path=path, with_reference=compare, overrides=overrides)
    return measure(entries, frames, size, path=path, batch=batch, runs=runs, warmup=warmup, compare=compare,
                   timer=timer, breakdown=breakdown)


def measure(entries: Sequence[Entry], frames: int, size: int, *, path: ExecutionPath = ExecutionPath(),
            batch: int = 1, runs: int = 10, warmup: int = 2, compare: bool = False, timer: str = "wall",
            breakdown: bool = False) -> List[Dict]:
    """Times ``entries`` (built by :func:`build_entries` for ``path``, with twins if ``compare``) on
    ``path`` (see module doc); returns one result dict per entry, in order. The caller has checked the
    options (:func:`check_run`).

    Keys: ``name, params, gflops, gflops_conv_linear`` (one view, batch 1), ``latency_ms``
    (median of ``runs``), ``latency_min_ms``, ``clips_per_s`` (batch / median latency); with
    ``compare``: ``efficiency`` against ``entries[0]`` and, for CAKES models,
    ``speedup_vs_reference`` (reference-layer twin's latency over this model's); with
    ``path.compile``: ``compile_seconds`` (wall time of the model's first call, in the warm-up;
    shorter when inductor's on-disk caches already hold its kernels) and, for a twin,
    ``reference_compile_seconds``.
    ``timer="cpu"`` measures process CPU time instead of wall time: on a shared, loaded
    machine with ``--threads 1`` it ignores time spent descheduled (with more threads it
    also counts OpenMP spin-waiting, so use it single-threaded).
    ``breakdown`` (needs ``compare``, not ``path.compile``) adds the keys of :mod:`.time_breakdown`
    from separate hooked passes (wall time; CUDA events on a GPU), run after the timed ones.
    Every result also names its ``execution`` (:meth:`ExecutionPath.describe`). On CUDA, cuDNN
    autotunes each convolution during the warm-up (so keep ``warmup >= 1``).
    """
    x = make_input(batch, frames, size, path)
    steps = {}
    for e in entries:
        steps[e.name] = make_step(e.model, x, path)
        if e.reference is not None:
            steps[e.name + "[reference]"] = make_step(e.reference, x, path)
    on_cuda = torch.device(path.device).type == "cuda"
    sync = (lambda: torch.cuda.synchronize(path.device)) if on_cuda else (lambda: None)
    execution = path.describe()
    with _cudnn_autotune(on_cuda):
        first = first_call_seconds(steps, sync) if warmup else {}
        times = interleaved_times(steps, runs, max(warmup - 1, 0), sync, TIMERS[timer])
        base = entries[0] if compare else None
        results = [dict(_summarise(e, times, batch, base, first if path.compile else None), timer=timer,
                        execution=execution) for e in entries]
        if breakdown:
            from .time_breakdown import add_breakdown  # it imports this module

            add_breakdown(results, entries, x, path=path, runs=runs, sync=sync)
    return results


@contextlib.contextmanager
def _cudnn_autotune(on: bool):
    """With ``on``, cuDNN times each convolution's algorithms at its first call (a warm-up call)
    and keeps the fastest, for the timed and the hooked passes alike; the setting is restored after."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on or previous
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def _summarise(e: Entry, times: Dict[str, List[float]], batch: int, base: Optional[Entry],
               compile_seconds: Optional[Dict[str, float]]) -> Dict:
    median = statistics.median(times[e.name])
    out = dict(e.result, latency_ms=median * 1e3, latency_min_ms=min(times[e.name]) * 1e3,
               clips_per_s=batch / median)
    if compile_seconds is not None:
        out["compile_seconds"] = compile_seconds[e.name]
        if e.reference is not None:
            out["reference_compile_seconds"] = compile_seconds[e.name + "[reference]"]
    if base is not None:
        base_median = statistics.median(times[base.name])
        out["efficiency"] = (base_median / median) / (base.result["gflops"] / e.result["gflops"])
        if e.reference is not None:
            out["speedup_vs_reference"] = statistics.median(times[e.name + "[reference]"]) / median
    return out


MAIN_COLUMNS = [("name", "{}"), ("params", "{:,}"), ("gflops", "{:.2f}"), ("gflops_conv_linear", "{:.2f}"),
                ("latency_ms", "{:.1f}"), ("latency_min_ms", "{:.1f}"), ("clips_per_s", "{:.2f}"),
                ("efficiency", "{:.3f}"), ("speedup_vs_reference", "{:.3f}"), ("compile_seconds", "{:.1f}")]
# Breakdown keys (see .time_breakdown), printed one key per row by format_breakdown.
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


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as text: first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)


def profile_table(model: nn.Module, x: torch.Tensor, path: ExecutionPath = ExecutionPath(), rows: int = 15) -> str:
    """torch.profiler table of one inference forward (under ``path``'s autocast): the ops that take the time."""
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
