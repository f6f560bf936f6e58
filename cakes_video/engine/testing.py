"""Multi-view testing: decode-once batches ``[B, V, C, T, H, W]`` -> per-view logits ->
aggregated video scores -> metrics and report files, every video counted exactly once
across ranks. Refuses to run without trained weights."""
import logging
import math
import os
from typing import Callable, Dict, List, Optional

import torch
from torch import nn

from ..config import ConfigError
from ..datasets.failures import check_failure_fraction
from ..models import build_model
from ..models.complexity import count_gflops, count_params
from ..models.inference import inference_form
from ..utils.distributed import all_gather_objects, barrier, broadcast_object, get_world_size, is_main
from ..utils.io import write_json
from ..zoo import resolve_checkpoint
from ..utils.metrics import aggregate_views, confusion_matrix, mean_class_accuracy, per_class_accuracy, topk_correct
from .checkpointer import Checkpointer, load_weights
from .monitor import progress, setup_logging
from .plots import plot_confusion_matrix
from .reports import write_confusion_csv, write_per_class, write_predictions
from .runtime import prepare_run, resolve_loader_fn

logger = logging.getLogger(__name__)


def find_test_checkpoint(cfg) -> str:
    """TEST.CHECKPOINT_FILE (a path or ``"zoo:NAME"``), else OUTPUT_DIR/checkpoints/best.pyth or the newest epoch checkpoint.

    Raises ConfigError when there is none: testing random weights would report nonsense.
    """
    if cfg.TEST.CHECKPOINT_FILE:
        return resolve_checkpoint(cfg.TEST.CHECKPOINT_FILE, "TEST.CHECKPOINT_FILE")
    found = Checkpointer(cfg.OUTPUT_DIR).for_testing()
    if found is None:
        raise ConfigError(f"TEST.CHECKPOINT_FILE: no checkpoint given and none in "
                          f"{os.path.join(cfg.OUTPUT_DIR, 'checkpoints')}; refusing to test random weights")
    return found


def trained_model(cfg, checkpoint: Optional[str] = None) -> nn.Module:
    """The model of ``cfg`` with trained weights: ``checkpoint``, else :func:`find_test_checkpoint`'s."""
    model = build_model(cfg)
    load_weights(model, checkpoint or find_test_checkpoint(cfg))
    return model


def inference_model(cfg, model: nn.Module) -> nn.Module:
    """``model`` as testing and prediction run it: in inference form with TEST.DEPLOY (and
    TEST.FUSE), else itself in eval mode."""
    if not cfg.TEST.DEPLOY:
        return model.eval()
    return inference_form(model, fuse=cfg.TEST.FUSE)


@torch.no_grad()
def view_logits(model: nn.Module, video: torch.Tensor) -> torch.Tensor:
    """``[B, V, C, T, H, W]`` -> ``[B, V, K]``: every view through the model as one batch."""
    b, v = video.shape[:2]
    return model(video.flatten(0, 1)).float().view(b, v, -1)


def collect_predictions(model: nn.Module, loader, device: torch.device, aggregation: str,
                        progress_enabled: bool = True) -> Dict:
    """This rank's ``{"index": [n], "video_id": [n], "label": [n], "scores": [n, K], "failed": [...]}``."""
    out = {"index": [], "video_id": [], "label": [], "scores": [], "failed": []}
    model.eval()
    for batch in progress(loader, "test", None, progress_enabled):
        out["failed"] += [f["path"] for f in batch.get("failed", ())]
        if len(batch["label"]) == 0:
            continue
        scores = aggregate_views(view_logits(model, batch["video"].to(device, non_blocking=True)), aggregation)
        out["scores"].append(scores.cpu())
        out["index"] += batch["index"].tolist()
        out["label"] += batch["label"].tolist()
        out["video_id"] += list(batch["video_id"])
    out["scores"] = torch.cat(out["scores"]) if out["scores"] else torch.empty(0)
    return out


def merge_ranks(parts: List[Dict]) -> Dict:
    """Joins every rank's predictions, sorted by dataset index; a video seen twice is an error."""
    index = [i for p in parts for i in p["index"]]
    if len(set(index)) != len(index):
        raise RuntimeError("a test video was evaluated more than once across ranks: the test sampler must "
                           "neither repeat nor pad")
    scores = [p["scores"] for p in parts if p["scores"].numel()]
    order = sorted(range(len(index)), key=index.__getitem__)
    label = [lab for p in parts for lab in p["label"]]
    video_id = [v for p in parts for v in p["video_id"]]
    return {"index": [index[i] for i in order], "label": torch.tensor([label[i] for i in order], dtype=torch.int64),
            "video_id": [video_id[i] for i in order],
            "scores": torch.cat(scores)[order] if scores else torch.empty(0, 0),
            "failed": sorted(f for p in parts for f in p["failed"])}


def compute_metrics(merged: Dict, num_classes: int) -> Dict:
    """Top-1/top-5/mean class accuracy (percent), per-class accuracy and confusion matrix."""
    scores, labels = merged["scores"], merged["label"]
    if scores.numel() == 0:
        raise RuntimeError("no test video could be evaluated (all failed to decode?)")
    hits = topk_correct(scores, labels, (1, 5))
    confusion = confusion_matrix(labels, scores.argmax(dim=1), num_classes)
    return {"top1": 100.0 * hits[1].double().mean().item(), "top5": 100.0 * hits[5].double().mean().item(),
            "mean_class_acc": 100.0 * mean_class_accuracy(confusion), "confusion": confusion,
            "per_class": per_class_accuracy(confusion)}


