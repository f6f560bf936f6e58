"""The command lines of the benchmark tools: their parsers, the checks that name their flags, and
each tool's ``main`` (``tools/benchmark_net.py``, ``benchmark_conv.py``, ``benchmark_data.py``,
``compare_ops.py`` only run one of them through ``engine.cli.run_tool``).

The long descriptions below are the tools' user documentation (``--help`` prints them). The
library modules name settings as their arguments do (:class:`~.execution.SettingError`); the
parsers here re-render those messages with the flags (:data:`NET_FLAGS`).
"""
import argparse
import json
from typing import Dict, List, Optional

from ..utils.io import write_json
from .comparison import DEFAULT_CONFIG, DEFAULT_OPS, compare_ops
from .conv_rates import collect_convs, format_rows, time_convs
from .data import run as run_data
from .data import run_on_synthetic
from .execution import ExecutionPath, SettingError, make_input
from .models import (
    PYTORCH,
    RUNTIMES,
    build_entries,
    build_from_spec,
    check_run,
    check_unique_specs,
    format_breakdown,
    format_layers,
    format_table,
    measure,
    profile_table,
    spec_name,
)
from .timing import intra_op_threads

__all__ = ["net_main", "conv_main", "data_main", "compare_ops_main", "parse_net_args",
           "parse_conv_args", "parse_data_args", "parse_compare_ops_args"]

NET_DOC = """Params, fvcore GFLOPs (multiply-add = 1 FLOP) and latency of models; fair comparisons.

    tools/benchmark_net.py CFG [CFG ...] --frames 8 --size 224 [--batch 1] [--runs 10] [--threads 2]
    tools/benchmark_net.py BASE CFG [CFG ...] --compare [--deploy [--fuse]] --frames 8 --size 224 --threads 2
    tools/benchmark_net.py BASE CAKES_CFG --compare --breakdown [--deploy [--fuse]] --frames 8 --size 224
    tools/benchmark_net.py BASE CFG [CFG ...] --compare --compile [--deploy] --frames 8 --size 224
    tools/benchmark_net.py BASE CFG [CFG ...] --compare --device cuda --batch 8 --amp bf16 --frames 8 --size 224
    tools/benchmark_net.py BASE CFG [CFG ...] --compare --deploy --runtime onnxruntime --frames 8 --size 224 --threads 2

CFG is a YAML config, optionally with overrides of its own (``r3d_18.yaml@MODEL.TEMPORAL_OP=cakes``),
``torchvision:NAME`` (e.g. ``torchvision:r2plus1d_18``) or a zoo model ``zoo:NAME`` (its config). With
``--compare`` the models run interleaved in one process and each result gains ``efficiency``
= (latency_BASE / latency) / (gflops_BASE / gflops) and, for CAKES models,
``speedup_vs_reference`` (reference CAKES layer's latency over the efficient layer's).
Every model of a run (base, CAKES models and their reference twins) runs the same execution
path: device, memory format, --deploy / --fuse, --compile, --train-step, --amp, threads.
``--amp bf16|fp16`` runs every call under torch.autocast in that dtype (not with --fuse).

``--runtime onnxruntime`` also exports every model (its inference form: BN folded; with --compare
the reference-layer twin of a CAKES model too) to ONNX and times it in ONNX Runtime (CPU, float32,
as many threads as torch) in the same interleaved runs: one row per model and runtime
(``NAME [onnxruntime]``, column ``runtime``), its efficiency against the PyTorch base. CPU
inference only: not with --device cuda, --train-step, --amp or --breakdown.

``--compile`` applies torch.compile (inductor) to every model alike, after --deploy and the
memory-format change; for inference with inductor's weight freezing (constants folded, BN
folded, conv + ReLU / add fused, oneDNN weights prepacked), for --train-step without. Not with
--fuse (its fused convs break the compiled graph at every conv). Models compile in
their first warm-up call (so --warmup >= 1), whose wall time each result reports as
compile_seconds (reference_compile_seconds for a twin). Not with --breakdown (forward hooks
do not fire in a compiled graph); with --profile the op table is the compiled graph's.

``--breakdown`` (needs ``--compare``) then runs ``--runs`` separate hooked passes per model
(same input and call; wall time, CUDA-event time on a GPU; medians) that measure where the
time goes, printed in a second table (one row per key) and added to the JSON (ms per forward
of the batch):
  base:  dense_conv_ms, dense_conv_gflops (per view), dense_gflops_per_s = R, the rate of
         its convs with every kernel dim > 1 (3x3x3, 3x7x7 stem);
  CAKES: cakes_layers_ms (efficient), reference_cakes_layers_ms = L and
         reference_hooked_total_ms = T (reference twin), cakes_layers_gflops = F (per view),
         cakes_layers_gflops_per_s, cakes_layers_share = L/T, cakes_layers_speedup_vs_reference
         = L/cakes_layers_ms (speedup_vs_reference of the CAKES layers alone),
         speedup_ceiling = 1/(1 - L/T) (speedup_vs_reference if the efficient layers took 0 s),
         speedup_at_dense_rate = T/(T - L + B*F/R) and efficiency_at_dense_rate (efficiency
         of the hooked totals, the efficient layers' time replaced by B*F/R): CAKES layers at rate R;
  every model: hooked_total_ms. With --train-step the hooked times are the forward's.
The logic lives in cakes_video/benchmarks/models.py and cakes_video/benchmarks/breakdown.py.
"""

