"""Same network, same data, different temporal convolution: the synthetic-benchmark comparison.

Trains and tests one model per op code (``MODEL.TEMPORAL_OP``: "2d" = C2D, "3d", "2plus1d",
"cakes", ...) from one config on one synthetic benchmark, then measures every model's CPU
latency (one view ``[1, 3, T, S, S]`` of the tested protocol) in one interleaved benchmark run,
and writes ``OUTPUT_DIR/comparison.{json,md}``.
"""
import os
from typing import Dict, List, Sequence

from ..config_loader import load_config
from ..engine.demo import (
    DEFAULT_CONFIG,
    SYNTHETIC_FRAMES,
    SYNTHETIC_SIZE,
    SYNTHETIC_VIDEOS_PER_CLASS,
    data_overrides,
    ensure_synthetic,
)
from ..engine.setup import train
from ..engine.testing import run_test
from ..utils.io import write_json
from .models import run_benchmark
from .timing import intra_op_threads

OP_NAMES = {"2d": "C2D", "3d": "R3D", "2plus1d": "R(2+1)D", "cakes": "CAKES (uniform)", "p3d": "P3D", "mc": "MC3"}
DEFAULT_OPS = ("2d", "3d", "2plus1d", "cakes")


def compare_ops(output_dir: str, ops: Sequence[str] = DEFAULT_OPS, config: str = DEFAULT_CONFIG,
                overrides: Sequence[str] = (), videos_per_class: int = SYNTHETIC_VIDEOS_PER_CLASS,
                threads: int = 2, runs: int = 20) -> List[Dict]:
    """Returns one row per op: name, top1, top5, params, gflops_per_view, latency_ms, results path."""
    data_dir = ensure_synthetic(os.path.join(output_dir, "data"), 0, videos_per_class, SYNTHETIC_FRAMES,
                                SYNTHETIC_SIZE)
    rows = []
    for op in ops:
        run_dir = os.path.join(output_dir, op)
        cfg = load_config(config, data_overrides(run_dir, data_dir) + list(overrides) + ["MODEL.TEMPORAL_OP", op])
        train(cfg)
        results = run_test(cfg)
        rows.append({"op": op, "name": OP_NAMES.get(op, op), "results": os.path.join(run_dir, "results.json"),
                     **{k: results[k] for k in ("top1", "top5", "params", "gflops_per_view", "protocol")}})
    protocol = rows[0]["protocol"]  # one for all rows (only MODEL.TEMPORAL_OP differs): time on the tested input
    _add_latency(rows, config, overrides, protocol["num_frames"], protocol["crop_size"], threads, runs)
    _write(output_dir, rows)
    return rows


def _add_latency(rows: List[Dict], config: str, overrides: Sequence[str], frames: int, size: int, threads: int,
                 runs: int) -> None:
    """CPU latency of one view ``[1, 3, frames, size, size]``, all models interleaved in one run
    (efficient CAKES layer).

    ``threads`` 0 keeps torch's current thread count; the caller's count is restored after."""
    specs = [f"{config}@MODEL.TEMPORAL_OP={r['op']}" for r in rows]
    with intra_op_threads(threads) as used:  # the caller's setting, not ours, governs what runs next
        timed = run_benchmark(specs, frames, size, runs=runs, overrides=overrides)
    for row, t in zip(rows, timed):
        row.update(latency_ms=t["latency_ms"], threads=used)


def _write(output_dir: str, rows: List[Dict]) -> None:
    write_json(os.path.join(output_dir, "comparison.json"), rows)
    p = rows[0]["protocol"]
    lines = [f"Synthetic benchmark, {p['num_frames']}x{p['crop_size']}x{p['crop_size']} input, "
             f"{p['num_ensemble_views']} clip x {p['num_spatial_crops']} crops ({p['temporal_protocol']}); "
             f"latency: batch 1, {rows[0]['threads']} CPU threads, median", "",
             "| model | top-1 % | top-5 % | params (M) | GFLOPs/view | latency (ms) |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['name']} | {r['top1']:.1f} | {r['top5']:.1f} | {r['params'] / 1e6:.2f} | {r['gflops_per_view']:.3f} "
              f"| {r['latency_ms']:.1f} |" for r in rows]
    with open(os.path.join(output_dir, "comparison.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
