#!/usr/bin/env python3
"""Turns a dataset's official annotation files into our lists.

    python datasets/prepare.py DATASET --annotations DIR --videos DIR --out DIR [--split N] [--check]

DATASET: kinetics400, ssv1, ssv2, ucf101, hmdb51. Writes train.txt, val.txt (test.txt for
UCF101 / HMDB51), classes.txt, summary.json and overrides.txt into --out and prints the
counts, the missing and unreadable videos, the malformed annotation lines and the config
overrides. Details and the layouts expected: datasets/README.md, cakes_video/datasets/prepare.py.
"""
import argparse
import sys

from cakes_video.datasets.prepare import PREPARERS, prepare, report
from cakes_video.engine.cli import run_tool


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(PREPARERS))
    parser.add_argument("--annotations", required=True, help="folder of the official annotation files")
    parser.add_argument("--videos", required=True, help="folder of the videos (SSv1: of the frame folders)")
    parser.add_argument("--out", required=True, help="folder the lists, classes.txt and summary.json go to")
    parser.add_argument("--split", type=int, default=1, choices=[1, 2, 3], help="UCF101 / HMDB51 split")
    parser.add_argument("--check", action="store_true", help="decode every video and leave unreadable ones out")
    args = parser.parse_args(argv)
    summary = prepare(args.dataset, args.annotations, args.videos, args.out, args.split, args.check)
    print(report(summary, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a missing annotation file: one line naming it, exit status 1
