"""Files a test run writes: predictions.csv, per_class_accuracy.csv, confusion_matrix.csv,
confusion_matrix.png (a small built-in PNG writer, no matplotlib)."""
import csv
import math
import struct
import zlib
from typing import Dict, List, Sequence

import torch


def write_predictions(path: str, rows: List[Dict], class_names: Sequence[str]) -> None:
    """One line per video: id, true label and name, whether top-1 is right, top-k names and scores.

    ``rows`` items: ``{"video_id", "label", "topk_labels": [k], "topk_scores": [k]}``.
    """
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["video_id", "label", "label_name", "correct", "topk_labels", "topk_names", "topk_scores"])
        for r in rows:
            w.writerow([r["video_id"], r["label"], class_names[r["label"]], int(r["topk_labels"][0] == r["label"]),
                        ";".join(str(c) for c in r["topk_labels"]),
                        ";".join(class_names[c] for c in r["topk_labels"]),
                        ";".join(f"{s:.5g}" for s in r["topk_scores"])])


def write_per_class(path: str, confusion: torch.Tensor, accuracy: torch.Tensor, class_names: Sequence[str]) -> None:
    """``class_index, class_name, num_videos, accuracy`` (percent; empty for classes without videos)."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["class_index", "class_name", "num_videos", "accuracy"])
        for i, name in enumerate(class_names):
            acc = accuracy[i].item()
            w.writerow([i, name, int(confusion[i].sum()), "" if math.isnan(acc) else f"{100.0 * acc:.4f}"])


def write_confusion_csv(path: str, confusion: torch.Tensor, class_names: Sequence[str]) -> None:
    """Counts; rows are true classes, columns predicted classes, both named."""
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["true \\ predicted", *class_names])
        for name, row in zip(class_names, confusion.tolist()):
            w.writerow([name, *row])


def write_confusion_png(path: str, confusion: torch.Tensor, max_side: int = 800) -> None:
    """Row-normalised confusion matrix as a white-to-blue heatmap PNG (rows true, columns
    predicted), each cell a square of pixels; needs only zlib."""
    k = confusion.shape[0]
    cell = max(1, max_side // max(k, 1))
    rows = confusion.double() / confusion.sum(dim=1, keepdim=True).clamp(min=1)
    shade = (255 * (1 - rows)).round().to(torch.uint8)  # 255 = white (0), 0 = saturated (1)
    rgb = torch.stack([shade, shade, torch.full_like(shade, 255)], dim=-1)  # [K, K, 3]
    image = rgb.repeat_interleave(cell, 0).repeat_interleave(cell, 1)  # [K*cell, K*cell, 3]
    _write_png(path, image)


def _write_png(path: str, rgb: torch.Tensor) -> None:
    """Writes an ``[H, W, 3]`` uint8 image as an 8-bit RGB PNG."""
    height, width, _ = rgb.shape
    raw = b"".join(b"\x00" + bytes(row) for row in rgb.reshape(height, width * 3).numpy())  # filter 0 per row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6))
                + chunk(b"IEND", b""))
