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
from cakes_video.config_loader import load_config
from cakes_video.benchmarks.search_table import ROWS, mean_and_sem, pair_accuracy

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools"))
import benchmark_search  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_mean_and_standard_error():
    assert mean_and_sem([2.0, 4.0, 9.0]) == pytest.approx({"mean": 5.0, "sem": math.sqrt(13 / 3)})
    assert mean_and_sem([3.0]) == {"mean": 3.0, "sem": 0.0}


def test_a_searched_row_trains_as_many_epochs_as_a_plain_one():
    budget = load_config(search_table.CONFIG).SOLVER.MAX_EPOCH
    from_scratch = [r for r in ROWS if r.kind == "search" and not r.shrink]
    assert len(from_scratch) == 6 and all(2 * r.epochs == budget for r in from_scratch)  # supernet + derived
    assert all(r.epochs == 0 for r in ROWS if r.kind in ("plain", "scratch"))  # the config's budget


def test_pair_accuracy_reads_every_class_score_from_the_predictions(tmp_path):
    path = tmp_path / "predictions.csv"
    path.write_text("video_id,label,label_name,correct,topk_labels,topk_names,topk_scores\n"
                    "a,0,x,0,2;1;0;3,,0.5;0.3;0.2;0\n"  # true 0 below its partner 1: wrong within the pair
                    "b,3,x,0,0;3;2;1,,0.4;0.3;0.2;0.1\n")  # true 3 above its partner 2: right
    assert pair_accuracy(str(path), 4) == 0.5


def _record(row, seed, top1, **extra):
    return {"row": row, "label": row.upper(), "seed": seed, "run_dir": f"/runs/{row}/seed{seed}", "top1": top1,
            "pair_accuracy": 0.5, "gflops_per_view": {"r3d": 0.08, "cakes": 0.05}[row], "params": 1e6, "epochs": 20,
            "seconds": 60.0, "protocol": {"num_frames": 8, "crop_size": 56}, **extra}


def test_each_seed_is_timed_in_one_run_and_its_efficiency_is_against_its_r3d(monkeypatch):
    timed_specs = []
    def fake_time(specs, protocol, threads, runs):
        timed_specs.append(specs)
        return [10.0, 8.0]
    monkeypatch.setattr(search_table, "_time", fake_time)
    r3d, cakes = search_table.time_seed([_record("r3d", 0, 60.0), _record("cakes", 0, 62.0)], threads=2, runs=5)
    assert len(timed_specs) == 1 and len(set(timed_specs[0])) == 2  # one interleaved run, one name per network
    assert r3d["efficiency"] == 1.0 and r3d["latency_ms"] == 10.0 and cakes["latency_threads"] == 2
    # 0.625x the GFLOPs in 0.8x the time: (10 / 8) / (0.08 / 0.05)
    assert cakes["efficiency"] == pytest.approx(0.78125)


def test_the_rows_statistics_are_over_their_seeds_and_a_row_that_never_ran_is_left_out():
    rows = [search_table.Row("r3d", "R3D", kind="plain", op="3d"), search_table.Row("cakes", "CAKES"),
            search_table.Row("never", "NEVER")]
    records = [_record("r3d", 0, 60.0, latency_ms=10.0, efficiency=1.0), _record("r3d", 1, 64.0, latency_ms=12.0, efficiency=1.0),
               _record("cakes", 0, 61.0, latency_ms=9.0)]  # no efficiency: its seed had no R3D
    summary = search_table.summarise(records, rows)
    assert [r["row"] for r in summary] == ["r3d", "cakes"] and [r["seeds"] for r in summary] == [2, 1]
    assert summary[0]["top1"] == pytest.approx({"mean": 62.0, "sem": 2.0})
    assert summary[0]["latency_ms"] == pytest.approx({"mean": 11.0, "sem": 1.0})
    assert "efficiency" not in summary[1] and summary[1]["top1"] == {"mean": 61.0, "sem": 0.0}
    md = search_table.markdown({"config": "c", "seeds": 2, "latency_threads": 2, "rows": summary, "failed": [
        {"row": "never", "seed": 0, "error": "SEARCH.DERIVE.BUDGET: out of reach"}]})
    assert "| R3D | 62.0 ± 2.0 |" in md and "| 1.00 ± 0.00 | 20 | 60 |" in md
    assert "never, seed 0: not run: SEARCH.DERIVE.BUDGET: out of reach" in md


