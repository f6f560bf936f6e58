#!/usr/bin/env python3
"""Benchmarks the data pipeline: tools/benchmark_data.py [--data LIST [--root ROOT]] [--json FILE] ...

Without --data it runs on a fresh synthetic set in a temporary folder. The report's keys
are documented in cakes_video/datasets/benchmark.py.
"""
from cakes_video.datasets.benchmark import main

if __name__ == "__main__":
    main()
