#!/usr/bin/env python
"""Top-k classes of videos, whole or window by window:

    tools/predict.py INPUT [INPUT ...] (--model ZOO_NAME | --cfg FILE [--checkpoint CKPT] | --onnx FILE)
        [--json FILE] [--window W [--stride S] [--output-dir DIR]] [--topk 5]
        [--views CLIPSxCROPS] [--protocol NAME] [--device cpu|cuda|auto] [KEY VALUE ...]

INPUT: video files, folders (searched recursively by suffix) and list files (.txt, .lst,
.list: one path per line), all before any KEY VALUE override. Weights: --checkpoint, else
TEST.CHECKPOINT_FILE (a zoo model's own), else OUTPUT_DIR/checkpoints (best, then newest);
never random weights. The test protocol is the config's (TEST.NUM_ENSEMBLE_VIEWS x
NUM_SPATIAL_CROPS, DATA.TEST_PROTOCOL) unless --views / --protocol give one. W and S are
seconds (2.5) or frames (64f); each window is scored as a test video of its own, with a CSV
and a PNG timeline per video in DIR.

Exit status: 0 every video predicted; 1 nothing ran (bad flags, config, model or checkpoint:
one line naming it); 3 some inputs failed (each named on its line, in the JSON with its
"error"; every other video predicted and written). JSON format: cakes_video/engine/predict.py.
"""
import argparse
import sys

from cakes_video.datasets.windows import Span
from cakes_video.engine.cli import ToolParser, add_model_args, config_of, positive_int, run_tool
from cakes_video.engine.monitor import setup_logging
from cakes_video.engine.predict import (PredictOptions, exit_status, run_predict, run_predict_exported, split_overrides,
                                        view_overrides)
from cakes_video.utils.distributed import DEVICES


def _span(text: str) -> Span:
    try:
        return Span.parse(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from e


def main(argv=None) -> int:
    parser = ToolParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="+", metavar="INPUT",
                        help="video files, folders of videos, list files; then KEY VALUE config overrides")
    parser.add_argument("--checkpoint", default="", help="weights; default: as tools/test_net.py finds them")
    parser.add_argument("--json", default="", help="write one object per video here")
    parser.add_argument("--topk", type=positive_int, default=5)
    parser.add_argument("--window", type=_span, help="window length: seconds (2.5) or frames (64f)")
    parser.add_argument("--stride", type=_span, help="window start every S (default: the window)")
    parser.add_argument("--output-dir", default="output/predict", help="per-window CSV and PNG timeline per video")
    parser.add_argument("--views", default="", help="CLIPSxCROPS test views, e.g. 10x3 (default: the config's)")
    parser.add_argument("--protocol", default="", help="temporal test protocol (default: DATA.TEST_PROTOCOL)")
    parser.add_argument("--device", choices=sorted(DEVICES), default="", help="default: the config's DEVICE")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = add_model_args(parser, onnx=True).parse_intermixed_args(argv)
    inputs, args.opts = split_overrides(args.items)
    if not inputs:
        parser.error("no INPUT: name video files, folders or list files before any KEY VALUE override")
    if args.stride is not None and args.window is None:
        parser.error("--stride needs --window")
    try:
        args.opts += view_overrides(args.views, args.protocol)
    except ValueError as e:
        parser.error(str(e))
    options = PredictOptions(topk=args.topk, window=args.window, stride=args.stride, output_dir=args.output_dir,
                             json_path=args.json, device=args.device or ("cpu" if args.onnx else ""),
                             progress=not args.no_progress)
    if args.onnx:
        if args.checkpoint:
            parser.error("--checkpoint: an --onnx file holds its weights")
        setup_logging()
        return exit_status(run_predict_exported(args.onnx, inputs, args.opts, options))
    cfg = config_of(args)
    setup_logging()
    return exit_status(run_predict(cfg, inputs, args.checkpoint, options))


if __name__ == "__main__":
    sys.exit(run_tool(main))
