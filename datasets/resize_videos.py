#!/usr/bin/env python3
"""Resized H.264 copies of a tree of videos.

    datasets/resize_videos.py IN_DIR OUT_DIR --short-side 320 [--fps F] [--workers N] [--upscale]

Every video under IN_DIR becomes OUT_DIR/<same relative path>.mp4: libx264, yuv420p, even
sizes, upright (rotation applied, no tag), no audio, the frame rate kept unless --fps.
Resumable (existing outputs are skipped) and atomic per file. Prints each failed video and
a summary line; exits with status 1 when any failed. Details: cakes_video/datasets/transcode.py.
"""
import argparse
import sys

from cakes_video.datasets.transcode import add_tree_arguments, exit_status, transcode_tree
from cakes_video.engine.cli import run_tool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tree_arguments(parser, "resized videos", short_side_required=True)
    parser.add_argument("--crf", type=int, default=23, help="libx264 quality (lower: better, larger)")
    args = parser.parse_args(argv)
    results = transcode_tree(args.in_dir, args.out_dir, "resize", args.workers, short_side=args.short_side,
                             upscale=args.upscale, fps=args.fps, crf=args.crf)
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a missing IN_DIR: one line naming it, exit status 1
