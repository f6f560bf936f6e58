"""The files of a windowed prediction: a CSV with one row per window and a PNG timeline of
the top classes' scores over time (matplotlib, Agg: no display needed). Both are written
atomically (utils.io)."""
import csv
from typing import List, Sequence, Tuple

import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..utils.io import replace_atomically

MARKERS_UP_TO = 60  # windows; with more, the lines alone read better


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


def timeline_classes(scores: torch.Tensor, count: int) -> List[int]:
    """The ``count`` classes with the highest peak score over the windows, best first: an
    action that fills only a few windows still shows."""
    return scores.max(dim=0).values.topk(min(count, scores.shape[1])).indices.tolist()


def plot_timeline(path: str, spans: Sequence[Tuple[float, float]], scores: torch.Tensor,
                  class_names: Sequence[str], count: int, title: str) -> None:
    """A PNG: the score of each of :func:`timeline_classes` at the centre of every window."""
    centres = [(start + end) / 2 for start, end in spans]
    figure = Figure(figsize=(10, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    marker = "o" if len(spans) <= MARKERS_UP_TO else None
    for c in timeline_classes(scores, count):
        axes.plot(centres, scores[:, c].tolist(), marker=marker, markersize=3, label=class_names[c])
    axes.set_xlabel("time (s), window centres")
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    figure.tight_layout()
    replace_atomically(path, lambda tmp: figure.savefig(tmp, format="png"))
