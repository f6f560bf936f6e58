#!/usr/bin/env python3
"""Params, fvcore GFLOPs (multiply-add = 1 FLOP) and latency of models; fair comparisons.

    tools/benchmark_net.py CFG [CFG ...] --frames 8 --size 224 [--batch 1] [--runs 10] [--threads 2]
    tools/benchmark_net.py BASE CFG [CFG ...] --compare [--deploy [--fuse]] --frames 8 --size 224 --threads 2
    tools/benchmark_net.py BASE CAKES_CFG --compare --breakdown [--deploy [--fuse]] --frames 8 --size 224
    tools/benchmark_net.py BASE CFG [CFG ...] --compare --compile [--deploy] --frames 8 --size 224
    tools/benchmark_net.py BASE CFG [CFG ...] --compare --device cuda --batch 8 --amp bf16 --frames 8 --size 224

CFG is a YAML config, optionally with overrides of its own (``r3d_18.yaml@MODEL.TEMPORAL_OP=cakes``),
or ``torchvision:NAME`` (e.g. ``torchvision:r2plus1d_18``). With
``--compare`` the models run interleaved in one process and each result gains ``efficiency``
= (latency_BASE / latency) / (gflops_BASE / gflops) and, for CAKES models,
``speedup_vs_reference`` (reference CAKES layer's latency over the efficient layer's).
Every model of a run (base, CAKES models and their reference twins) runs the same execution
path: device, memory format, --deploy / --fuse, --compile, --train-step, --amp, threads.
``--amp bf16|fp16`` runs every call under torch.autocast in that dtype (not with --fuse).

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
The logic lives in cakes_video/utils/benchmark.py and cakes_video/utils/time_breakdown.py.
"""
import argparse
import sys

import torch

from cakes_video.engine.cli import run_tool
from cakes_video.utils import benchmark
from cakes_video.utils.io import write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_model_input_arguments(p, runs=10, warmup=2, timed="model",
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
    p.add_argument("--profile", action="store_true", help="print a torch.profiler op table per model")
    p.add_argument("--json", help="write the results (a list, one object per config) to this file")
    args = p.parse_args(argv)
    benchmark.check_model_input_arguments(p, args)
    try:
        args.path = benchmark.ExecutionPath(
            device=args.device, channels_last=args.memory_format == "channels_last", deploy=args.deploy,
            fuse=args.fuse, compile=args.compile, train=args.train_step, amp=args.amp)
        benchmark.check_run(args.path, args.warmup, args.compare, args.breakdown, args.timer)
    except ValueError as err:
        p.error(str(err))
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    entries = benchmark.build_entries(args.configs, args.frames, args.size, path=args.path,
                                      with_reference=args.compare, overrides=args.opts)
    results = benchmark.measure(entries, args.frames, args.size, path=args.path, batch=args.batch, runs=args.runs,
                                warmup=args.warmup, compare=args.compare, timer=args.timer, breakdown=args.breakdown)
    if args.profile:  # the timed models themselves, after their timed runs
        x = benchmark.make_input(args.batch, args.frames, args.size, args.path)
        for e in entries:
            print(f"== {e.name}\n{benchmark.profile_table(e.model, x, args.path)}")
    print(f"{args.path.describe()}; input {args.batch}x3x{args.frames}x{args.size}x{args.size}, "
          f"{torch.get_num_threads()} threads, GFLOPs per view (multiply-add = 1 FLOP), latency = median of "
          f"{args.runs} ({args.timer} time)")
    print(benchmark.format_table(results))
    if args.breakdown:
        clock = "CUDA-event time" if args.path.device.startswith("cuda") else "wall time"
        print(f"\nwhere the time goes: {args.runs} hooked passes per model ({clock}, medians, ms per forward)")
        print(benchmark.format_breakdown(results))
        print("\nper layer (the base's dense convs, each CAKES model's CAKES layers)")
        print(benchmark.format_layers(results))
    if args.json:
        write_json(args.json, results)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a bad config or spec: one line naming it, exit status 1
