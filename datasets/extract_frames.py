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
from fractions import Fraction

from cakes_video.datasets.transcode import report, transcode_tree
from cakes_video.engine.cli import run_tool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("in_dir", help="folder of videos (searched recursively)")
    parser.add_argument("out_dir", help="folder for the frame folders")
    parser.add_argument("--template", default="{:05d}.jpg", help="frame file names, formatted with the frame number")
    parser.add_argument("--start-index", type=int, default=1, help="number of the first frame")
    parser.add_argument("--short-side", type=int, help="pixels of the displayed short side (default: kept)")
    parser.add_argument("--upscale", action="store_true", help="also enlarge videos smaller than --short-side")
    parser.add_argument("--fps", type=Fraction, help="frames per second to keep (default: every frame)")
    parser.add_argument("--quality", type=int, default=95, help="JPEG quality")
    parser.add_argument("--workers", type=int, help="processes in parallel (default: the usable CPU cores)")
    args = parser.parse_args(argv)
    results = transcode_tree(args.in_dir, args.out_dir, "frames", args.workers, template=args.template,
                             start_index=args.start_index, short_side=args.short_side, upscale=args.upscale,
                             fps=args.fps, quality=args.quality)
    print(report(results))
    return 1 if any(r["status"] == "failed" for r in results) else 0


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a missing IN_DIR: one line naming it, exit status 1