CONV_DOC = """FLOP rate of every convolution a model's CAKES layers and dense convs run, per CPU call path.

    tools/benchmark_conv.py CFG [CFG ...] --frames 16 --size 112 [--batch 1] [--threads 2] [--runs 20]

CFG is as for tools/benchmark_net.py (YAML with optional @KEY=VALUE overrides, torchvision:NAME or zoo:NAME).
Each distinct convolution (CAKES layers: the efficient layer's planned convs, or with
--cakes-impl reference one per sub-kernel) is timed alone through F.conv3d, a direct oneDNN call
(what --fuse runs) and, where one exists, a 2D form on a view of the same memory (1xkxk over
the frames, kx1x1 over (T, H*W)); rates count useful
FLOPs only. Definitions: cakes_video/benchmarks/conv_rates.py.
"""

DATA_DOC = "Benchmarks decoding, the training loader and test views."

COMPARE_OPS_DOC = ("Train and test the same small ResNet with different temporal convolutions on the synthetic "
                   "benchmark; writes OUTPUT_DIR/comparison.{json,md}.")

# The flag of each setting that SettingError messages name (ExecutionPath fields, run_benchmark arguments).
NET_FLAGS = {"device": "--device", "deploy": "--deploy", "fuse": "--fuse", "compile": "--compile",
             "train": "--train-step", "amp": "--amp", "timer": "--timer", "warmup": "--warmup",
             "compare": "--compare", "breakdown": "--breakdown", "runtimes": "--runtime"}


def add_model_input_arguments(p: argparse.ArgumentParser, runs: int, warmup: int, timed: str,
                              configs_help: str = "") -> None:
    """The arguments every model benchmark tool takes: configs, input size, runs and warm-up runs
    (of each ``timed`` thing), threads, overrides."""
    p.add_argument("configs", nargs="+",
                   help="YAML configs (optionally @KEY=VALUE), torchvision:NAME or zoo:NAME" + configs_help)
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


# --- tools/benchmark_net.py ----------------------------------------------------------------------

def net_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=NET_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_input_arguments(p, runs=10, warmup=2, timed="model",
                              configs_help="; with --compare the first is the base")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true", help="efficiency against the first config")
    p.add_argument("--deploy", action="store_true", help="fold every BatchNorm into its conv (inference form)")
    p.add_argument("--fuse", action="store_true",
                   help="with --deploy: fuse each conv with its ReLU / residual add in one oneDNN call")
    p.add_argument("--train-step", action="store_true", help="time forward + backward instead of inference")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile (inductor) every model, weights frozen for inference; compiles in the "
                        "first warm-up run (reported as compile_seconds)")
    p.add_argument("--memory-format", choices=("channels_last", "contiguous"), default="channels_last")
    p.add_argument("--timer", choices=("wall", "cpu"), default="wall",
                   help="cpu: process CPU time, robust on a loaded machine with --threads 1")
    p.add_argument("--breakdown", action="store_true",
                   help="with --compare: time and FLOPs inside CAKES layers / dense convs, and the ceilings")
    p.add_argument("--amp", choices=("bf16", "fp16"),
                   help="run every model under torch.autocast in this dtype (default: float32)")
    p.add_argument("--runtime", dest="runtimes", action="append", default=[], metavar="RUNTIME",
                   help=f"also time each model exported to this runtime ({', '.join(RUNTIMES)}), in the same "
                        "interleaved runs: one row per model and runtime (CPU inference only)")
    p.add_argument("--profile", action="store_true", help="print a torch.profiler op table per PyTorch model")
    p.add_argument("--json", help="write the results (a list, one object per config) to this file")
    return p


def parse_net_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """benchmark_net's arguments, checked; ``args.path`` is the run's ExecutionPath. Exits
    through ``p.error`` (status 2) naming the flags of settings that cannot go together."""
    p = net_parser()
    args = p.parse_args(argv)
    check_model_input_arguments(p, args)
    try:
        args.path = ExecutionPath(
            device=args.device, channels_last=args.memory_format == "channels_last", deploy=args.deploy,
            fuse=args.fuse, compile=args.compile, train=args.train_step, amp=args.amp)
        check_run(args.path, args.warmup, args.compare, args.breakdown, args.timer, args.runtimes)
    except SettingError as err:
        p.error(err.render(NET_FLAGS))
    return args


