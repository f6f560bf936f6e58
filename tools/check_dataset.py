#!/usr/bin/env python3
"""Checks that every video of a list decodes.

    tools/check_dataset.py LIST [--backend B] [--root DIR] [--json FILE] [--workers N]

LIST has one path per line, optionally followed by a label. Prints each failure and a
summary line; exits with status 1 when any video failed, or (with one line naming it) when
the list cannot be read. Details: cakes_video/datasets/check.py.
"""
import argparse
import sys

from cakes_video.datasets.check import check_videos, read_list, summary, write_report
from cakes_video.engine.cli import run_tool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("list", help="video list: path [label] per line")
    parser.add_argument("--backend", default="pyav", choices=["pyav", "decord", "frames"])
    parser.add_argument("--root", default="", help="folder joined to relative paths")
    parser.add_argument("--json", help="write every video's result here")
    parser.add_argument("--workers", type=int, default=1, help="processes checking in parallel")
    parser.add_argument("--template", default="{:05d}.jpg", help="frame file names (--backend frames)")
    parser.add_argument("--start-index", type=int, default=1, help="first frame number (--backend frames)")
    args = parser.parse_args(argv)
    options = {"template": args.template, "start_index": args.start_index} if args.backend == "frames" else {}
    results = check_videos(read_list(args.list, args.root), args.backend, args.workers, **options)
    for result in results:
        if not result["ok"]:
            print(f"FAILED {result['error']}")  # the error names the path
    if args.json:
        write_report(results, args.json, args.backend)
    print(summary(results))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a missing list: one line naming it, exit status 1
