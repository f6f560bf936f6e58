#!/usr/bin/env python
"""Multi-view test of a trained model:
``tools/test_net.py (--cfg FILE | --model ZOO_NAME) [KEY VALUE ...]``.

Weights: TEST.CHECKPOINT_FILE (a zoo model's own, with its test protocol), else
OUTPUT_DIR/checkpoints (best, then newest); refuses to run without. Writes OUTPUT_DIR/results.json, predictions.csv, per_class_accuracy.csv,
confusion_matrix.csv and confusion_matrix.png. Multi-process: ``torchrun --nproc_per_node N``.
"""
import sys

from cakes_video.engine.cli import parse_args, run_tool
from cakes_video.engine.testing import run_test


def main(argv=None) -> dict:
    _, cfg = parse_args("Multi-view test of a trained video model.", argv)
    return run_test(cfg)


if __name__ == "__main__":
    sys.exit(run_tool(main))
