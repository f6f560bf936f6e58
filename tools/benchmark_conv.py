#!/usr/bin/env python3
"""FLOP rate of every convolution a model's CAKES layers and dense convs run, per CPU call path.

    tools/benchmark_conv.py CFG [CFG ...] --frames 16 --size 112 [--batch 1] [--threads 2] [--runs 20]

Every flag: ``tools/benchmark_conv.py --help`` (its text: ``CONV_DOC`` in
cakes_video/benchmarks/cli.py; definitions: cakes_video/benchmarks/conv_rates.py).
"""
import sys

from cakes_video.benchmarks.cli import conv_main
from cakes_video.engine.cli import run_tool

if __name__ == "__main__":
    sys.exit(run_tool(conv_main))  # a bad config or spec: one line naming it, exit status 1