@pytest.mark.slow
def test_the_table_runs_end_to_end_on_the_tiny_setting_and_a_rerun_reuses_its_runs(tmp_path, monkeypatch):
    out = tmp_path / "table"
    # one seed: the statistics over seeds are checked on records below (test_the_rows_statistics_...)
    table = benchmark_search.main(["--output-dir", str(out), "--tiny", "--seeds", "1", "--threads", "1"])
    saved = json.load(open(out / "search_table.json"))
    assert saved == json.loads(json.dumps(table))
    # a budget may be out of reach of a network this small (coarse steps, measured latencies): a searched
    # row x seed that misses it is recorded with its error, not fatal; every plain network runs
    # (and a row built on a missed one: its shrink's from-scratch twin) is recorded with its error, not fatal
    searched = {r.name for r in ROWS if r.kind == "search"}
    dependent = {r.name for r in ROWS if r.kind == "scratch"}
    assert all((f["row"] in searched and "SEARCH.DERIVE.BUDGET" in f["error"]) or
               (f["row"] in dependent and "which did not run" in f["error"]) for f in saved["failed"])
    assert len(saved["runs"]) + len(saved["failed"]) == len(ROWS)
    assert len(saved["failed"]) <= 3, saved["failed"]  # most searched rows make it
    recorded = {r["row"] for r in saved["runs"]}
    assert [r["row"] for r in saved["rows"]] == [r.name for r in ROWS if r.name in recorded]
    assert {r.name for r in ROWS if r.kind in ("plain", "shrink_uniform")} <= recorded
    for row in saved["rows"]:
        mine = [r for r in saved["runs"] if r["row"] == row["row"]]
        missed = [f["seed"] for f in saved["failed"] if f["row"] == row["row"]]
        assert sorted([r["seed"] for r in mine] + missed) == [0] and row["seeds"] == len(mine)
        for metric in ("top1", "pair_accuracy", "gflops_per_view", "params", "latency_ms", "efficiency", "epochs"):
            assert row[metric] == pytest.approx(mean_and_sem([r[metric] for r in mine]))
        for r in mine:
            assert 0 <= r["top1"] <= 100 and 0 <= r["pair_accuracy"] <= 1
            assert r["gflops_per_view"] > 0 and r["params"] > 0 and r["latency_ms"] > 0 and r["latency_threads"] == 1
            assert r["epochs"] == (2 if next(x for x in ROWS if x.name == r["row"]).kind == "search" else 1)
    runs = {(r["row"], r["seed"]): r for r in saved["runs"]}
    for (name, seed), run in runs.items():  # the searched networks meet their budgets, fractions of the seed's R3D
        row = next(r for r in ROWS if r.name == name)
        if row.kind == "search" and row.budget_kind == "gflops":
            assert run["gflops_per_view"] <= row.fraction * runs[row.reference, seed]["gflops_per_view"] * 1.0001
        if row.shrink:
            assert run["run_dir"].startswith(str(out / "supernets" / "shrink"))
        if row.kind == "scratch":  # the source row's network, trained again
            assert run["params"] == runs[row.source, seed]["params"] and run["run_dir"] != runs[row.source, seed]["run_dir"]
        if row.kind == "shrink_uniform":  # uniform CAKES, from R3D's weights
            assert run["params"] == runs["cakes_uniform", seed]["params"]
    md = (out / "search_table.md").read_text()
    assert all(f"| {row.label} |" in md for row in ROWS if row.name in recorded)
    assert all(f"{f['row']}, seed {f['seed']}: not run" in md for f in saved["failed"])
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
    monkeypatch.setattr(search_table, "shrink_to_config", refuse)
    again = benchmark_search.main(["--output-dir", str(out), "--tiny", "--seeds", "1", "--threads", "1"])
    untimed = lambda runs: [{k: v for k, v in r.items() if k not in ("latency_ms", "efficiency")} for r in runs]  # noqa: E731
    assert untimed(again["runs"]) == untimed(table["runs"])  # timed again, in one run per seed
    assert len(retried) == len([f for f in saved["failed"] if f["row"] in searched])
    assert [(f["row"], f["seed"]) for f in again["failed"]] == [(f["row"], f["seed"]) for f in saved["failed"]]


def test_a_bad_override_fails_once_before_any_data_or_run(tmp_path):
    with pytest.raises(ConfigError, match="FOO"):
        benchmark_search.main(["--output-dir", str(tmp_path / "table"), "--tiny", "FOO", "1"])
    assert not (tmp_path / "table").exists()
