#!/usr/bin/env python3
"""Params, fvcore GFLOPs (multiply-add = 1 FLOP) and latency of models; fair comparisons.

    tools/benchmark_net.py CFG [CFG ...] --frames 8 --size 224 [--compare [--deploy [--fuse]]] ...

Every flag and result key: ``tools/benchmark_net.py --help`` (its text: ``NET_DOC`` in
cakes_video/benchmarks/cli.py; the logic: cakes_video/benchmarks/models.py and breakdown.py).
"""
import sys

from cakes_video.benchmarks.cli import net_main
from cakes_video.engine.cli import run_tool

if __name__ == "__main__":
    sys.exit(run_tool(net_main))  # a bad config or spec: one line naming it, exit status 1