def protocol_of(cfg) -> Dict:
    """How the test views were made, for results.json."""
    return {"num_ensemble_views": cfg.TEST.NUM_ENSEMBLE_VIEWS, "num_spatial_crops": cfg.TEST.NUM_SPATIAL_CROPS,
            "views_per_video": cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS,
            "temporal_protocol": cfg.DATA.TEST_PROTOCOL, "sampling": cfg.DATA.SAMPLING,
            "num_frames": cfg.DATA.NUM_FRAMES, "sampling_rate": cfg.DATA.SAMPLING_RATE,
            "test_scale": cfg.DATA.TEST_SCALE, "crop_size": cfg.DATA.TEST_CROP_SIZE,
            "aggregation": cfg.TEST.AGGREGATION}


def complexity_of(model: nn.Module, cfg) -> Dict:
    """Parameters and GFLOPs of one view (C, T, crop, crop), via models.complexity (fvcore)."""
    shape = (3, cfg.DATA.NUM_FRAMES, cfg.DATA.TEST_CROP_SIZE, cfg.DATA.TEST_CROP_SIZE)
    return {"params": int(count_params(model)), "gflops_per_view": float(count_gflops(model, shape)["gflops"])}


def run_test(cfg, loader_fn: Optional[Callable] = None) -> Dict:
    """Tests the trained model of ``cfg`` on the test split; rank 0 writes OUTPUT_DIR/results.json,
    predictions.csv, per_class_accuracy.csv, confusion_matrix.csv/.png. Returns the results dict
    (on every rank)."""
    device = prepare_run(cfg, ["TEST.BATCH_SIZE"])
    setup_logging(cfg.OUTPUT_DIR)
    path = find_test_checkpoint(cfg)  # before any data is read
    loader_fn = resolve_loader_fn(cfg, loader_fn, ["test"])
    model = build_model(cfg).to(device)
    load_weights(model, path)
    loader = loader_fn(cfg, "test")
    dataset = loader.dataset
    # on the model as built (fvcore cannot count fused convs); only rank 0 reports it
    complexity = complexity_of(model, cfg) if is_main() else None
    model = inference_model(cfg, model)  # a deployed copy replaces it: one copy in memory
    local = collect_predictions(model, loader, device, cfg.TEST.AGGREGATION, cfg.TEST.PROGRESS_BAR)
    parts = all_gather_objects(local)
    results = None
    if is_main():
        merged = merge_ranks(parts)
        counted = len(merged["index"]) + len(merged["failed"])
        if counted != dataset.num_videos:
            raise RuntimeError(f"{counted} test videos counted across {get_world_size()} processes, "
                               f"the dataset has {dataset.num_videos}")
        results = _report(cfg, complexity, merged, list(dataset.class_names), path)
    results = broadcast_object(results)
    barrier()
    check_failure_fraction(results["num_failed"], results["num_videos"] + results["num_failed"],
                           cfg.DATA.MAX_FAILED_FRACTION, "test")
    return results


def _report(cfg, complexity: Dict, merged: Dict, class_names: List[str], checkpoint: str) -> Dict:
    out = cfg.OUTPUT_DIR
    os.makedirs(out, exist_ok=True)
    m = compute_metrics(merged, len(class_names))
    k = min(cfg.TEST.TOPK, len(class_names))
    top = merged["scores"].topk(k, dim=1)
    rows = [{"video_id": v, "label": int(lab), "topk_labels": tl, "topk_scores": ts}
            for v, lab, tl, ts in zip(merged["video_id"], merged["label"], top.indices.tolist(), top.values.tolist())]
    write_predictions(os.path.join(out, "predictions.csv"), rows, class_names)
    write_per_class(os.path.join(out, "per_class_accuracy.csv"), m["confusion"], m["per_class"], class_names)
    write_confusion_csv(os.path.join(out, "confusion_matrix.csv"), m["confusion"], class_names)
    if cfg.TEST.CONFUSION_PNG:
        plot_confusion_matrix(os.path.join(out, "confusion_matrix.png"), m["confusion"], class_names)
    results = {"accuracy_unit": "percent", "top1": m["top1"], "top5": m["top5"], "mean_class_acc": m["mean_class_acc"],
               "num_classes": len(class_names), "num_videos": len(merged["index"]),
               "num_failed": len(merged["failed"]), "failed_videos": merged["failed"],
               "protocol": protocol_of(cfg), **complexity, "checkpoint": checkpoint,
               "per_class_accuracy": {n: (None if math.isnan(a) else 100.0 * a)  # NaN: the class has no video
                                      for n, a in zip(class_names, m["per_class"].tolist())},
               "model": {"arch": cfg.MODEL.ARCH, "depth": cfg.MODEL.DEPTH, "temporal_op": cfg.MODEL.TEMPORAL_OP},
               "inference_form": {"deploy": cfg.TEST.DEPLOY, "fuse": cfg.TEST.FUSE, "cakes_impl": cfg.MODEL.CAKES.IMPL}}
    write_json(os.path.join(out, "results.json"), results)
    logger.info("test: top-1 %.2f%%, top-5 %.2f%%, mean class acc %.2f%% over %d videos (%d failed); "
                "%.3g M params, %.3g GFLOPs/view x %d views", results["top1"], results["top5"],
                results["mean_class_acc"], results["num_videos"], results["num_failed"], results["params"] / 1e6,
                results["gflops_per_view"], results["protocol"]["views_per_video"])
    return results
