#!/usr/bin/env python
"""Search a CAKES network, derive it under a budget, optionally train and test it:

    tools/search_net.py (--cfg FILE | --model ZOO_NAME) [--budget gflops=G | params=P | latency_ms=L]
        [KEY VALUE ...]

--cfg: the network to search (MODEL.*; the SEARCH group for the search). --model: shrink a
trained zoo model: its config, its weights sliced into the supernet (SEARCH.INIT checkpoint).
--budget sets SEARCH.DERIVE.BUDGET_KIND / BUDGET (without it: the paper's per-layer top-C).
Writes OUTPUT_DIR/derived/BUDGET/ (channel configs, the derived network's config, report, plot,
its search_summary.json; BUDGET e.g. gflops_0.144 or top_c) and OUTPUT_DIR/search_summary.json;
SEARCH.TRAIN_DERIVED True also trains and tests the derived network in
OUTPUT_DIR/derived/BUDGET/run_inherit (or run_inflate: SEARCH.DERIVE.INIT). Rerunning the same
command resumes a killed search; another --budget derives again from the trained supernet.
"""
import argparse
import json
import sys

from cakes_video.engine.cli import ToolParser, add_config_args, config_of, run_tool
from cakes_video.engine.monitor import setup_logging
from cakes_video.engine.search import search


def budget_overrides(text: str) -> list:
    """``"gflops=2.5"`` -> the SEARCH.DERIVE overrides (the budget as a float, the config's type)."""
    kind, sep, value = text.partition("=")
    try:
        return ["SEARCH.DERIVE.BUDGET_KIND", kind, "SEARCH.DERIVE.BUDGET", repr(float(value))] if sep and kind else None
    except ValueError:
        return None


def main(argv=None) -> dict:
    parser = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budget", default="", help="gflops=G, params=P (a count) or latency_ms=L")
    args = add_config_args(parser).parse_args(argv)
    if args.budget:
        overrides = budget_overrides(args.budget)
        if overrides is None:
            parser.error(f"--budget {args.budget!r}: expected KIND=NUMBER, e.g. gflops=2.5")
        args.opts = overrides + list(args.opts)
    if args.model:
        args.opts = ["SEARCH.INIT", "checkpoint", *args.opts]
    cfg = config_of(args, weights_key="SEARCH.INIT_CHECKPOINT")
    setup_logging()
    summary = search(cfg)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    sys.exit(run_tool(main))
