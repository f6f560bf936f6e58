"""Every figure the package draws, with matplotlib on its Agg canvas (no display, no pyplot
state, so plotting is safe in any process): the confusion matrix of a test run, the training
curves of a run folder and the timeline of a windowed prediction. Files are written atomically
(:mod:`cakes_video.utils.figures`)."""
import math
import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch

from ..utils.figures import new_figure, save_png
from .monitor import MetricsFileError, read_metrics

CURVES_FILE = "training_curves.png"  # in OUTPUT_DIR


def plot_confusion_matrix(path: str, confusion: torch.Tensor, class_names: Sequence[str]) -> str:
    """The row-normalised confusion matrix ``[K, K]`` (rows true, columns predicted) as a heatmap
    with the class names on both axes and a colour bar; counts in the cells up to 20 classes.

    Cells and fonts shrink with K (cells 0.5 in for few classes, 0.11 in and 5 pt names for 174)
    and the figure grows, so every name stays legible. Returns ``path``.
    """
    k = len(class_names)
    rows = (confusion.double() / confusion.sum(dim=1, keepdim=True).clamp(min=1)).numpy()
    cell = min(0.5, max(0.11, 8.0 / k))  # inches
    font = min(10.0, max(5.0, 50 * cell))  # points
    label = max(len(n) for n in class_names) * font * 0.6 / 72 + 0.6  # inches the names take
    fig = new_figure(k * cell + label + 1.6, k * cell + label + 0.8)
    ax = fig.add_subplot()
    image = ax.imshow(rows, cmap="Blues", vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_xticks(range(k), class_names, rotation=90, fontsize=font)
    ax.set_yticks(range(k), class_names, fontsize=font)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(f"confusion matrix: {int(confusion.sum())} videos, {k} classes", fontsize=10)
    if k <= 20:
        for (i, j), count in zip(torch.cartesian_prod(torch.arange(k), torch.arange(k)).tolist(),
                                 confusion.flatten().tolist()):
            if count:
                ax.text(j, i, str(int(count)), ha="center", va="center", fontsize=font,
                        color="white" if rows[i, j] > 0.5 else "black")
    fig.colorbar(image, ax=ax, shrink=min(1.0, 6.0 / (k * cell)), label="fraction of the true class")
    return save_png(fig, path, dpi=120)


def training_curves(output_dir: str) -> Dict[str, Dict[str, List[float]]]:
    """The curves of ``OUTPUT_DIR/metrics.jsonl``: ``{"iter": {"step", "loss", "lr", "top1"},
    "epoch": {"step", "epoch", "train_loss", "train_top1", "val_loss", "val_top1"}}`` (lists;
    NaN where a record lacks a value). A step or epoch written twice (a run resumed from an older
    checkpoint redoes it) keeps its last record. MetricsFileError when there is no training record."""
    iters, epochs = {}, {}
    for r in read_metrics(output_dir):
        if r["type"] == "train_iter":
            iters[r["step"]] = r
        elif r["type"] == "epoch":
            epochs[r["epoch"]] = r
    if not iters and not epochs:
        raise MetricsFileError(f"{os.path.join(output_dir, 'metrics.jsonl')}: no training records "
                               "(train_iter or epoch lines) to plot")

    def columns(records: Dict, keys: Sequence[str]) -> Dict[str, List[float]]:
        ordered = [records[k] for k in sorted(records)]
        return {key: [_number(r.get(key)) for r in ordered] for key in keys}

    return {"iter": columns(iters, ("step", "loss", "lr", "top1")),
            "epoch": columns(epochs, ("step", "epoch", "train_loss", "train_top1", "val_loss", "val_top1"))}


def _number(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan  # null: not finite when written


def plot_training_curves(output_dir: str, path: Optional[str] = None) -> str:
    """Loss, learning rate and top-1 (train per step and per epoch, validation per evaluation)
    against the optimizer step, from ``OUTPUT_DIR/metrics.jsonl`` (:func:`training_curves`),
    to ``path`` (default ``OUTPUT_DIR/training_curves.png``). Returns the path written."""
    curves = training_curves(output_dir)
    it, ep = curves["iter"], curves["epoch"]
    fig = new_figure(13.0, 3.8)
    loss, lr, top1 = fig.subplots(1, 3)
    step_style = dict(linewidth=0.8, alpha=0.5)
    loss.plot(it["step"], it["loss"], label="train (step)", **step_style)
    loss.plot(ep["step"], ep["train_loss"], "o-", label="train (epoch)")
    loss.plot(ep["step"], ep["val_loss"], "s-", label="validation")
    lr.plot(it["step"], it["lr"], color="tab:purple")
    top1.plot(it["step"], it["top1"], label="train (step)", **step_style)
    top1.plot(ep["step"], ep["train_top1"], "o-", label="train (epoch)")
    top1.plot(ep["step"], ep["val_top1"], "s-", label="validation")
    for ax, title in ((loss, "loss"), (lr, "learning rate"), (top1, "top-1 (%)")):
        ax.set_title(title)
        ax.set_xlabel("optimizer step")
        ax.grid(alpha=0.3)
    for ax in (loss, top1):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(f"{os.path.abspath(output_dir)}: {len(ep['epoch'])} epochs, {len(it['step'])} logged steps",
                 fontsize=10)
    return save_png(fig, path or os.path.join(output_dir, CURVES_FILE))


TIMELINE_MARKERS_UP_TO = 60  # windows; with more, the lines alone read better


def timeline_classes(scores: torch.Tensor, count: int) -> List[int]:
    """The ``count`` classes with the highest peak score over the windows, best first: an
    action that fills only a few windows still shows."""
    return scores.max(dim=0).values.topk(min(count, scores.shape[1])).indices.tolist()


def plot_timeline(path: str, spans: Sequence[Tuple[float, float]], scores: torch.Tensor,
                  class_names: Sequence[str], count: int, title: str) -> str:
    """A windowed prediction's PNG: the score (``scores`` float [windows, classes]) of each of
    :func:`timeline_classes` at the centre of every window (``spans``: (start, end) seconds)."""
    centres = [(start + end) / 2 for start, end in spans]
    figure = new_figure(10, 4)
    axes = figure.add_subplot()
    marker = "o" if len(spans) <= TIMELINE_MARKERS_UP_TO else None
    for c in timeline_classes(scores, count):
        axes.plot(centres, scores[:, c].tolist(), marker=marker, markersize=3, label=class_names[c])
    axes.set_xlabel("time (s), window centres")
    axes.set_ylabel("score")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small")
    return save_png(figure, path)
