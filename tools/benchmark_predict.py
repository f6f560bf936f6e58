#!/usr/bin/env python3
"""Peak memory of a windowed prediction, by video length, each in a fresh process:

    tools/benchmark_predict.py [--seconds 60 1200] [--video-dir DIR] [--model ZOO_NAME]
        [--window 2] [--stride 1] [--json FILE] [KEY VALUE ...]

Writes a 128x96, 25 fps H.264 video of each length (into --video-dir, reused when there;
else a temporary folder), predicts it window by window with tools/predict.py's library call
and reports the process's peak RSS. The report's keys: cakes_video/benchmarks/predict_memory.py.
"""
import argparse
import json
import sys

from cakes_video.benchmarks.predict_memory import DEFAULT_MODEL, benchmark_predict_memory
from cakes_video.engine.cli import run_tool
from cakes_video.utils.io import write_json


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, nargs="+", default=[60, 1200], help="video lengths")
    parser.add_argument("--video-dir", default="", help="keep (and reuse) the generated videos here")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="a zoo model")
    parser.add_argument("--window", default="2", help="seconds, or frames with an f suffix")
    parser.add_argument("--stride", default="1")
    parser.add_argument("--json", default="", help="write the reports here")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides as KEY VALUE pairs")
    args = parser.parse_args(argv)
    reports = benchmark_predict_memory(args.seconds, args.video_dir, args.model, args.window, args.stride, args.opts)
    print(json.dumps(reports, indent=1))
    if args.json:
        write_json(args.json, reports, indent=1)
    return reports


if __name__ == "__main__":
    sys.exit(run_tool(main))
