"""The CSV tables the engine writes: a test run's predictions.csv, per_class_accuracy.csv,
confusion_matrix.csv (its confusion_matrix.png: :func:`.plots.plot_confusion_matrix`), and a
windowed prediction's one row per window (its timeline: :func:`.plots.plot_timeline`)."""
import csv
import math
from typing import Dict, List, Sequence, Tuple

import torch

from ..utils.io import replace_atomically


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


def write_windows_csv(path: str, spans: Sequence[Tuple[float, float]], scores: torch.Tensor,
                      class_names: Sequence[str], topk: int) -> None:
    """``start_s, end_s, top1, top1_score, ..., topK, topK_score``: one row per window.

    ``spans``: (start, end) seconds of each window; ``scores``: float [windows, classes].
    """
    k = min(topk, scores.shape[1])
    top = scores.topk(k, dim=1)
    header = ["start_s", "end_s"] + [f"top{r}{part}" for r in range(1, k + 1) for part in ("", "_score")]

    def write(tmp: str) -> None:
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(header)
            for (start, end), values, indices in zip(spans, top.values.tolist(), top.indices.tolist()):
                ranked = [x for c, s in zip(indices, values) for x in (class_names[c], f"{s:.5g}")]
                w.writerow([f"{start:.3f}", f"{end:.3f}", *ranked])

    replace_atomically(path, write)
