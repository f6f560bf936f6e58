#!/usr/bin/env python
"""A trained model exported for deployment: ``tools/export_net.py (--model ZOO_NAME | --cfg FILE
[--checkpoint CKPT]) --format {onnx,torchscript} --output FILE [KEY VALUE ...]``.

Writes the inference form (BatchNorm folded, CAKES sub-kernel convolutions), batch dynamic, with
the class names, input size, frames, normalisation and full config stored in the file; then runs
it beside PyTorch and prints the largest logit difference. Weights: --checkpoint, else
TEST.CHECKPOINT_FILE (a zoo model's own), else OUTPUT_DIR/checkpoints; never random weights.
Load the file with ``cakes_video.engine.export.load_onnx`` / ``load_torchscript``.
"""
import argparse
import sys

from cakes_video.engine.cli import add_config_args, config_of, run_tool
from cakes_video.engine.export import EXPORTERS, MAX_ABS_DIFF, check_format, export_trained
from cakes_video.engine.monitor import setup_logging


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description="Export a trained video model to ONNX or TorchScript.")
    parser.add_argument("--checkpoint", default="", help="weights; default: as tools/test_net.py finds them")
    parser.add_argument("--format", required=True, help=f"one of {list(EXPORTERS)}")
    parser.add_argument("--output", required=True, help="the file to write")
    args = add_config_args(parser).parse_args(argv)
    setup_logging()
    check_format(args.format)  # before any weights are fetched
    result = export_trained(config_of(args), args.output, args.format, args.checkpoint)
    verdict = "ok" if result["max_abs_diff"] <= MAX_ABS_DIFF else f"ABOVE {MAX_ABS_DIFF:g}"
    print(f"{result['path']}: {result['format']} of {result['checkpoint']}; max abs logit diff vs PyTorch "
          f"{result['max_abs_diff']:.2g} ({verdict})")
    return result


if __name__ == "__main__":
    sys.exit(run_tool(main))  # a bad format, checkpoint or output: one line naming it, exit status 1
