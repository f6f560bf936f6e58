"""Metrics and multi-view aggregation: top-k, per-class accuracy, confusion matrix, and the
single-clip validation pass used during training."""
from typing import Dict, Sequence

import torch
from torch import nn

from ..utils.modes import evaluating
from .distributed import all_reduce_sum
from .monitor import progress

AGGREGATIONS = ("mean_softmax", "sum_softmax", "mean_logits", "max")


def aggregate_views(logits: torch.Tensor, method: str) -> torch.Tensor:
    """Per-view logits ``[B, V, K]`` -> one score per video and class ``[B, K]``.

    "mean_softmax" / "sum_softmax": mean / sum of the view probabilities; "mean_logits": mean of
    the raw logits; "max": per-class maximum of the view probabilities.
    """
    if logits.dim() != 3:
        raise ValueError(f"aggregate_views expects logits [B, V, K], got {tuple(logits.shape)}")
    if method == "mean_logits":
        return logits.mean(dim=1)
    probs = logits.float().softmax(dim=-1)
    if method == "mean_softmax":
        return probs.mean(dim=1)
    if method == "sum_softmax":
        return probs.sum(dim=1)
    if method == "max":
        return probs.amax(dim=1)
    raise ValueError(f"TEST.AGGREGATION: unknown method {method!r}; expected one of {list(AGGREGATIONS)}")


def topk_correct(scores: torch.Tensor, labels: torch.Tensor, ks: Sequence[int] = (1, 5)) -> Dict[int, torch.Tensor]:
    """``{k: bool [B]}``: whether each label is among the top-k of ``scores`` ``[B, K]``
    (k is capped at K, so top-5 of a 3-class problem is always right)."""
    maxk = min(max(ks), scores.shape[1])
    top = scores.topk(maxk, dim=1).indices  # [B, maxk]
    hit = top == labels.view(-1, 1)
    return {k: hit[:, :min(k, maxk)].any(dim=1) for k in ks}


def confusion_matrix(labels: torch.Tensor, preds: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[K, K]`` int64 counts: row = true class, column = predicted class."""
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes * num_classes).view(num_classes, num_classes)


def per_class_accuracy(confusion: torch.Tensor) -> torch.Tensor:
    """``[K]`` float accuracy per true class; NaN for classes with no video."""
    totals = confusion.sum(dim=1).double()
    correct = confusion.diagonal().double()
    return torch.where(totals > 0, correct / totals.clamp(min=1), torch.full_like(totals, float("nan")))


def mean_class_accuracy(confusion: torch.Tensor) -> float:
    """Mean of per-class accuracy over the classes that have videos."""
    acc = per_class_accuracy(confusion)
    present = ~acc.isnan()
    return float(acc[present].mean()) if present.any() else float("nan")


@torch.no_grad()
def validate(model: nn.Module, loader, device: torch.device, criterion: nn.Module,
             progress_enabled: bool = True) -> Dict[str, float]:
    """One deterministic pass over a single-clip loader (batches ``video`` ``[B, C, T, H, W]``).

    Returns global (all-rank) ``loss``, ``top1``, ``top5`` (percent), ``num_videos``, ``num_failed``.
    Sums stay on ``device`` until the end: one transfer per pass, not per batch.
    """
    sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss*n, top-1 hits, top-5 hits
    num_videos = num_failed = 0  # known on the host from the batch dicts
    with evaluating(model):
        for batch in progress(loader, "val", None, progress_enabled):
            num_failed += len(batch.get("failed", ()))
            if len(batch["label"]) == 0:
                continue
            video, labels = batch["video"].to(device, non_blocking=True), batch["label"].to(device)
            logits = model(video).float()
            hits = topk_correct(logits, labels)
            n = labels.numel()
            sums += torch.stack([criterion(logits, labels).double() * n, hits[1].sum().double(),
                                 hits[5].sum().double()])
            num_videos += n
    counts = torch.tensor([num_videos, num_failed], dtype=torch.float64, device=device)
    loss_sum, top1, top5, num_videos, num_failed = all_reduce_sum(torch.cat([sums, counts])).tolist()
    n = max(num_videos, 1.0)
    return {"loss": loss_sum / n, "top1": 100.0 * top1 / n, "top5": 100.0 * top5 / n,
            "num_videos": int(num_videos), "num_failed": int(num_failed)}
