"""The hard synthetic benchmark's table (issue 13): C2D, R3D, R(2+1)D, uniform CAKES and the searched
CAKES networks, each trained and tested for several seeds on one hard set, with accuracy, cost and
latency; mean and standard error over seeds; JSON, a markdown table and two plots.

Every row x seed is one run in its own folder, recorded in ``OUTPUT_DIR/runs/ROW/seedS/row.json``
when it ends: a rerun skips the recorded ones (and the training loop resumes an unfinished one).
Searched rows share their seed's supernet (``OUTPUT_DIR/supernets/NAME/seedS``, derivations beside
each other, :func:`~cakes_video.engine.search.search`); their budgets are fractions of the same seed's
R3D GFLOPs (and latency), so R3D runs first.
"""
import csv
import json
import logging
import math
import os
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..config import ConfigError
from ..config_loader import load_config
from ..datasets.synthetic import temporal_pair_accuracy
from ..engine.demo import data_overrides, ensure_synthetic
from ..engine.search import search
from ..engine.setup import train
from ..engine.testing import run_test
from ..utils.figures import new_figure, save_png
from ..utils.io import write_json
from .execution import ExecutionPath
from .models import run_benchmark
from .timing import intra_op_threads

logger = logging.getLogger(__name__)
CONFIG = "synthetic/hard_r3d_r10_w16"
NUM_CLASSES = 24  # the hard variant's
ROW_FILE = "row.json"


@dataclass(frozen=True)
class Row:
    """One line of the table: a plain network (``op``) trained from scratch, or a searched one
    (``mode``: SEARCH.MODE) derived under ``budget_kind`` at ``fraction`` of R3D's cost from the
    supernet ``supernet`` (rows naming the same one share it); ``shrink`` starts that supernet
    from R3D's trained weights (SEARCH.INIT checkpoint)."""
    name: str
    label: str
    op: str = ""
    mode: str = ""
    supernet: str = ""
    budget_kind: str = "gflops"
    fraction: float = 0.6
    shrink: bool = False


ROWS = (
    Row("c2d", "C2D", op="2d"),
    Row("r3d", "R3D", op="3d"),
    Row("r2plus1d", "R(2+1)D", op="2plus1d"),
    Row("cakes_uniform", "CAKES (uniform)", op="cakes"),
    Row("searched_performance", "CAKES searched (performance)", mode="performance", supernet="performance"),
    Row("searched_cost", "CAKES searched (cost)", mode="cost", supernet="cost"),
    # the smallest reachable network of the benchmark's config is 54% of R3D's GFLOPs: budgets above it
    Row("budget_gflops_70", "CAKES budget 70% GFLOPs", mode="performance", supernet="performance", fraction=0.7),
    Row("budget_gflops_90", "CAKES budget 90% GFLOPs", mode="performance", supernet="performance", fraction=0.9),
    Row("latency_aware", "CAKES latency-aware (75% latency)", mode="performance", supernet="performance",
        budget_kind="latency_ms", fraction=0.75),
    Row("shrunk_r3d", "R3D shrunk (60% GFLOPs)", mode="performance", supernet="shrink", shrink=True),
)

# --tiny: a hard set of 2 training clips per class, 8 frames of 32 px, and a network and schedule to match
# (a 1x7x7 stem: with the 3x7x7 one the unsearched stem leaves no network under 68% of R3D's GFLOPs)
TINY_DATA = {"videos_per_class": 2, "frames": 8, "size": 32}
TINY_OVERRIDES = ["MODEL.BASE_WIDTH", "8", "MODEL.STEM", "1x7x7", "DATA.NUM_FRAMES", "4", "DATA.TRAIN_JITTER_SCALES", "[28, 32]",
                  "DATA.TRAIN_CROP_SIZE", "28", "DATA.TEST_SCALE", "32", "DATA.TEST_CROP_SIZE", "28",
                  "SOLVER.MAX_EPOCH", "1", "TRAIN.EVAL_PERIOD", "1", "TEST.NUM_SPATIAL_CROPS", "1",
                  "DATA_LOADER.NUM_WORKERS", "0", "TEST.CONFUSION_PNG", "False", "SEARCH.LATENCY.REPEATS", "1"]
TINY_RUNS = 2  # timed latency runs
FULL_DATA = {"videos_per_class": None, "frames": 16, "size": 64}  # the variant's defaults


