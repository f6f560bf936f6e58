"""Metrics of class scores: multi-view aggregation, top-k hits, confusion matrix, per-class accuracy.

Scores are ``[B, K]`` (B videos, K classes); per-view logits ``[B, V, K]``.
"""
from typing import Dict, Sequence

import torch


def _mean_softmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.float().softmax(dim=-1).mean(dim=1)


def _sum_softmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.float().softmax(dim=-1).sum(dim=1)


def _mean_logits(logits: torch.Tensor) -> torch.Tensor:
    return logits.mean(dim=1)


def _max_softmax(logits: torch.Tensor) -> torch.Tensor:
    return logits.float().softmax(dim=-1).amax(dim=1)


# TEST.AGGREGATION -> how ``[B, V, K]`` view logits become ``[B, K]`` video scores.
AGGREGATIONS = {"mean_softmax": _mean_softmax, "sum_softmax": _sum_softmax, "mean_logits": _mean_logits,
                "max": _max_softmax}


def aggregate_views(logits: torch.Tensor, method: str) -> torch.Tensor:
    """Per-view logits ``[B, V, K]`` -> one score per video and class ``[B, K]``.

    "mean_softmax" / "sum_softmax": mean / sum of the view probabilities; "mean_logits": mean of
    the raw logits; "max": per-class maximum of the view probabilities.
    """
    if logits.dim() != 3:
        raise ValueError(f"aggregate_views expects logits [B, V, K], got {tuple(logits.shape)}")
    if method not in AGGREGATIONS:
        raise ValueError(f"TEST.AGGREGATION: unknown method {method!r}; expected one of {list(AGGREGATIONS)}")
    return AGGREGATIONS[method](logits)


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
