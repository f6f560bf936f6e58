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
import time
from dataclasses import dataclass
from typing import Dict, List, Sequence

from ..config import ConfigError
from ..config_loader import load_config
from ..datasets.synthetic import temporal_pair_accuracy
from ..engine.demo import data_overrides, ensure_synthetic
from ..engine.search import search, shrink_to_config
from ..engine.setup import train
from ..engine.testing import run_test
from ..models.resnet3d import cakes_layer_widths
from ..search.costs import derive_input_shape
from ..search.latency import measure_network_ms
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
    """One line of the table, by ``kind``:

    - "plain": the network of MODEL.TEMPORAL_OP ``op`` trained from scratch;
    - "search": the CAKES network derived under ``budget_kind`` at ``fraction`` of the ``reference``
      row's cost (the same seed's) from the supernet ``supernet`` (rows naming the same one share
      it), trained from ``derive_init`` (SEARCH.DERIVE.INIT); ``shrink`` starts that supernet from
      R3D's trained weights (SEARCH.INIT checkpoint);
    - "shrink_uniform": R3D's trained weights sliced into uniform CAKES, fine-tuned
      (:func:`~cakes_video.engine.search.shrink_to_config`);
    - "scratch": the network of row ``source``'s run trained again from scratch.

    ``epochs``: SOLVER.MAX_EPOCH of the row's runs (a searched row's supernet and derived network
    each), 0 for the config's; ``granularity``: SEARCH.DERIVE.GRANULARITY of a searched row."""
    name: str
    label: str
    kind: str = "search"
    op: str = ""
    mode: str = "cost"
    supernet: str = "cost"
    budget_kind: str = "gflops"
    fraction: float = 0.6
    reference: str = "r3d"
    derive_init: str = "inherit"
    shrink: bool = False
    source: str = ""
    epochs: int = 0
    granularity: int = 1

    @property
    def needs(self) -> List[str]:
        """The rows of the same seed this one starts from or measures against."""
        needs = {"search": [self.reference] + (["r3d"] if self.shrink else []), "shrink_uniform": ["r3d"],
                 "scratch": [self.source]}
        return needs.get(self.kind, [])


