#!/usr/bin/env python
"""`make demo`: build the synthetic benchmark, train a small CAKES ResNet on it, test it with
several views, predict one video. ``tools/demo.py --output-dir output/demo [KEY VALUE ...]``.
Re-running resumes: the data and finished training are reused."""
import argparse
import sys

from cakes_video.engine.cli import run_tool
from cakes_video.engine.demo import DEFAULT_CONFIG, SYNTHETIC_VIDEOS_PER_CLASS, run_demo


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="output/demo")
    parser.add_argument("--cfg", default=DEFAULT_CONFIG, help="demo config (data paths are filled in)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic benchmark")
    parser.add_argument("--videos-per-class", type=int, default=SYNTHETIC_VIDEOS_PER_CLASS,
                        help="training clips per class")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    args = parser.parse_args(argv)
    return run_demo(args.output_dir, args.cfg, args.opts, seed=args.seed, videos_per_class=args.videos_per_class)


if __name__ == "__main__":
    sys.exit(run_tool(main))
