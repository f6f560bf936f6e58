"""Complexity figures against torchvision's published ones; the benchmark tool's output schema.

No test asserts a timing: only that latencies are measured, positive and reported.
"""
import json
import os
import sys

import pytest
import torch
from torch import nn
from torchvision.models import video

from cakes_video.utils import benchmark
from cakes_video.utils.complexity import count_gflops, count_params

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "tools"))
import benchmark_net  # noqa: E402

# torchvision.models.video model cards at 16x112x112: (conv+linear GFLOPs, params).
PUBLISHED = {"r3d_18": (40.697, 33_371_472), "mc3_18": (43.343, 11_695_440), "r2plus1d_18": (40.519, 31_505_325)}
TINY = ["--frames", "4", "--size", "32", "--runs", "2", "--warmup", "1",
        "--opts", "MODEL.DEPTH", "10", "MODEL.NUM_CLASSES", "5"]
SCHEMA = {"name": str, "params": int, "gflops": float, "gflops_conv_linear": float, "latency_ms": float,
          "clips_per_s": float}


def _config(name):
    path = os.path.join(REPO, "model_zoo", "configs", f"{name}.yaml")
    if not os.path.isfile(path):
        pytest.skip(f"{path} not in this checkout")
    return path


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_torchvision_published_figures(name):
    gflops, params = PUBLISHED[name]
    model = benchmark.build_from_spec(f"torchvision:{name}")
    assert type(model) is type(getattr(video, name)(weights=None, num_classes=1))
    cost = count_gflops(model, (3, 16, 112, 112))
    assert count_params(model) == params
    assert cost["gflops_conv_linear"] == pytest.approx(gflops, rel=1e-3)
    assert cost["gflops"] > cost["gflops_conv_linear"]  # BatchNorm is counted in the total only
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_zoo_configs_match_torchvision(name):
    model = benchmark.build_from_spec(_config(name))
    gflops, params = PUBLISHED[name]
    assert count_params(model) == params
    assert count_gflops(model, (3, 16, 112, 112))["gflops_conv_linear"] == pytest.approx(gflops, rel=1e-3)


def test_count_gflops_rejects_a_batched_shape():
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        count_gflops(nn.Conv3d(3, 4, 1), (1, 3, 4, 8, 8))


def _run(tmp_path, *args, fast=False):
    out = tmp_path / "bench.json"
    extra = ["--runs", "1", "--warmup", "0"] if fast else []
    assert benchmark_net.main([*args, *TINY, "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def _check_schema(results, names):
    assert [r["name"] for r in results] == names
    for r in results:
        for key, kind in SCHEMA.items():
            assert isinstance(r[key], kind), key
        assert r["params"] > 0 and r["gflops"] >= r["gflops_conv_linear"] > 0
        assert r["latency_ms"] > 0 and r["clips_per_s"] == pytest.approx(1e3 / r["latency_ms"])


def test_json_schema_plain_run(tmp_path, capsys):
    r3d = _config("r3d_18")
    results = _run(tmp_path, r3d, r3d.replace("r3d_18", "r2plus1d_18"))
    _check_schema(results, ["r3d_18", "r2plus1d_18"])
    assert "efficiency" not in results[0]
    assert "r2plus1d_18" in capsys.readouterr().out  # the printed table


def test_json_schema_compare_deployed(tmp_path):
    r3d = _config("r3d_18")
    results = _run(tmp_path, r3d, r3d.replace("r3d_18", "mc3_18"), "--compare", "--deploy")
    _check_schema(results, ["r3d_18", "mc3_18"])
    assert results[0]["efficiency"] == pytest.approx(1.0)
    base, other = results
    expected = (base["latency_ms"] / other["latency_ms"]) / (base["gflops"] / other["gflops"])
    assert other["efficiency"] == pytest.approx(expected)
    assert "speedup_vs_reference" not in other


def test_compare_train_step_reports_speedup_of_cakes_models(tmp_path):
    r3d = _config("r3d_18")
    with pytest.raises(ValueError, match="twice"):
        _run(tmp_path, r3d, r3d)
    # One step each: a train step of these nets is slow on a loaded CPU.
    results = _run(tmp_path, r3d, r3d + "@MODEL.TEMPORAL_OP=cakes", "--compare", "--train-step", fast=True)
    _check_schema(results, ["r3d_18", "r3d_18@MODEL.TEMPORAL_OP=cakes"])
    assert results[1]["speedup_vs_reference"] > 0 and "speedup_vs_reference" not in results[0]
    assert results[1]["gflops"] < results[0]["gflops"]


def test_bad_specs_and_arguments_are_rejected():
    with pytest.raises(ValueError, match="no model 'r4d_18'"):
        benchmark.build_from_spec("torchvision:r4d_18")
    with pytest.raises(SystemExit):
        benchmark_net.parse_args(["x.yaml", "--frames", "0", "--size", "32"])
    with pytest.raises(ValueError, match="train step"):
        benchmark.prepare(nn.Conv3d(3, 4, 1), "cpu", True, deploy=True, train=True)


def test_interleaved_runs_rotate_the_first_model():
    calls = []
    steps = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = benchmark.interleaved_times(steps, runs=3, warmup=1, sync=lambda: None)
    assert calls == list("abc" "abc" "bca" "cab")
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)


def test_format_table_lists_every_model():
    rows = [{"name": "a", "params": 10, "gflops": 1.0, "gflops_conv_linear": 0.9, "latency_ms": 2.0,
             "latency_min_ms": 1.5, "clips_per_s": 500.0}]
    table = benchmark.format_table(rows).splitlines()
    assert table[0].split()[:2] == ["name", "params"] and table[1].split()[:3] == ["a", "10", "1.00"]
    assert torch.get_num_threads() >= 1


def test_per_model_overrides_in_specs():
    assert benchmark.split_spec("a/r3d_18.yaml@MODEL.DEPTH=10@MODEL.TEMPORAL_OP=cakes") == (
        "a/r3d_18.yaml", ["MODEL.DEPTH", "10", "MODEL.TEMPORAL_OP", "cakes"])
    assert benchmark.spec_name("a/r3d_18.yaml@MODEL.DEPTH=10") == "r3d_18@MODEL.DEPTH=10"
    with pytest.raises(ValueError, match="@KEY=VALUE"):
        benchmark.split_spec("r3d_18.yaml@MODEL.DEPTH")
    model = benchmark.build_from_spec(_config("r3d_18") + "@MODEL.TEMPORAL_OP=cakes", ["MODEL.DEPTH", "10"])
    assert benchmark.has_cakes(model) and len(model.layer1) == 1
