#!/usr/bin/env python3
"""Writes the synthetic temporal benchmark: tools/make_synthetic.py OUT_DIR [--seed S] ..."""
import os
import sys
import time

from cakes_video.datasets.synthetic import VARIANTS, make_synthetic
from cakes_video.engine.cli import ToolParser, positive_int, run_tool


def main(argv=None):
    parser = ToolParser(description=__doc__)
    parser.add_argument("out_dir")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="easy",
                        help="easy: the demo's 10 classes; hard: 24 classes, subtler motions, fewer clips")
    parser.add_argument("--videos-per-class", type=positive_int,
                        help="training clips per class (default 32 easy, 24 hard); val gets a quarter, "
                             "test a quarter (easy) or a half (hard)")
    parser.add_argument("--frames", type=positive_int, default=16)
    parser.add_argument("--size", type=positive_int, default=64)
    parser.add_argument("--overwrite", action="store_true",
                        help="replace a benchmark already in OUT_DIR (deleted first; without it, the tool refuses)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out_dir) and not os.path.isdir(args.out_dir):
        parser.error(f"OUT_DIR {args.out_dir} is a file, not a folder")
    start = time.time()
    paths = make_synthetic(args.out_dir, seed=args.seed, videos_per_class=args.videos_per_class,
                           frames=args.frames, size=args.size, variant=args.variant, overwrite=args.overwrite)
    print(f"wrote {paths['root']} in {time.time() - start:.1f}s")
    for name, path in paths.items():
        if name != "root":
            print(f"  {name}: {path}")


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a bad flag or a benchmark already there: one line, exit status 1