SEARCH_EPOCHS = 10  # a searched row's supernet and its derived network, each: the plain rows' 20 in all
SHRINK_EPOCHS = 3  # the shrink's brief search and its fine-tune (from R3D's trained weights), each
ROWS = (
    Row("c2d", "C2D", kind="plain", op="2d"),
    Row("r3d", "R3D", kind="plain", op="3d"),
    Row("r2plus1d", "R(2+1)D", kind="plain", op="2plus1d"),
    Row("cakes_uniform", "CAKES (uniform)", kind="plain", op="cakes"),
    Row("searched_performance", "CAKES searched (performance), 60% GFLOPs", mode="performance",
        supernet="performance", epochs=SEARCH_EPOCHS),
    # the cost mode's supernet, whose 60% network beat the performance mode's on every seed measured,
    # gives the rows below (and the inherit-or-inflate comparison) their networks
    Row("searched_cost", "CAKES searched (cost), 60% GFLOPs", epochs=SEARCH_EPOCHS),
    Row("searched_cost_inflate", "same network, trained from inflation", derive_init="inflate", epochs=SEARCH_EPOCHS),
    # budget-exact: at uniform CAKES's own GFLOPs (77% of R3D's), and at 90% of R3D's; the smallest
    # reachable network of the benchmark's config is 54% of R3D's GFLOPs (the stem and head are not searched)
    Row("budget_gflops_uniform", "CAKES budget = uniform's GFLOPs", reference="cakes_uniform", fraction=1.0,
        epochs=SEARCH_EPOCHS),
    Row("budget_gflops_90", "CAKES budget 90% GFLOPs", fraction=0.9, epochs=SEARCH_EPOCHS),
    # 75% of the latency of R3D's shape built as the search builds it (every_3x3x3_ms), in 16-channel
    # groups (oneDNN's blocks)
    Row("latency_aware", "CAKES latency-aware (75% latency, 16-ch. groups)", budget_kind="latency_ms",
        fraction=0.75, granularity=16, epochs=SEARCH_EPOCHS),
    # a trained R3D's supernet in the performance mode: every step keeps exactly R3D's channel count
    Row("shrunk_r3d", "R3D shrunk (searched), 60% GFLOPs", mode="performance", supernet="shrink", shrink=True,
        epochs=SHRINK_EPOCHS),
    Row("shrunk_r3d_uniform_budget", "R3D shrunk (searched), uniform's GFLOPs", mode="performance", supernet="shrink",
        shrink=True, reference="cakes_uniform", fraction=1.0, epochs=SHRINK_EPOCHS),
    Row("shrunk_r3d_uniform", "R3D shrunk (uniform split)", kind="shrink_uniform", epochs=2 * SHRINK_EPOCHS),
    Row("shrunk_r3d_scratch", "R3D shrunk (searched) 60% network, from scratch", kind="scratch", source="shrunk_r3d"),
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
    """Runs (or reuses) every ``rows`` x seed run, times each seed's networks in one interleaved
    run (batch 1, deployed form, ``threads``: 0 = every CPU core; :func:`time_seed`), then writes
    OUTPUT_DIR/search_table.{json,md}, accuracy_vs_gflops.png and accuracy_vs_latency.png.
    Returns ``{"runs": [per run], "rows": [per row: means, standard errors], "failed": [...]}``."""
    overrides = (TINY_OVERRIDES if tiny else []) + list(overrides)
    load_config(CONFIG, overrides)  # a bad override fails here, once, before any data or run
    data = ensure_synthetic_hard(os.path.join(output_dir, "data"), TINY_DATA if tiny else FULL_DATA)
    runs = TINY_RUNS if tiny else runs
    threads = threads or os.cpu_count()
    records, failed = [], []
    for seed in range(seeds):
        done: Dict[str, Dict] = {}
        for row in rows:
            missing = [name for name in row.needs if name not in done]
            try:
                if missing:
                    raise ConfigError(f"needs the row(s) {missing} of seed {seed}, which did not run")
                done[row.name] = run_row(row, RowContext(output_dir, data, seed, overrides, done, threads, runs,
                                                         row_epochs=not tiny))
            except ConfigError as e:
                if row.kind == "plain":
                    raise
                # a budget the derivation cannot meet (and the rows built on it): the other rows still run
                logger.error("%s, seed %d: %s", row.name, seed, e)
                failed.append({"row": row.name, "seed": seed, "error": str(e)})
        records += time_seed(list(done.values()), threads, runs)
    table = {"config": CONFIG, "overrides": overrides, "seeds": seeds, "latency_threads": threads,
             "runs": records, "failed": failed, "rows": summarise(records, rows)}
    write_outputs(output_dir, table)
    return table


def ensure_synthetic_hard(data_dir: str, sizes: Dict) -> str:
    """The seed-0 hard set in ``data_dir`` (written unless complete there)."""
    return ensure_synthetic(data_dir, 0, sizes["videos_per_class"], sizes["frames"], sizes["size"], variant="hard")


@dataclass(frozen=True)
class RowContext:
    """What a row x seed runs with: the table's folder, the data, the seed, the overrides, this
    seed's records so far (``done``: the references of budgets and shrinks) and the timing settings."""
    output_dir: str
    data: str
    seed: int
    overrides: Sequence[str]
    done: Dict[str, Dict]
    threads: int
    runs: int
    row_epochs: bool = True  # the rows' own SOLVER.MAX_EPOCH (off in --tiny: one epoch each)

    def row_dir(self, row: Row) -> str:
        return os.path.join(self.output_dir, "runs", row.name, f"seed{self.seed}")

    def overrides_of(self, row: Row, run_dir: str) -> List[str]:
        """The data in ``run_dir``, the table's overrides, the seed and the row's epochs."""
        out = data_overrides(run_dir, self.data) + list(self.overrides) + [
            "SEED", str(self.seed), "TEST.TOPK", str(NUM_CLASSES)]
        return out + (["SOLVER.MAX_EPOCH", str(row.epochs)] if row.epochs and self.row_epochs else [])


def run_row(row: Row, ctx: RowContext) -> Dict:
    """One row x seed: its record from ``row.json`` when finished before, else trained, tested and
    recorded (its latency comes later, :func:`time_seed`)."""
    record_path = os.path.join(ctx.row_dir(row), ROW_FILE)
    if os.path.isfile(record_path):
        return read_json(record_path)
    start = time.perf_counter()
    run_dir = RUNNERS[row.kind](row, ctx)
    results = read_json(os.path.join(run_dir, "results.json"))
    record = {"row": row.name, "label": row.label, "seed": ctx.seed, "run_dir": run_dir, "top1": results["top1"],
              "pair_accuracy": pair_accuracy(os.path.join(run_dir, "predictions.csv"), NUM_CLASSES),
              "gflops_per_view": results["gflops_per_view"], "params": results["params"],
              "protocol": results["protocol"], "epochs": row_epochs(row, run_dir),
              "seconds": time.perf_counter() - start}
    write_json(record_path, record)
    return record


def row_epochs(row: Row, run_dir: str) -> int:
    """Training epochs the row's network took: its supernet's and its own for a searched row."""
    epochs = load_config(os.path.join(run_dir, "config.yaml")).SOLVER.MAX_EPOCH
    return 2 * epochs if row.kind == "search" else epochs


def _train_and_test(cfg) -> str:
    """Trains and tests ``cfg``'s network from scratch; returns its OUTPUT_DIR."""
    train(cfg)
    run_test(cfg)
    return cfg.OUTPUT_DIR


def _train_plain(row: Row, ctx: RowContext) -> str:
    return _train_and_test(load_config(CONFIG, ctx.overrides_of(row, ctx.row_dir(row)) + ["MODEL.TEMPORAL_OP", row.op]))


def _train_from_scratch(row: Row, ctx: RowContext) -> str:
    """Row ``source``'s network (its run's config) trained from scratch in this row's folder, with
    the benchmark's budget (the source's own may be a shrink's short fine-tune)."""
    budget = ["SOLVER.MAX_EPOCH", str(load_config(CONFIG).SOLVER.MAX_EPOCH)]
    return _train_and_test(load_config(os.path.join(ctx.done[row.source]["run_dir"], "config.yaml"),
                                       budget + ctx.overrides_of(row, ctx.row_dir(row))))


def _r3d_init(ctx: RowContext) -> List[str]:
    """SEARCH.INIT overrides that start a supernet from this seed's trained R3D."""
    checkpoint = read_json(os.path.join(ctx.done["r3d"]["run_dir"], "results.json"))["checkpoint"]
    return ["SEARCH.INIT", "checkpoint", "SEARCH.INIT_CHECKPOINT", checkpoint]


def _shrink_uniform(row: Row, ctx: RowContext) -> str:
    run_dir = ctx.row_dir(row)
    cfg = load_config(CONFIG, ctx.overrides_of(row, run_dir) + _r3d_init(ctx) + ["MODEL.CAKES.CONV_CONFIG", "uniform"])
    return shrink_to_config(cfg)["run"]


def _search(row: Row, ctx: RowContext) -> str:
    """The searched row's derived network trained and tested; returns its run folder."""
    supernet_dir = os.path.join(ctx.output_dir, "supernets", row.supernet, f"seed{ctx.seed}")
    overrides = ctx.overrides_of(row, supernet_dir) + (_r3d_init(ctx) if row.shrink else []) + [
        "SEARCH.MODE", row.mode, "SEARCH.DERIVE.INIT", row.derive_init,
        "SEARCH.DERIVE.GRANULARITY", str(row.granularity),
        "SEARCH.TRAIN_DERIVED", "True", "SEARCH.LATENCY.THREADS", str(ctx.threads),
        # one latency table for every seed: the layers' shapes, the device and the threads are the same
        "SEARCH.LATENCY.TABLE", os.path.join(ctx.output_dir, "latency_table.json")]
    reference = ctx.done[row.reference]["gflops_per_view"] if row.budget_kind == "gflops" else \
        every_3x3x3_ms(load_config(CONFIG, overrides))
    cfg = load_config(CONFIG, overrides + ["SEARCH.DERIVE.BUDGET_KIND", row.budget_kind,
                                           "SEARCH.DERIVE.BUDGET", repr(row.fraction * reference)])
    return search(cfg)["derived_run"]


def every_3x3x3_ms(cfg) -> float:
    """The latency reference of a latency budget: R3D's shape as the search builds and times it
    (a CAKES network of 3x3x3 sub-kernels only, the deploy form of the latency table), so the
    budget and the table speak of the same thing; timed here, alone."""
    widths = cakes_layer_widths(cfg.MODEL.DEPTH, cfg.MODEL.BASE_WIDTH)
    return measure_network_ms(cfg, [{"kxkxk": width} for width, _ in widths], derive_input_shape(cfg))


RUNNERS = {"plain": _train_plain, "search": _search, "shrink_uniform": _shrink_uniform, "scratch": _train_from_scratch}


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


def _time(config_files: Sequence[str], protocol: Dict, threads: int, runs: int) -> List[float]:
    """Median latency (ms) of one test view at batch 1 of each config's network in its deployed
    form (BN folded, fused, channels-last), random weights (the time does not depend on them)."""
    with intra_op_threads(threads):
        timed = run_benchmark(list(config_files), protocol["num_frames"], protocol["crop_size"],
                              path=ExecutionPath(deploy=True, fuse=True), runs=runs)
    return [t["latency_ms"] for t in timed]


def time_seed(records: Sequence[Dict], threads: int, runs: int) -> List[Dict]:
    """``records`` (one seed's) with ``latency_ms`` from one interleaved run of all their networks
    (:func:`~.models.run_benchmark`) and ``efficiency`` against that seed's R3D in the same run,
    (latency_R3D / latency) / (GFLOPs_R3D / GFLOPs): 1.0 turns GFLOPs saved into time saved."""
    if not records:
        return []
    # every run's file is config.yaml: the run folder as a (neutral) override makes each spec's name unique
    specs = [f"{os.path.join(r['run_dir'], 'config.yaml')}@OUTPUT_DIR={r['run_dir']}" for r in records]
    latencies = _time(specs, records[0]["protocol"], threads, runs)
    timed = [{**r, "latency_ms": ms, "latency_threads": threads} for r, ms in zip(records, latencies)]
    r3d = next((r for r in timed if r["row"] == "r3d"), None)
    for r in timed if r3d else []:
        r["efficiency"] = (r3d["latency_ms"] / r["latency_ms"]) / (r3d["gflops_per_view"] / r["gflops_per_view"])
    return timed


def read_json(path: str):
    with open(path) as f:
        return json.load(f)


METRICS = ("top1", "pair_accuracy", "gflops_per_view", "params", "latency_ms", "efficiency", "epochs", "seconds")


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
                        **{m: mean_and_sem([r[m] for r in mine]) for m in METRICS if all(m in r for r in mine)}})
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
             "| model | top-1 % | pair acc. | GFLOPs/view | params (M) | latency (ms) | efficiency vs R3D "
             "| epochs | train time (s) |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['label']} | {cell(r['top1'])} | {cell(r['pair_accuracy'], digits=3)} "
              f"| {cell(r['gflops_per_view'], digits=4)} | {cell(r['params'], 1e-6, 3)} "
              f"| {cell(r['latency_ms'], digits=2)} "
              f"| {cell(r['efficiency'], digits=2) if 'efficiency' in r else ''} | {r['epochs']['mean']:.0f} "
              f"| {r['seconds']['mean']:.0f} |" for r in table["rows"]]
    lines += [f"\n{f['row']}, seed {f['seed']}: not run: {f['error']}" for f in table["failed"]]
    return "\n".join(lines) + "\n"


def plot(rows: Sequence[Dict], x_metric: str, x_label: str, path: str, y_metric: str = "top1") -> str:
    """Top-1 against ``x_metric``, one point per row with error bars (standard errors) both ways."""
    fig = new_figure(7.5, 5)
    ax = fig.add_subplot()
    for i, r in enumerate(rows):  # the colour cycle has 10 colours: the next 10 rows get squares
        ax.errorbar(r[x_metric]["mean"], r[y_metric]["mean"], xerr=r[x_metric]["sem"], yerr=r[y_metric]["sem"],
                    fmt="os^"[i // 10 % 3], capsize=3, label=r["label"])
    ax.set_xlabel(x_label)
    ax.set_ylabel("top-1 %")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_png(fig, path)
