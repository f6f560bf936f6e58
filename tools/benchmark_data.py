#!/usr/bin/env python3
"""Benchmarks the data pipeline: tools/benchmark_data.py [--data LIST [--root ROOT]] [--json FILE] ...

Without --data it runs on a fresh synthetic set in a temporary folder. The report's keys
are documented in cakes_video/benchmarks/data.py; the flags: ``tools/benchmark_data.py --help``.
"""
import sys

from cakes_video.benchmarks.cli import data_main
from cakes_video.engine.cli import run_tool

if __name__ == "__main__":
    sys.exit(run_tool(data_main))  # a bad list or video folder: one line naming it, exit status 1