def run_table(output_dir: str, seeds: int = 3, tiny: bool = False, overrides: Sequence[str] = (),
              rows: Sequence[Row] = ROWS, threads: int = 0, runs: int = 20) -> Dict:
    """Runs (or reuses) every ``rows`` x seed run, then writes OUTPUT_DIR/search_table.{json,md},
    accuracy_vs_gflops.png and accuracy_vs_latency.png. ``threads`` for the latency (batch 1, deployed
    form): 0 = every CPU core. Returns ``{"runs": [per run], "rows": [per row: means, standard errors]}``."""
    overrides = (TINY_OVERRIDES if tiny else []) + list(overrides)
    load_config(CONFIG, overrides)  # a bad override fails here, once, before any data or run
    data = ensure_synthetic_hard(os.path.join(output_dir, "data"), TINY_DATA if tiny else FULL_DATA)
    runs = TINY_RUNS if tiny else runs
    threads = threads or os.cpu_count()
    records, failed = [], []
    for seed in range(seeds):
        done: Dict[str, Dict] = {}
        for row in rows:
            try:
                done[row.name] = run_row(output_dir, data, row, seed, overrides, done, threads, runs)
            except ConfigError as e:
                if not row.mode:
                    raise
                # a budget the derivation cannot meet: the other rows still run
                logger.error("%s, seed %d: %s", row.name, seed, e)
                failed.append({"row": row.name, "seed": seed, "error": str(e)})
                continue
            records.append(done[row.name])
    table = {"config": CONFIG, "overrides": overrides, "seeds": seeds, "latency_threads": threads,
             "runs": records, "failed": failed, "rows": summarise(records, rows)}
    write_outputs(output_dir, table)
    return table


def ensure_synthetic_hard(data_dir: str, sizes: Dict) -> str:
    """The seed-0 hard set in ``data_dir`` (written unless complete there)."""
    return ensure_synthetic(data_dir, 0, sizes["videos_per_class"], sizes["frames"], sizes["size"], variant="hard")


def run_row(output_dir: str, data: str, row: Row, seed: int, overrides: Sequence[str], done: Dict[str, Dict],
            threads: int, runs: int) -> Dict:
    """One row x seed: its record from ``row.json`` when finished before, else trained, tested, timed
    and recorded. ``done``: this seed's records so far (R3D's sets the budgets)."""
    record_path = os.path.join(output_dir, "runs", row.name, f"seed{seed}", ROW_FILE)
    if os.path.isfile(record_path):
        return read_json(record_path)
    common = list(overrides) + ["SEED", str(seed), "TEST.TOPK", str(NUM_CLASSES)]
    run_dir = _train_plain(output_dir, data, row, seed, common) if row.op else \
        _search(output_dir, data, row, seed, common, done["r3d"], threads)
    results = read_json(os.path.join(run_dir, "results.json"))
    record = {"row": row.name, "label": row.label, "seed": seed, "run_dir": run_dir, "top1": results["top1"],
              "pair_accuracy": pair_accuracy(os.path.join(run_dir, "predictions.csv"), NUM_CLASSES),
              "gflops_per_view": results["gflops_per_view"], "params": results["params"],
              "latency_ms": latency_ms(os.path.join(run_dir, "config.yaml"), results["protocol"], threads, runs),
              "latency_threads": threads}
    write_json(record_path, record)
    return record


def _train_plain(output_dir: str, data: str, row: Row, seed: int, overrides: List[str]) -> str:
    run_dir = os.path.join(output_dir, "runs", row.name, f"seed{seed}")
    cfg = load_config(CONFIG, data_overrides(run_dir, data) + overrides + ["MODEL.TEMPORAL_OP", row.op])
    train(cfg)
    run_test(cfg)
    return run_dir


def _search(output_dir: str, data: str, row: Row, seed: int, overrides: List[str], r3d: Dict, threads: int) -> str:
    """The searched row's derived network trained and tested; returns its run folder."""
    reference = r3d["gflops_per_view"] if row.budget_kind == "gflops" else r3d["latency_ms"]
    supernet_dir = os.path.join(output_dir, "supernets", row.supernet, f"seed{seed}")
    init = ["SEARCH.INIT", "checkpoint", "SEARCH.INIT_CHECKPOINT",
            read_json(os.path.join(r3d["run_dir"], "results.json"))["checkpoint"]] if row.shrink else []
    cfg = load_config(CONFIG, data_overrides(supernet_dir, data) + overrides + init + [
        "SEARCH.MODE", row.mode, "SEARCH.DERIVE.BUDGET_KIND", row.budget_kind,
        "SEARCH.DERIVE.BUDGET", repr(row.fraction * reference), "SEARCH.TRAIN_DERIVED", "True",
        "SEARCH.LATENCY.THREADS", str(threads)])  # the latency table at the threads R3D was timed with
    return search(cfg)["derived_run"]


