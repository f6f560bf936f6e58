#!/usr/bin/env python
"""Training curves of a run: ``tools/plot_run.py RUN_DIR [--output FILE]`` plots loss, learning
rate and top-1 (train and validation) from RUN_DIR/metrics.jsonl to RUN_DIR/training_curves.png
(or FILE); training writes the same file when it ends. A missing, empty or malformed
metrics.jsonl: one line naming it, exit status 1."""
import argparse
import sys

from cakes_video.engine.cli import run_tool
from cakes_video.engine.plots import plot_training_curves


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(description="Plot the training curves of a run folder.")
    parser.add_argument("run_dir", help="a training run's OUTPUT_DIR (it holds metrics.jsonl)")
    parser.add_argument("--output", help="the PNG to write (default: RUN_DIR/training_curves.png)")
    args = parser.parse_args(argv)
    path = plot_training_curves(args.run_dir, args.output)
    print(path)
    return path


if __name__ == "__main__":
    sys.exit(run_tool(main))
