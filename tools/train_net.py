#!/usr/bin/env python
"""Train a video model: ``tools/train_net.py (--cfg FILE | --model ZOO_NAME) [KEY VALUE ...]``.

With --model, training starts from the zoo model's weights (TRAIN.CHECKPOINT_FILE; a head of
another MODEL.NUM_CLASSES is re-initialised).

Resumes from OUTPUT_DIR/checkpoints when possible; tests the result afterwards when
TEST.ENABLE and DATA.TEST_LIST are set. Multi-process: ``torchrun --nproc_per_node N tools/train_net.py ...``;
multi-node: the README.
"""
import sys

from cakes_video.engine.cli import parse_args, run_tool
from cakes_video.engine.setup import train
from cakes_video.engine.testing import run_test


def main(argv=None) -> dict:
    _, cfg = parse_args("Train a video model (CAKES / ResNet3D).", argv, weights_key="TRAIN.CHECKPOINT_FILE")
    summary = train(cfg) if cfg.TRAIN.ENABLE else {}
    if cfg.TEST.ENABLE and cfg.DATA.TEST_LIST:
        summary["test"] = run_test(cfg)
    return summary


if __name__ == "__main__":
    sys.exit(run_tool(main))
