#!/usr/bin/env python
"""Top-k classes of one video: ``tools/predict.py (--cfg FILE | --model ZOO_NAME) --video PATH
[--checkpoint CKPT] [--topk 5] [KEY VALUE ...]``. Weights: --checkpoint, else TEST.CHECKPOINT_FILE
(a zoo model's own), else OUTPUT_DIR/checkpoints (best, then newest); never random weights."""
import sys

from cakes_video.engine.cli import ToolParser, add_config_args, config_of, positive_int, run_tool
from cakes_video.engine.monitor import setup_logging
from cakes_video.engine.predict import predict_file


def main(argv=None):
    parser = ToolParser(description="Top-k action classes of one video file.")
    parser.add_argument("--video", required=True, help="video file (or frame folder with DATA.DECODER frames)")
    parser.add_argument("--checkpoint", default="", help="weights; default: as tools/test_net.py finds them")
    parser.add_argument("--topk", type=positive_int, default=5)
    args = add_config_args(parser).parse_args(argv)
    cfg = config_of(args)
    setup_logging()
    ranked = predict_file(cfg, args.video, args.checkpoint, args.topk)
    print(f"{args.video}:")
    for rank, (name, score) in enumerate(ranked, start=1):
        print(f"  {rank}. {name}  {score:.3f}")
    return ranked


if __name__ == "__main__":
    sys.exit(run_tool(main))
