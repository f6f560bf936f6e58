#!/usr/bin/env python3
"""FLOP rate of every convolution a model's CAKES layers and dense convs run, per CPU call path.

    tools/benchmark_conv.py CFG [CFG ...] --frames 16 --size 112 [--batch 1] [--threads 2] [--runs 20]

CFG is as for tools/benchmark_net.py (YAML with optional @KEY=VALUE overrides, or torchvision:NAME).
Each distinct convolution (CAKES layers: the efficient layer's planned convs, or with
--cakes-impl reference one per sub-kernel) is timed alone through F.conv3d, a direct oneDNN call
(what --fuse runs) and, where one exists, a 2D form on a view of the same memory (1xkxk over
the frames, kx1x1 over (T, H*W)); rates count useful
FLOPs only. Definitions: cakes_video/utils/conv_rates.py.
"""
import argparse
import sys

import torch

from cakes_video.engine.cli import run_tool
from cakes_video.utils import benchmark, conv_rates
from cakes_video.utils.io import write_json


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    benchmark.add_model_input_arguments(p, runs=20, warmup=3, timed="convolution and path")
    p.add_argument("--cakes-impl", choices=("efficient", "reference"), default="efficient",
                   help="CAKES layers to read: the efficient layer's planned convs or the reference one per sub-kernel")
    p.add_argument("--json", help="write {config name: rows} to this file")
    args = p.parse_args(argv)
    benchmark.check_model_input_arguments(p, args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    x = benchmark.make_input(args.batch, args.frames, args.size)
    report = {}
    for spec in args.configs:
        model = benchmark.build_from_spec(spec, args.opts, cakes_impl=args.cakes_impl)
        rows = conv_rates.time_convs(conv_rates.collect_convs(model, x), runs=args.runs, warmup=args.warmup)
        report[benchmark.spec_name(spec)] = rows
        print(f"== {benchmark.spec_name(spec)}: input {list(x.shape)}, {torch.get_num_threads()} threads, "
              f"median of {args.runs} runs, GFLOP/s of useful FLOPs")
        print(conv_rates.format_rows(rows))
    if args.json:
        write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a bad config or spec: one line naming it, exit status 1
