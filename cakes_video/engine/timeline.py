"""The CSV of a windowed prediction, one row per window, written atomically (utils.io); its PNG
timeline is :func:`cakes_video.engine.plots.plot_timeline`."""
import csv
from typing import Sequence, Tuple

import torch

from ..utils.io import replace_atomically


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
