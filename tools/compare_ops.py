#!/usr/bin/env python
"""Train and test the same small ResNet with different temporal convolutions on the synthetic
benchmark; writes OUTPUT_DIR/comparison.{json,md}.
``tools/compare_ops.py --output-dir output/compare [--ops 2d 3d 2plus1d cakes] [KEY VALUE ...]``
(the logic: cakes_video/benchmarks/comparison.py)"""
import sys

from cakes_video.benchmarks.cli import compare_ops_main
from cakes_video.engine.cli import run_tool

if __name__ == "__main__":
    sys.exit(run_tool(compare_ops_main))
