"""The hard benchmark's table (benchmarks/search_table.py, tools/benchmark_search.py): every row x seed
trained, tested and timed on the tiny setting, the statistics over seeds, the JSON, markdown and the
two plots, and a rerun that reuses the finished runs."""
import json
import math
import os
import sys

import pytest

from cakes_video.benchmarks import search_table
from cakes_video.config import ConfigError
from cakes_video.benchmarks.search_table import ROWS, mean_and_sem, pair_accuracy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import benchmark_search  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_mean_and_standard_error():
    assert mean_and_sem([2.0, 4.0, 9.0]) == pytest.approx({"mean": 5.0, "sem": math.sqrt(13 / 3)})
    assert mean_and_sem([3.0]) == {"mean": 3.0, "sem": 0.0}


def test_pair_accuracy_reads_every_class_score_from_the_predictions(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("video_id,label,label_name,correct,topk_labels,topk_names,topk_scores\n"
                    "a,0,x,0,2;1;0;3,,0.5;0.3;0.2;0\n"  # true 0 below its partner 1: wrong within the pair
                    "b,3,x,0,0;3;2;1,,0.4;0.3;0.2;0.1\n")  # true 3 above its partner 2: right
    assert pair_accuracy(str(path), 4) == 0.5


@pytest.mark.slow
def test_the_table_runs_end_to_end_on_the_tiny_setting_and_a_rerun_reuses_its_runs(tmp_path, monkeypatch):
    out = tmp_path / "table"
    table = benchmark_search.main(["--output-dir", str(out), "--tiny", "--seeds", "2", "--threads", "1"])
    saved = json.load(open(out / "search_table.json"))
    assert saved == json.loads(json.dumps(table))
    # a budget may be out of reach of a network this small (coarse steps, measured latencies): a searched
    # row x seed that misses it is recorded with its error, not fatal; every plain network runs
    searched = {r.name for r in ROWS if r.mode}
    assert all(f["row"] in searched and "SEARCH.DERIVE.BUDGET" in f["error"] for f in saved["failed"])
    assert len(saved["runs"]) + len(saved["failed"]) == 2 * len(ROWS)
    assert len(saved["failed"]) <= 4, saved["failed"]  # most searched rows make it
    recorded = {r["row"] for r in saved["runs"]}
    assert [r["row"] for r in saved["rows"]] == [r.name for r in ROWS if r.name in recorded]
    assert {r.name for r in ROWS if not r.mode} <= recorded
    for row in saved["rows"]:
        mine = [r for r in saved["runs"] if r["row"] == row["row"]]
        missed = [f["seed"] for f in saved["failed"] if f["row"] == row["row"]]
        assert sorted([r["seed"] for r in mine] + missed) == [0, 1] and row["seeds"] == len(mine)
        for metric in ("top1", "pair_accuracy", "gflops_per_view", "params", "latency_ms"):
            assert row[metric] == pytest.approx(mean_and_sem([r[metric] for r in mine]))
        for r in mine:
            assert 0 <= r["top1"] <= 100 and 0 <= r["pair_accuracy"] <= 1
            assert r["gflops_per_view"] > 0 and r["params"] > 0 and r["latency_ms"] > 0 and r["latency_threads"] == 1
    runs = {(r["row"], r["seed"]): r for r in saved["runs"]}
    for (name, seed), run in runs.items():  # the searched networks meet their budgets, fractions of the seed's R3D
        row = next(r for r in ROWS if r.name == name)
        if row.mode and row.budget_kind == "gflops":
            assert run["gflops_per_view"] <= row.fraction * runs["r3d", seed]["gflops_per_view"] * 1.0001
        if row.shrink:
            assert run["run_dir"].startswith(str(out / "supernets" / "shrink"))
    md = (out / "search_table.md").read_text()
    assert all(f"| {row.label} |" in md for row in ROWS)
    for png in ("accuracy_vs_gflops.png", "accuracy_vs_latency.png"):
        assert (out / png).read_bytes()[:8] == PNG_SIGNATURE
    # a rerun trains nothing: every finished row x seed is read back from its row.json, and only the
    # failed ones are tried again
    def refuse(*args, **kwargs):
        raise AssertionError("a finished run was run again")
    retried = []
    def search_again(cfg):
        retried.append(cfg.OUTPUT_DIR)
        raise ConfigError("SEARCH.DERIVE.BUDGET: missed again")
    monkeypatch.setattr(search_table, "train", refuse)
    monkeypatch.setattr(search_table, "search", search_again)
    monkeypatch.setattr(search_table, "latency_ms", refuse)
    again = benchmark_search.main(["--output-dir", str(out), "--tiny", "--seeds", "2", "--threads", "1"])
    assert again["runs"] == table["runs"] and len(retried) == len(saved["failed"])
    assert [(f["row"], f["seed"]) for f in again["failed"]] == [(f["row"], f["seed"]) for f in saved["failed"]]


def test_a_bad_override_fails_once_before_any_data_or_run(tmp_path):
    with pytest.raises(ConfigError, match="FOO"):
        benchmark_search.main(["--output-dir", str(tmp_path / "table"), "--tiny", "FOO", "1"])
    assert not (tmp_path / "table").exists()
