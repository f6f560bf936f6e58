#!/usr/bin/env python
"""Train and test the same small ResNet with different temporal convolutions on the synthetic
benchmark; writes OUTPUT_DIR/comparison.{json,md}.
``tools/compare_ops.py --output-dir output/compare [--ops 2d 3d 2plus1d cakes] [KEY VALUE ...]``"""
import argparse
import sys

from cakes_video.engine.cli import run_tool
from cakes_video.engine.comparison import DEFAULT_OPS, compare_ops
from cakes_video.engine.demo import DEFAULT_CONFIG


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="output/compare")
    parser.add_argument("--cfg", default=DEFAULT_CONFIG, help="shared config (data paths are filled in)")
    parser.add_argument("--ops", nargs="+", default=list(DEFAULT_OPS), help="MODEL.TEMPORAL_OP values")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for the latency measurement")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    args = parser.parse_args(argv)
    compare_ops(args.output_dir, args.ops, args.cfg, args.opts, threads=args.threads)


if __name__ == "__main__":
    sys.exit(run_tool(main))
