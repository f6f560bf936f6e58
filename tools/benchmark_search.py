#!/usr/bin/env python
"""The hard synthetic benchmark's table: C2D, R3D, R(2+1)D, uniform and searched CAKES (both modes,
FLOPs budgets, a latency budget, inherited against inflated weights) and R3D shrunk (searched at two
budgets, uniformly, and the searched network from scratch), each over several seeds, every seed's
networks timed in one run; writes OUTPUT_DIR/search_table.{json,md}, accuracy_vs_gflops.png and
accuracy_vs_latency.png. A rerun reuses the finished runs.

    tools/benchmark_search.py --output-dir DIR [--seeds 3] [--tiny] [--threads N] [KEY VALUE ...]

--tiny: a tiny hard set and one epoch of tiny networks (the test suite's end-to-end check).
(the logic: cakes_video/benchmarks/search_table.py)"""
import argparse
import sys

from cakes_video.benchmarks.search_table import markdown, run_table
from cakes_video.engine.cli import ToolParser, positive_int, run_tool
from cakes_video.engine.monitor import setup_logging


def main(argv=None) -> dict:
    parser = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--seeds", type=positive_int, default=3)
    parser.add_argument("--tiny", action="store_true", help="the tiny setting of the test suite")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for the latency (0: every core)")
    parser.add_argument("opts", nargs="*", default=[], metavar="KEY VALUE", help="config overrides")
    args = parser.parse_args(argv)
    setup_logging()
    table = run_table(args.output_dir, args.seeds, args.tiny, args.opts, threads=args.threads)
    print(markdown(table))
    return table


if __name__ == "__main__":
    sys.exit(run_tool(main))