def net_main(argv: Optional[List[str]] = None) -> int:
    """tools/benchmark_net.py: prints the run's tables, writes ``--json``; returns 0."""
    args = parse_net_args(argv)
    with intra_op_threads(args.threads) as threads:
        entries = build_entries(args.configs, args.frames, args.size, path=args.path, with_reference=args.compare,
                                overrides=args.opts, runtimes=args.runtimes)
        results = measure(entries, args.frames, args.size, path=args.path, batch=args.batch, runs=args.runs,
                          warmup=args.warmup, compare=args.compare, timer=args.timer, breakdown=args.breakdown)
        if args.profile:  # the timed models themselves, after their timed runs
            x = make_input(args.batch, args.frames, args.size, args.path)
            for e in entries:
                if e.result["runtime"] == PYTORCH:
                    print(f"== {e.name}\n{profile_table(e.model, x, args.path)}")
    print(f"{args.path.describe()}; input {args.batch}x3x{args.frames}x{args.size}x{args.size}, "
          f"{threads} threads, GFLOPs per view (multiply-add = 1 FLOP), latency = median of "
          f"{args.runs} ({args.timer} time)")
    print(format_table(results))
    if args.breakdown:
        clock = "CUDA-event time" if args.path.device.startswith("cuda") else "wall time"
        print(f"\nwhere the time goes: {args.runs} hooked passes per model ({clock}, medians, ms per forward)")
        print(format_breakdown(results))
        print("\nper layer (the base's dense convs, each CAKES model's CAKES layers)")
        print(format_layers(results))
    if args.json:
        write_json(args.json, results)
    return 0


# --- tools/benchmark_conv.py ---------------------------------------------------------------------

def conv_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=CONV_DOC, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_input_arguments(p, runs=20, warmup=3, timed="convolution and path")
    p.add_argument("--cakes-impl", choices=("efficient", "reference"), default="efficient",
                   help="CAKES layers to read: the efficient layer's planned convs or the reference one per sub-kernel")
    p.add_argument("--json", help="write {config name: rows} to this file")
    return p


def parse_conv_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """benchmark_conv's arguments, checked (exits through ``p.error``)."""
    p = conv_parser()
    args = p.parse_args(argv)
    check_model_input_arguments(p, args)
    return args


def conv_main(argv: Optional[List[str]] = None) -> int:
    """tools/benchmark_conv.py: prints one table per config, writes ``--json``; returns 0."""
    args = parse_conv_args(argv)
    x = make_input(args.batch, args.frames, args.size)
    report = {}
    with intra_op_threads(args.threads) as threads:
        for spec in args.configs:
            model = build_from_spec(spec, args.opts, cakes_impl=args.cakes_impl)
            rows = time_convs(collect_convs(model, x), runs=args.runs, warmup=args.warmup)
            report[spec_name(spec)] = rows
            print(f"== {spec_name(spec)}: input {list(x.shape)}, {threads} threads, "
                  f"median of {args.runs} runs, GFLOP/s of useful FLOPs")
            print(format_rows(rows))
    if args.json:
        write_json(args.json, report)
    return 0


# --- tools/benchmark_data.py ---------------------------------------------------------------------

def data_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=DATA_DOC)
    parser.add_argument("--data", help="video list 'path label' (default: a fresh synthetic set)")
    parser.add_argument("--root", default="", help="prefix of the list's paths")
    parser.add_argument("--json", help="write the report here (it is always printed)")
    parser.add_argument("--backends", nargs="+", default=["pyav", "decord"])
    parser.add_argument("--workers", type=int, default=2, help="DataLoader workers for the train epoch")
    parser.add_argument("--views", default="10x3", help="test views, CLIPSxCROPS")
    parser.add_argument("--test-videos", type=int, default=8, help="videos timed for test views")
    parser.add_argument("--videos-per-class", type=int, default=4, help="synthetic set size")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--repeats", type=int, default=2, help="decode and test-view timings: best of this many")
    return parser


def parse_data_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    return data_parser().parse_args(argv)


def data_main(argv: Optional[List[str]] = None) -> Dict:
    """tools/benchmark_data.py: prints the report (keys: :mod:`.data`), writes ``--json``; returns it."""
    args = parse_data_args(argv)
    clips, crops = (int(n) for n in args.views.lower().split("x"))
    with intra_op_threads(args.threads):
        if args.data:
            report = run_data(args.data, args.root, args.backends, args.workers, clips, crops, args.test_videos,
                              small=False, repeats=args.repeats)
        else:
            report = run_on_synthetic(args.backends, args.workers, clips, crops, args.test_videos,
                                      args.videos_per_class, repeats=args.repeats)
    print(json.dumps(report, indent=1))
    if args.json:
        write_json(args.json, report, indent=1)
    return report


# --- tools/compare_ops.py ------------------------------------------------------------------------

def compare_ops_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=COMPARE_OPS_DOC)
    parser.add_argument("--output-dir", default="output/compare")
    parser.add_argument("--cfg", default=DEFAULT_CONFIG, help="shared config (data paths are filled in)")
    parser.add_argument("--ops", nargs="+", default=list(DEFAULT_OPS), help="MODEL.TEMPORAL_OP values")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the latency measurement")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    return parser


def parse_compare_ops_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    return compare_ops_parser().parse_args(argv)


def compare_ops_main(argv: Optional[List[str]] = None) -> None:
    """tools/compare_ops.py: trains, tests and times one model per op (:func:`~.comparison.compare_ops`)."""
    args = parse_compare_ops_args(argv)
    compare_ops(args.output_dir, args.ops, args.cfg, args.opts, threads=args.threads)
