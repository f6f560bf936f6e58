"""Inference on one video file: the test views of the config -> aggregated class scores ->
the top-k class names. Used by tools/predict.py and the demo."""
import itertools
import os
from typing import List, Optional, Tuple

import torch
from torch import nn

from ..datasets.catalog import VideoRecord, read_class_names
from ..datasets.decoding import DecodeError
from ..datasets.multiview import multiview_dataset_from_cfg
from ..datasets.video_reader import VideoReader, decode_options_from_cfg
from ..models import build_model
from ..utils.metrics import aggregate_views
from .checkpointer import load_weights
from .testing import find_test_checkpoint, inference_model, view_logits


def class_names_of(cfg) -> List[str]:
    """DATA.CLASS_NAMES when given, else "0", "1", ... up to MODEL.NUM_CLASSES."""
    names = read_class_names(cfg.DATA.CLASS_NAMES) if cfg.DATA.CLASS_NAMES else \
        [str(i) for i in range(cfg.MODEL.NUM_CLASSES)]
    if len(names) != cfg.MODEL.NUM_CLASSES:
        raise ValueError(f"DATA.CLASS_NAMES: {cfg.DATA.CLASS_NAMES} lists {len(names)} classes, "
                         f"MODEL.NUM_CLASSES is {cfg.MODEL.NUM_CLASSES}")
    return names


def video_views(cfg, path: str) -> torch.Tensor:
    """The test views of ``path`` as the test split makes them: float ``[V, C, T, H, W]``.

    Raises DecodeError naming the file when it cannot be read.
    """
    if not os.path.exists(path):
        raise DecodeError(f"{path}: no such file or folder")
    record = VideoRecord(path, 0, os.path.splitext(os.path.basename(path))[0])
    item = multiview_dataset_from_cfg(cfg, [record], ["?"], VideoReader(decode_options_from_cfg(cfg)))[0]
    if item["failed"]:
        raise DecodeError(item["failed"][0]["error"])  # the decoder's message names the file
    return item["video"]


@torch.no_grad()
def rank_classes(model: nn.Module, cfg, views: torch.Tensor, class_names: List[str],
                 topk: int = 5) -> List[Tuple[str, float]]:
    """Views ``[V, C, T, H, W]`` -> ``[(class name, score), ...]`` best first; the score is
    TEST.AGGREGATION over the views."""
    model.eval()
    device = next(itertools.chain(model.parameters(), model.buffers())).device  # fused convs hold buffers
    scores = aggregate_views(view_logits(model, views.unsqueeze(0).to(device)), cfg.TEST.AGGREGATION)[0]
    top = scores.topk(min(topk, scores.numel()))
    return [(class_names[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]


def predict_video(model: nn.Module, cfg, path: str, class_names: List[str], topk: int = 5) -> List[Tuple[str, float]]:
    """Top-k ``(class name, score)`` of the video file ``path``."""
    return rank_classes(model, cfg, video_views(cfg, path), class_names, topk)


def predict_file(cfg, path: str, checkpoint: str = "", topk: int = 5) -> List[Tuple[str, float]]:
    """What tools/predict.py does: read the video first (a bad file fails fast, naming it),
    then load the trained weights and rank the classes."""
    views = video_views(cfg, path)
    names = class_names_of(cfg)
    return rank_classes(load_trained_model(cfg, checkpoint), cfg, views, names, topk)


def load_trained_model(cfg, checkpoint: Optional[str] = None) -> nn.Module:
    """The model of ``cfg`` with trained weights (``checkpoint``, else as testing finds them),
    ready for inference (in inference form with TEST.DEPLOY)."""
    model = build_model(cfg)
    load_weights(model, checkpoint or find_test_checkpoint(cfg))
    return inference_model(cfg, model)
