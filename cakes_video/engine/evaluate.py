"""The single-clip validation pass used during training (metrics: utils/metrics.py)."""
from typing import Dict

import torch
from torch import nn

from ..utils.distributed import all_reduce_sum
from ..utils.metrics import topk_correct
from ..utils.modes import evaluating
from .monitor import progress


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
