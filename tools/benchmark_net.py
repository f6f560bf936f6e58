#!/usr/bin/env python3
"""Params, fvcore GFLOPs (multiply-add = 1 FLOP) and latency of models; fair comparisons.

    tools/benchmark_net.py CFG [CFG ...] --frames 8 --size 224 [--batch 1] [--runs 10] [--threads 2]
    tools/benchmark_net.py BASE CFG [CFG ...] --compare [--deploy [--fuse]] --frames 8 --size 224 --threads 2

CFG is a YAML config, optionally with overrides of its own (``r3d_18.yaml@MODEL.TEMPORAL_OP=cakes``),
or ``torchvision:NAME`` (e.g. ``torchvision:r2plus1d_18``). With
``--compare`` the models run interleaved in one process and each result gains ``efficiency``
= (latency_BASE / latency) / (gflops_BASE / gflops) and, for CAKES models,
``speedup_vs_reference`` (reference CAKES layer's latency over the efficient layer's).
The logic lives in cakes_video/utils/benchmark.py.
"""
import argparse
import json
import sys

import torch

from cakes_video.utils import benchmark


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("configs", nargs="+", help="YAML configs or torchvision:NAME; with --compare the first is the base")
    p.add_argument("--frames", type=int, required=True, help="frames per clip (T)")
    p.add_argument("--size", type=int, required=True, help="crop size (H = W)")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--runs", type=int, default=10, help="timed runs per model (median reported)")
    p.add_argument("--warmup", type=int, default=2, help="untimed runs per model first")
    p.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0: torch's default)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--compare", action="store_true", help="efficiency against the first config")
    p.add_argument("--deploy", action="store_true", help="fold every BatchNorm into its conv (inference form)")
    p.add_argument("--fuse", action="store_true",
                   help="with --deploy: fuse each conv with its ReLU / residual add in one oneDNN call")
    p.add_argument("--train-step", action="store_true", help="time forward + backward instead of inference")
    p.add_argument("--memory-format", choices=("channels_last", "contiguous"), default="channels_last")
    p.add_argument("--opts", nargs="*", default=[], help="KEY VALUE overrides for every YAML config")
    p.add_argument("--timer", choices=("wall", "cpu"), default="wall",
                   help="cpu: process CPU time, robust on a loaded machine with --threads 1")
    p.add_argument("--profile", action="store_true", help="print a torch.profiler op table per model")
    p.add_argument("--json", help="write the results (a list, one object per config) to this file")
    args = p.parse_args(argv)
    for key in ("frames", "size", "batch", "runs"):
        if getattr(args, key) < 1:
            p.error(f"--{key} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    channels_last = args.memory_format == "channels_last"
    if args.profile:
        entries = benchmark.build_entries(args.configs, args.frames, args.size, args.device, channels_last,
                                          args.deploy, overrides=args.opts, fuse=args.fuse)
        x = benchmark.make_input(args.batch, args.frames, args.size, args.device, channels_last)
        for e in entries:
            print(f"== {e.name}\n{benchmark.profile_table(e.model, x)}")
    results = benchmark.run_benchmark(
        args.configs, args.frames, args.size, args.batch, args.runs, args.warmup, args.device, channels_last,
        args.deploy, args.train_step, args.compare, args.opts, args.timer, args.fuse)
    mode = "train step" if args.train_step else ("inference, deployed" if args.deploy else "inference")
    mode += ", fused" if args.fuse else ""
    print(f"{mode}; input {args.batch}x3x{args.frames}x{args.size}x{args.size}, {torch.get_num_threads()} threads, "
          f"{args.memory_format}, GFLOPs per view (multiply-add = 1 FLOP), latency = median of {args.runs} "
          f"({args.timer} time)")
    print(benchmark.format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