def pair_accuracy(predictions_csv: str, num_classes: int) -> float:
    """:func:`~cakes_video.datasets.synthetic.temporal_pair_accuracy` from a test run's
    predictions.csv written with every class's score (TEST.TOPK = ``num_classes``)."""
    scores, labels = [], []
    with open(predictions_csv, newline="") as f:
        for line in csv.DictReader(f):
            row = [0.0] * num_classes
            for c, s in zip(line["topk_labels"].split(";"), line["topk_scores"].split(";")):
                row[int(c)] = float(s)
            scores.append(row)
            labels.append(int(line["label"]))
    return temporal_pair_accuracy(scores, labels)


def latency_ms(config_file: str, protocol: Dict, threads: int, runs: int) -> float:
    """Median latency of one test view at batch 1 of the run's network in its deployed form (BN
    folded, fused, channels-last), random weights (the time does not depend on them)."""
    with intra_op_threads(threads):
        timed = run_benchmark([config_file], protocol["num_frames"], protocol["crop_size"],
                              path=ExecutionPath(deploy=True, fuse=True), runs=runs)
    return timed[0]["latency_ms"]


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


METRICS = ("top1", "pair_accuracy", "gflops_per_view", "params", "latency_ms")


def mean_and_sem(values: Sequence[float]) -> Dict[str, float]:
    """Mean and standard error of the mean (sample SD / sqrt(n); 0 for one value)."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "sem": sd / math.sqrt(n)}


def summarise(records: Sequence[Dict], rows: Sequence[Row]) -> List[Dict]:
    """Per row with a finished run: its label, seed count and ``{metric: {"mean", "sem"}}`` over its seeds."""
    out = []
    for row in rows:
        mine = [r for r in records if r["row"] == row.name]
        if mine:  # a row whose every seed failed is left out (its errors: the table's "failed")
            out.append({"row": row.name, "label": row.label, "seeds": len(mine),
                        **{m: mean_and_sem([r[m] for r in mine]) for m in METRICS}})
    return out


def write_outputs(output_dir: str, table: Dict) -> Dict[str, str]:
    """search_table.json, search_table.md and the two plots in ``output_dir``; returns their paths."""
    paths = {"json": os.path.join(output_dir, "search_table.json"), "md": os.path.join(output_dir, "search_table.md"),
             "gflops_png": os.path.join(output_dir, "accuracy_vs_gflops.png"),
             "latency_png": os.path.join(output_dir, "accuracy_vs_latency.png")}
    write_json(paths["json"], table)
    with open(paths["md"], "w") as f:
        f.write(markdown(table))
    plot(table["rows"], "gflops_per_view", "GFLOPs per view", paths["gflops_png"])
    plot(table["rows"], "latency_ms", f"latency (ms, batch 1, {table['latency_threads']} threads, deployed)",
         paths["latency_png"])
    return paths


def markdown(table: Dict) -> str:
    def cell(stat, scale=1.0, digits=1):
        return f"{stat['mean'] * scale:.{digits}f} ± {stat['sem'] * scale:.{digits}f}"

    lines = [f"Hard synthetic benchmark ({table['config']}), mean ± standard error over {table['seeds']} seeds; "
             f"latency: batch 1, {table['latency_threads']} threads, deployed form, median", "",
             "| model | top-1 % | pair acc. | GFLOPs/view | params (M) | latency (ms) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {cell(r['top1'])} | {cell(r['pair_accuracy'], digits=3)} "
              f"| {cell(r['gflops_per_view'], digits=4)} | {cell(r['params'], 1e-6, 3)} | {cell(r['latency_ms'], digits=2)} |"
              for r in table["rows"]]
    lines += [f"\n{f['row']}, seed {f['seed']}: not run: {f['error']}" for f in table["failed"]]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Dict], x_metric: str, x_label: str, path: str, y_metric: str = "top1") -> str:
    """Top-1 against ``x_metric``, one point per row with error bars (standard errors) both ways."""
    fig = new_figure(7.5, 5)
    ax = fig.add_subplot()
    for r in rows:
        ax.errorbar(r[x_metric]["mean"], r[y_metric]["mean"], xerr=r[x_metric]["sem"], yerr=r[y_metric]["sem"],
                    fmt="o", capsize=3, label=r["label"])
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_png(fig, path)
