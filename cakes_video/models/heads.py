"""Classification heads: features ``[N, C, T, H, W]`` -> logits ``[N, num_classes]``.

Both expose ``fc`` (an ``nn.Linear``) so fine-tuning can re-initialise the classifier.
"""
import torch
from torch import nn


class ClipHead(nn.Module):
    """Global average pool over T, H, W, dropout, linear: ``[N, C, T, H, W] -> [N, K]``."""

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.dropout(x.mean(dim=(2, 3, 4))))


class TSNHead(nn.Module):
    """Per-frame classifier whose logits are averaged over time (the official CAKES head).

    ``[N, C, T, H, W]`` -> spatial mean ``[N, T, C]`` -> dropout -> ``fc`` per frame ``[N, T, K]``
    -> mean over T ``[N, K]``. Dropout draws a separate mask for every frame.
    """

    def __init__(self, in_channels: int, num_classes: int, dropout: float = 0.0):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = x.mean(dim=(3, 4)).transpose(1, 2)
        return self.fc(self.dropout(frames)).mean(dim=1)


# MODEL.HEAD -> head class.
HEADS = {"clip": ClipHead, "tsn": TSNHead}


def make_head(name: str, in_channels: int, num_classes: int, dropout: float = 0.0) -> nn.Module:
    """Head ``name`` ("clip" or "tsn")."""
    if name not in HEADS:
        raise ValueError(f"unknown head {name!r}; expected one of {list(HEADS)}")
    return HEADS[name](in_channels, num_classes, dropout)
