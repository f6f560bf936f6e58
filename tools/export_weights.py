#!/usr/bin/env python3
"""Weights to ship: ``tools/export_weights.py CHECKPOINT OUT [--full]`` writes the model state
and MODEL config of a training checkpoint (half precision unless --full) and prints the file's
size and sha256, the two figures a zoo entry records."""
import argparse
import os
import sys

from cakes_video.checkpoint import export_weights
from cakes_video.engine.cli import run_tool
from cakes_video.zoo.download import sha256_of


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("checkpoint", help="a training checkpoint (OUTPUT_DIR/checkpoints/best.pyth)")
    parser.add_argument("out", help="the file to write")
    parser.add_argument("--full", action="store_true", help="keep float32 (default: float16)")
    args = parser.parse_args(argv)
    path = export_weights(args.checkpoint, args.out, half=not args.full)
    print(f"{path}: size_bytes {os.path.getsize(path)}, sha256 {sha256_of(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a missing or foreign checkpoint: one line naming it, exit status 1
