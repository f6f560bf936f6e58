#!/usr/bin/env python3
"""JPEG frame folders from a tree of videos (Something-Something V1 naming by default).

    datasets/extract_frames.py IN_DIR OUT_DIR [--template {:05d}.jpg] [--start-index 1]
                               [--short-side S] [--fps F] [--workers N]

Every video under IN_DIR becomes the folder OUT_DIR/<relative path without extension>/
holding 00001.jpg, 00002.jpg, ... (upright: rotation applied); every frame unless --fps.
Resumable (existing folders are skipped) and atomic per folder (filled under a temporary
name, renamed last). Prints each failed video and a summary line; exits with status 1 when
any failed. Details: cakes_video/datasets/transcode.py.
"""
import argparse
import sys

from cakes_video.datasets.transcode import add_tree_arguments, exit_status, transcode_tree
from cakes_video.engine.cli import run_tool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_tree_arguments(parser, "frame folders", short_side_required=False)
    parser.add_argument("--template", default="{:05d}.jpg", help="frame file names, formatted with the frame number")
    parser.add_argument("--start-index", type=int, default=1, help="number of the first frame")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    args = parser.parse_args(argv)
    results = transcode_tree(args.in_dir, args.out_dir, "frames", args.workers, template=args.template,
                             start_index=args.start_index, short_side=args.short_side, upscale=args.upscale,
                             fps=args.fps, quality=args.quality)
    return exit_status(results)


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a missing IN_DIR: one line naming it, exit status 1
