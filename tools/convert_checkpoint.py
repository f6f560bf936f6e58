#!/usr/bin/env python
"""Converts published weights into OUT_DIR/config.yaml + OUT_DIR/model.pyth (this project's format).

    tools/convert_checkpoint.py --source torchvision --arch r3d_18 r3d_18-b3b3357e.pth out/r3d_18
    tools/convert_checkpoint.py --source official-cakes --conv-config CAKES123D_P \\
        --num-classes 174 --frames 8 cakes123d_p_8f.pth.tar out/cakes123d_p
    tools/convert_checkpoint.py --source imagenet-2d --cfg i3d_r50_ssv1 \\
        resnet50-0676ba61.pth out/i3d_r50_init

The imagenet-2d checkpoint has no head (``head.*``): it initialises fine-tuning, not testing.
Then: ``cakes_video.load_model("out/r3d_18/config.yaml", "out/r3d_18/model.pyth")``.
"""
import argparse
import sys

from cakes_video.checkpoint import convert
from cakes_video.engine.cli import run_tool


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, choices=sorted(convert.CONVERTERS))
    p.add_argument("--arch", choices=sorted(convert.TORCHVISION_RULES), help="torchvision: the model")
    p.add_argument("--conv-config", help="official-cakes: channel config name, e.g. CAKES123D_P")
    p.add_argument("--num-classes", type=int, default=174, help="official-cakes: classes (default 174)")
    p.add_argument("--frames", type=int, default=8, help="official-cakes: frames (segments) per clip")
    p.add_argument("--cfg", help="imagenet-2d: config (file or packaged name) of the model to inflate into")
    p.add_argument("--trust-pickle", action="store_true",
                   help="load IN with full pickle (only for files you trust) when weights_only fails")
    p.add_argument("input", help="the published weights file")
    p.add_argument("out_dir", help="folder for config.yaml and model.pyth")
    args = p.parse_args(argv)
    needed = convert.CONVERTER_OPTIONS[args.source][0]
    if getattr(args, needed) is None:
        p.error(f"--source {args.source} needs --{needed.replace('_', '-')}")
    return args


def convert_weights(args) -> None:
    """Runs the conversion ``args`` ask for; raises on bad input (run_tool reports it)."""
    options = {name: getattr(args, name) for name in convert.CONVERTER_OPTIONS[args.source]}
    paths = convert.convert_published(args.source, args.input, args.out_dir, args.trust_pickle, **options)
    print("wrote " + " and ".join(paths))


def main(argv=None) -> int:
    """Exit status: 0 when written, 1 on an expected error (reported in one line, no traceback)."""
    args = parse_args(argv)
    return run_tool(lambda: convert_weights(args))


if __name__ == "__main__":
    sys.exit(main())
