"""Complexity figures against torchvision's published ones; the benchmark tool's output schema.

No test asserts a timing: only that latencies are measured, positive and reported.
"""
import dataclasses
import json
import os
import re

import pytest
import torch
from torch import nn
from torchvision.models import video

from cakes_video.benchmarks import breakdown, cli, execution, models, timing
from cakes_video.config import get_config_file
from cakes_video.engine.cli import run_tool
from cakes_video.models.cakes import CakesConv3d, build_cakes_layer
from cakes_video.models.complexity import conv_linear_gflops_by_module, count_gflops, count_params
from cakes_video.models.fusion import FusedConv3d
from cakes_video.models.inference import inference_form
from cakes_video.models.rewrite import to_reference
from cakes_video.models.subkernels import conv_cost

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# torchvision.models.video model cards at 16x112x112: (conv+linear GFLOPs, params).
PUBLISHED = {"r3d_18": (40.697, 33_371_472), "mc3_18": (43.343, 11_695_440), "r2plus1d_18": (40.519, 31_505_325)}
TINY = ["--frames", "4", "--size", "32", "--runs", "2", "--warmup", "1",
        "--opts", "MODEL.DEPTH", "10", "MODEL.NUM_CLASSES", "5"]
SCHEMA = {"name": str, "params": int, "gflops": float, "gflops_conv_linear": float, "latency_ms": float,
          "clips_per_s": float}


def _config(name):
    return get_config_file(name)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_torchvision_published_figures(name):
    gflops, params = PUBLISHED[name]
    model = models.build_from_spec(f"torchvision:{name}")
    expected = getattr(video, name)(weights=None, num_classes=1)
    assert [m.kernel_size for m in model.modules() if isinstance(m, nn.Conv3d)] == \
        [m.kernel_size for m in expected.modules() if isinstance(m, nn.Conv3d)]  # the named model, not a sibling
    cost = count_gflops(model, (3, 16, 112, 112))
    assert count_params(model) == params
    assert cost["gflops_conv_linear"] == pytest.approx(gflops, rel=1e-3)
    assert cost["gflops"] > cost["gflops_conv_linear"]  # BatchNorm is counted in the total only
    assert model.training  # the caller's mode is restored


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_zoo_configs_match_torchvision(name):
    model = models.build_from_spec(_config(name))
    gflops, params = PUBLISHED[name]
    assert count_params(model) == params
    assert count_gflops(model, (3, 16, 112, 112))["gflops_conv_linear"] == pytest.approx(gflops, rel=1e-3)


def test_count_gflops_rejects_a_batched_shape():
    with pytest.raises(ValueError, match=r"\(C, T, H, W\)"):
        count_gflops(nn.Conv3d(3, 4, 1), (1, 3, 4, 8, 8))


def _run(tmp_path, *args, fast=False):
    out = tmp_path / "bench.json"
    extra = ["--runs", "1", "--warmup", "0"] if fast else []
    assert cli.net_main([*args, *TINY, "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


def _check_schema(results, names):
    assert [r["name"] for r in results] == names
    for r in results:
        for key, kind in SCHEMA.items():
            assert isinstance(r[key], kind), key
        assert r["params"] > 0 and r["gflops"] >= r["gflops_conv_linear"] > 0
        assert r["latency_ms"] > 0 and r["clips_per_s"] == pytest.approx(1e3 / r["latency_ms"])


def _rejected(call, message, flag_message):
    """``call()`` raises a SettingError matching ``message`` that names settings, not flags; the
    tools' rendering of it (their flags) matches ``flag_message``."""
    with pytest.raises(execution.SettingError, match=message) as err:
        call()
    assert "--" not in str(err.value)
    assert re.search(flag_message, err.value.render(cli.NET_FLAGS)), err.value.render(cli.NET_FLAGS)


def test_json_schema_plain_run(tmp_path, capsys):
    r3d = _config("r3d_18")
    results = _run(tmp_path, r3d, r3d.replace("r3d_18", "r2plus1d_18"))
    _check_schema(results, ["r3d_18", "r2plus1d_18"])
    assert "efficiency" not in results[0]
    assert {r["execution"] for r in results} == {"inference; cpu, channels_last"}
    assert "r2plus1d_18" in capsys.readouterr().out  # the printed table


def test_json_schema_compare_deployed(tmp_path):
    r3d = _config("r3d_18")
    results = _run(tmp_path, r3d, r3d.replace("r3d_18", "mc3_18"), "--compare", "--deploy")
    _check_schema(results, ["r3d_18", "mc3_18"])
    assert results[0]["efficiency"] == pytest.approx(1.0)
    assert {r["execution"] for r in results} == {"inference, deployed; cpu, channels_last"}
    base, other = results
    expected = (base["latency_ms"] / other["latency_ms"]) / (base["gflops"] / other["gflops"])
    assert other["efficiency"] == pytest.approx(expected)
    assert "speedup_vs_reference" not in other


def test_compare_train_step_reports_speedup_of_cakes_models(tmp_path):
    r3d = _config("r3d_18")
    # One step each: a train step of these nets is slow on a loaded CPU.
    results = _run(tmp_path, r3d, r3d + "@MODEL.TEMPORAL_OP=cakes", "--compare", "--train-step", fast=True)
    _check_schema(results, ["r3d_18", "r3d_18@MODEL.TEMPORAL_OP=cakes"])
    assert results[1]["speedup_vs_reference"] > 0 and "speedup_vs_reference" not in results[0]
    assert results[1]["gflops"] < results[0]["gflops"]


@pytest.mark.slow
def test_onnxruntime_rows_time_the_same_models_in_the_same_run(tmp_path, capsys):
    r3d, narrow = _config("r3d_18"), TINY + ["MODEL.BASE_WIDTH", "8"]  # exports take seconds per model
    out = tmp_path / "bench.json"
    assert cli.net_main([r3d, "--runtime", "onnxruntime", "--threads", "2", *narrow, "--json", str(out)]) == 0
    results = json.loads(out.read_text())
    _check_schema(results, ["r3d_18", "r3d_18 [onnxruntime]"])
    assert [r["runtime"] for r in results] == ["pytorch", "onnxruntime"]
    assert results[1]["execution"].startswith("inference; onnxruntime ") and results[1]["execution"].endswith(
        "cpu, 2 threads")
    assert {k: results[1][k] for k in ("params", "gflops")} == {k: results[0][k] for k in ("params", "gflops")}
    assert "r3d_18 [onnxruntime]  onnxruntime" in capsys.readouterr().out
    # a CAKES model and its reference twin: ONNX Runtime runs the same networks as PyTorch
    entries = models.build_entries([r3d + "@MODEL.TEMPORAL_OP=cakes"], 4, 32, with_reference=True,
                                   runtimes=["onnxruntime"], overrides=narrow[narrow.index("--opts") + 1:])
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        for model in (entries[1].model, entries[1].reference):
            assert (model(x) - entries[0].model.eval()(x)).abs().max() < 1e-4
    cakes = models.measure(entries, 4, 32, runs=1, warmup=0, compare=True)
    assert cakes[1]["speedup_vs_reference"] > 0 and cakes[1]["efficiency"] > 0  # against the PyTorch base


@pytest.mark.parametrize("argv, message", [
    (["--runtime", "tensorrt"], r"unknown --runtime 'tensorrt'; expected one of \['onnxruntime'\]"),
    (["--runtime", "onnxruntime", "--train-step"], "--runtime onnxruntime times float32 inference on the CPU"),
    (["--runtime", "onnxruntime", "--compare", "--breakdown"], "not with --device other than cpu, --train-step"),
])
def test_runtimes_are_checked_before_anything_is_built(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_net_args(["x.yaml", *argv, "--frames", "4", "--size", "32"])
    assert re.search(message, capsys.readouterr().err)


def test_bad_specs_and_arguments_are_rejected():
    with pytest.raises(ValueError, match="no model 'r4d_18'"):
        models.build_from_spec("torchvision:r4d_18")
    with pytest.raises(ValueError, match="twice"):  # results are keyed by name
        models.build_entries([_config("r3d_18")] * 2, 4, 32)
    with pytest.raises(SystemExit):
        cli.parse_net_args(["x.yaml", "--frames", "0", "--size", "32"])


def test_interleaved_runs_rotate_the_first_model():
    calls = []
    steps = {name: (lambda n=name: calls.append(n)) for name in "abc"}
    times = timing.interleaved_times(steps, runs=3, warmup=1, sync=lambda: None)
    assert calls == list("abc" "abc" "bca" "cab")
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3, "c": 3}
    assert all(t >= 0 for v in times.values() for t in v)


def test_timing_core_syncs_around_every_timed_call_and_keeps_the_best():
    events = []
    ticks = iter([0.0, 1.0])

    def clock():
        events.append("clock")
        return next(ticks)

    assert timing.timed_call(lambda: events.append("call") or 7, lambda: events.append("sync"), clock) == (7, 1.0)
    assert events == ["sync", "clock", "call", "sync", "clock"]  # the span covers the call and its queued work
    marks = iter([0.0, 3.0, 10.0, 11.0, 20.0, 22.0])  # spans 3, 1, 2
    assert timing.best_seconds(lambda: None, 3, clock=lambda: next(marks)) == 1.0
    assert timing.median_ms([0.003, 0.001, 0.002]) == pytest.approx(2.0) and timing.best_ms([0.003, 0.001]) == 1.0


def test_format_table_lists_every_model():
    rows = [{"name": "a", "params": 10, "gflops": 1.0, "gflops_conv_linear": 0.9, "latency_ms": 2.0,
             "latency_min_ms": 1.5, "clips_per_s": 500.0},
            {"name": "bb", "params": 12345, "gflops": 0.5, "gflops_conv_linear": 0.4, "latency_ms": 1.0,
             "latency_min_ms": 0.9, "clips_per_s": 1000.0, "efficiency": 1.25}]
    table = models.format_table(rows).splitlines()
    assert table[0].split()[:2] == ["name", "params"] and table[1].split()[:3] == ["a", "10", "1.00"]
    assert table[0].split()[-1] == "efficiency" and "speedup_vs_reference" not in table[0]  # only keys some row has
    assert table[1].split()[-1] == "-" and table[2].split() == ["bb", "12,345", "0.50", "0.40", "1.0", "0.9",
                                                                "1000.00", "1.250"]
    assert len({len(line) for line in table}) == 1  # aligned: every line as wide


def test_tool_times_with_the_threads_asked_for_and_restores_the_callers(tmp_path, capsys, monkeypatch):
    previous = torch.get_num_threads()
    asked = 1 if previous != 1 else 2
    seen = []

    def recording_step(model, x, path):
        step = execution.make_step(model, x, path)
        return lambda: (seen.append(torch.get_num_threads()), step())

    monkeypatch.setattr(models, "make_step", recording_step)
    _run(tmp_path, _config("r3d_18"), "--threads", str(asked), fast=True)
    assert seen and set(seen) == {asked}  # every timed call ran with the threads asked for
    assert f", {asked} threads," in capsys.readouterr().out  # and the header says so
    assert torch.get_num_threads() == previous  # the caller's count is back
    with timing.intra_op_threads(0) as used:  # 0 keeps the current count
        assert used == previous == torch.get_num_threads()


def test_per_model_overrides_in_specs():
    assert models.split_spec("a/r3d_18.yaml@MODEL.DEPTH=10@MODEL.TEMPORAL_OP=cakes") == (
        "a/r3d_18.yaml", ["MODEL.DEPTH", "10", "MODEL.TEMPORAL_OP", "cakes"])
    assert models.spec_name("a/r3d_18.yaml@MODEL.DEPTH=10") == "r3d_18@MODEL.DEPTH=10"
    with pytest.raises(ValueError, match="@KEY=VALUE"):
        models.split_spec("r3d_18.yaml@MODEL.DEPTH")
    model = models.build_from_spec(_config("r3d_18") + "@MODEL.TEMPORAL_OP=cakes", ["MODEL.DEPTH", "10"])
    assert breakdown.cakes_layer_names(model) and len(model.layer1) == 1


# --- --breakdown: where the time goes -----------------------------------------------------------

TINY_OVERRIDES = ["MODEL.DEPTH", "10", "MODEL.NUM_CLASSES", "5"]
CAKES_KEYS = ("cakes_layers_ms", "reference_cakes_layers_ms", "reference_hooked_total_ms", "cakes_layers_gflops",
              "cakes_layers_gflops_per_s", "cakes_layers_share", "cakes_layers_speedup_vs_reference",
              "speedup_ceiling", "speedup_at_dense_rate", "efficiency_at_dense_rate")


def _gflops_by_hand(spec):
    """Conv MACs (GFLOPs) of one 4x32x32 view inside (CAKES layers, dense convs), from output shapes."""
    model = models.build_from_spec(spec, TINY_OVERRIDES).eval()
    totals = {"cakes": 0, "dense": 0}

    def count(module, args, out):
        if isinstance(module, CakesConv3d):
            totals["cakes"] += conv_cost(module.counts, module.convs[0].in_channels, tuple(out.shape[2:]))[1]
        elif min(module.kernel_size) > 1:  # a Conv3d outside a CAKES layer (the efficient one skips its convs)
            totals["dense"] += out.numel() * module.weight[0].numel()  # C_out*T*H*W x C_in*kT*kH*kW
    for m in model.modules():
        if isinstance(m, (CakesConv3d, nn.Conv3d)):
            m.register_forward_hook(count)
    with torch.no_grad():
        model(torch.zeros(1, 3, 4, 32, 32))
    return totals["cakes"] / 1e9, totals["dense"] / 1e9


def _check_breakdown(base, cakes):
    for key in ("dense_conv_ms", "dense_conv_gflops", "dense_gflops_per_s", "hooked_total_ms"):
        assert base[key] > 0, key
    assert not any(k in base for k in CAKES_KEYS)
    assert base["dense_gflops_per_s"] == pytest.approx(base["dense_conv_gflops"] / (base["dense_conv_ms"] / 1e3))
    assert base["dense_conv_ms"] < base["hooked_total_ms"]
    for key in CAKES_KEYS + ("hooked_total_ms",):
        assert cakes[key] > 0, key
    share = cakes["cakes_layers_share"]
    assert 0 < share < 1
    assert share == pytest.approx(cakes["reference_cakes_layers_ms"] / cakes["reference_hooked_total_ms"])
    assert cakes["speedup_ceiling"] == pytest.approx(1 / (1 - share))
    assert cakes["cakes_layers_speedup_vs_reference"] == pytest.approx(
        cakes["reference_cakes_layers_ms"] / cakes["cakes_layers_ms"])
    total, layers = cakes["reference_hooked_total_ms"], cakes["reference_cakes_layers_ms"]
    at_rate_ms = cakes["cakes_layers_gflops"] / base["dense_gflops_per_s"] * 1e3
    assert cakes["speedup_at_dense_rate"] == pytest.approx(total / (total - layers + at_rate_ms))
    hooked = cakes["hooked_total_ms"] - cakes["cakes_layers_ms"] + at_rate_ms
    expected = (base["hooked_total_ms"] / hooked) / (base["gflops"] / cakes["gflops"])
    assert cakes["efficiency_at_dense_rate"] == pytest.approx(expected)


def test_breakdown_reports_layer_share_flops_and_ceilings(tmp_path, capsys):
    r3d = _config("r3d_18")
    spec = r3d + "@MODEL.TEMPORAL_OP=cakes"
    base, cakes = _run(tmp_path, r3d, spec, "--compare", "--breakdown")
    _check_breakdown(base, cakes)
    cakes_gflops, _ = _gflops_by_hand(spec)
    _, dense_gflops = _gflops_by_hand(r3d)
    assert cakes["cakes_layers_gflops"] == pytest.approx(cakes_gflops, rel=1e-9)
    assert base["dense_conv_gflops"] == pytest.approx(dense_gflops, rel=1e-9)
    assert cakes_gflops < cakes["gflops_conv_linear"]  # the stem, shortcuts and head are outside
    layers = cakes["cakes_layers"]  # one row per CAKES layer, in forward order
    assert [row["name"] for row in layers] == [f"layer{s}.0.conv{c}" for s in range(1, 5) for c in (1, 2)]
    assert sum(row["gflops"] for row in layers) == pytest.approx(cakes_gflops, rel=1e-9)
    assert all(row["ms"] > 0 and row["gflops_per_s"] == pytest.approx(row["gflops"] / row["ms"] * 1e3)
               for row in layers)
    assert [row["name"] for row in base["dense_convs"]][:2] == ["stem.conv", "layer1.0.conv1.conv"]
    printed = capsys.readouterr().out
    assert "where the time goes" in printed and "speedup_ceiling" in printed and "layer4.0.conv2" in printed


@pytest.mark.parametrize("flags", [["--deploy"], ["--deploy", "--fuse"]])
def test_breakdown_of_deployed_models_hooks_the_deployed_layers(tmp_path, flags):
    r3d = _config("r3d_18")
    spec = r3d + "@MODEL.TEMPORAL_OP=cakes"
    base, cakes = _run(tmp_path, r3d, spec, "--compare", "--breakdown", *flags, fast=True)
    _check_breakdown(base, cakes)  # every time > 0: the hooks fired on the deployed layers / fused convs
    assert cakes["cakes_layers_gflops"] == pytest.approx(_gflops_by_hand(spec)[0], rel=1e-9)


def test_breakdown_needs_compare(capsys):
    with pytest.raises(SystemExit):
        cli.parse_net_args(["x.yaml", "--frames", "4", "--size", "32", "--breakdown"])
    assert "--breakdown needs --compare" in capsys.readouterr().err
    _rejected(lambda: models.run_benchmark(["x.yaml"], 4, 32, breakdown=True), "^breakdown needs compare",
              "--breakdown needs --compare")


def test_hook_timer_fires_on_every_deployed_cakes_layer():
    model = models.build_from_spec(_config("r3d_18") + "@MODEL.TEMPORAL_OP=cakes", TINY_OVERRIDES).eval()
    gm = inference_form(model, fuse=True, channels_last=False)
    names = breakdown.cakes_layer_names(gm)
    assert names == breakdown.cakes_layer_names(model) and len(names) == 8  # 4 blocks x 2 layers
    assert breakdown.dense_conv_names(gm) == ["stem.conv"]  # CAKES layers' own convs are not "dense"
    clock = timing.WallClock(lambda: None)
    with breakdown.HookTimer(gm, {"cakes": names}, clock) as timer, torch.inference_mode():
        gm(torch.zeros(1, 3, 4, 32, 32))
    assert timer.calls == {"cakes": 8, "total": 1}
    assert 0 < timer.seconds["cakes"] < timer.seconds["total"]
    gm(torch.zeros(1, 3, 4, 32, 32))  # hooks removed on exit: nothing more is counted
    assert timer.calls == {"cakes": 8, "total": 1}


class _DeferredClock:
    """A clock like CudaEventClock: marks are only readable after settle()."""

    def __init__(self):
        self.ticks, self.settled = 0, False

    def mark(self):
        self.ticks, self.settled = self.ticks + 1, False
        return self.ticks

    def settle(self):
        self.settled = True

    def seconds(self, start, end):
        assert self.settled, "a span was read before the clock settled"
        return float(end - start)


def test_hook_timer_reads_spans_only_after_the_clock_settles():
    net = nn.Sequential(nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 4, 3, padding=1))
    clock = _DeferredClock()
    with breakdown.HookTimer(net, {"convs": ["0", "2"]}, clock) as timer:
        net(torch.zeros(1, 3, 2, 4, 4))
        assert timer.calls == {"convs": 0, "total": 0}  # nothing read mid-pass
    # marks: total start 1, conv0 2-3, conv2 4-5, total end 6
    assert timer.calls == {"convs": 2, "total": 1} and timer.seconds == {"convs": 2.0, "total": 5.0}
    assert isinstance(timing.clock_for("cpu", lambda: None), timing.WallClock)
    step = execution.make_step(net, torch.zeros(1, 3, 2, 4, 4), execution.ExecutionPath())
    medians = breakdown.hooked_passes({"net": (net, step, {"convs": ["0", "2"]})}, 3, lambda: None,
                                           _DeferredClock())  # each pass settles before it is read
    assert medians == {"net": {"convs": 2000.0, "total": 5000.0}}


def test_tool_names_a_bad_spec_in_one_line(caplog):
    assert run_tool(lambda: cli.net_main(["torchvision:r4d", "--frames", "4", "--size", "32"])) == 1
    assert [r.getMessage() for r in caplog.records] == [
        "ConfigError: torchvision:r4d: torchvision.models.video has no model 'r4d'"]


def test_dense_convs_and_flops_by_module():
    conv = nn.Conv3d(4, 6, 3, padding=1)
    net = nn.Sequential(conv, nn.Conv3d(6, 6, 1), nn.Conv3d(6, 6, (1, 3, 3)), FusedConv3d(conv),
                        CakesConv3d(6, {"kxkxk": 2, "1xkxk": 2}))
    assert breakdown.dense_conv_names(net) == ["0", "3"]
    flops = conv_linear_gflops_by_module(net[:3], (4, 2, 5, 5))
    volume = 2 * 5 * 5  # every conv keeps T x H x W
    assert flops["0"] * 1e9 == 6 * 4 * 27 * volume and flops["1"] * 1e9 == 6 * 6 * volume
    assert flops[""] == pytest.approx(flops["0"] + flops["1"] + flops["2"])
    assert breakdown.sum_gflops(flops, ["0", "1"], "net") == flops["0"] + flops["1"]
    with pytest.raises(ValueError, match=r"net: no FLOP count for module\(s\) \['4'\]"):
        breakdown.sum_gflops(flops, ["0", "4"], "net")


def test_breakdown_without_dense_base_omits_the_dense_rate_keys():
    base = nn.Sequential(nn.Conv3d(3, 4, (1, 3, 3), padding=(0, 1, 1)))  # factorised: no dense conv
    cakes = nn.Sequential(build_cakes_layer(3, {"kxkxk": 2, "1xkxk": 2}, impl="efficient")).eval()
    entries = [execution.Entry("base", base.eval()), execution.Entry("cakes", cakes, to_reference(cakes))]
    for e in entries:
        e.module_gflops = conv_linear_gflops_by_module(e.model, (3, 2, 6, 6))
    results = [{"name": "base"}, {"name": "cakes"}]
    breakdown.add_breakdown(results, entries, torch.randn(2, 3, 2, 6, 6), path=execution.ExecutionPath(), runs=2,
                                 sync=lambda: None)
    assert set(results[0]) == {"name", "hooked_total_ms"}
    assert set(results[1]) == {"name", "hooked_total_ms", "cakes_layers"} | set(CAKES_KEYS[:8])
    assert results[1]["cakes_layers_gflops"] * 1e9 == conv_cost({"kxkxk": 2, "1xkxk": 2}, 3, (2, 6, 6))[1]
    layers_s = results[1]["cakes_layers_ms"] / 1e3  # batch 2: the rate counts both clips
    assert results[1]["cakes_layers_gflops_per_s"] == pytest.approx(2 * results[1]["cakes_layers_gflops"] / layers_s)
    step = execution.make_step(base, torch.randn(1, 3, 2, 6, 6), execution.ExecutionPath())
    with pytest.raises(RuntimeError, match="base: the forward hooks of 'cakes' never fired"):
        breakdown.hooked_passes({"base": (base, step, {"cakes": []})}, 1, lambda: None)


# --- ExecutionPath: one execution path for every model of a run; --compile ----------------------

@pytest.mark.parametrize("flags, message, flag_message", [
    (dict(deploy=True, train=True), r"^deploy cannot go with train: deploying folds BatchNorm",
     r"^--deploy cannot go with --train-step"),
    (dict(fuse=True), r"^fuse needs deploy", r"^--fuse needs --deploy"),
    (dict(fuse=True, train=True), r"^fuse needs deploy", r"^--fuse needs --deploy"),
    (dict(deploy=True, fuse=True, compile=True), r"^fuse cannot go with compile",
     r"^--fuse cannot go with --compile: .* so use --deploy with --compile$"),
    (dict(device="gpu0"), r"^device 'gpu0' is not a torch device", r"^--device 'gpu0'"),
    (dict(device="meta"), r"^device 'meta': runs are timed on the CPU or on CUDA only", r"^--device 'meta'"),
    (dict(amp="int8"), r"^amp 'int8': expected one of \['bf16', 'fp16'\]", r"^--amp 'int8'"),
    (dict(deploy=True, fuse=True, amp="bf16"), r"^amp cannot go with fuse", r"^--amp cannot go with --fuse"),
])
def test_execution_path_rejects_invalid_combinations(flags, message, flag_message):
    _rejected(lambda: execution.ExecutionPath(**flags), message, flag_message)


def test_cuda_checks_refuse_before_any_model_is_built(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    _rejected(lambda: execution.ExecutionPath(device="cuda"), r"^device 'cuda': this torch sees \d+ CUDA device",
              r"^--device 'cuda'")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # as on a one-GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match=r"'cuda:1': this torch sees 1 CUDA device"):
        execution.ExecutionPath(device="cuda:1")
    _rejected(lambda: execution.ExecutionPath(device="cuda", deploy=True, fuse=True),
              r"^fuse fuses oneDNN calls, on the CPU only", r"^--fuse fuses oneDNN calls")
    gpu = execution.ExecutionPath(device="cuda:0")
    _rejected(lambda: models.check_run(gpu, 1, False, False, "cpu"), "^timer cpu counts this process's CPU time",
              "--timer cpu counts this process's CPU time")
    _rejected(lambda: models.check_run(gpu, 0, False, False, "wall"), "^device cuda needs warmup >= 1",
              "--device cuda needs --warmup >= 1")
    models.check_run(execution.ExecutionPath(), 0, False, False, "cpu")  # all fine on the CPU
    assert isinstance(timing.clock_for("cuda:0", lambda: None), timing.CudaEventClock)


@pytest.mark.parametrize("argv, message", [
    (["--compile", "--warmup", "0"], "--compile needs --warmup >= 1"),
    (["--compile", "--compare", "--breakdown"], "--breakdown cannot time a --compile run"),
    (["--breakdown"], "--breakdown needs --compare"),
    (["--deploy", "--train-step"], r"--deploy cannot go with --train-step"),
    (["--deploy", "--fuse", "--compile"], r"--fuse cannot go with --compile"),
    (["--fuse"], r"--fuse needs --deploy"),
    (["--device", "meta"], r"--device 'meta': runs are timed on the CPU or on CUDA only"),
    (["x.yaml"], "a config is given twice"),  # refused before anything is built
])
def test_run_options_that_cannot_go_together_are_rejected(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_net_args(["x.yaml", *argv, "--frames", "4", "--size", "32"])
    assert re.search(message, capsys.readouterr().err)


def test_run_benchmark_rejects_compile_without_warmup_or_with_breakdown():
    path = execution.ExecutionPath(compile=True)
    _rejected(lambda: models.run_benchmark(["x.yaml"], 4, 32, path=path, warmup=0), "^compile needs warmup >= 1",
              "--compile needs --warmup >= 1")
    _rejected(lambda: models.run_benchmark(["x.yaml"], 4, 32, path=path, compare=True, breakdown=True),
              "^breakdown cannot time a compile run", "--breakdown cannot time a --compile run")


def test_execution_path_describe_and_prepare():
    fused = execution.ExecutionPath(deploy=True, fuse=True)
    assert fused.describe() == "inference, deployed, fused; cpu, channels_last"
    path = execution.ExecutionPath(deploy=True, compile=True)
    assert path.describe() == "inference, deployed, compiled; cpu, channels_last"
    assert execution.ExecutionPath(train=True, channels_last=False).describe() == "train step; cpu, contiguous"
    with pytest.raises(dataclasses.FrozenInstanceError):
        path.train = True  # a run's path cannot change between its models
    conv = execution.ExecutionPath(train=True).prepare(nn.Conv3d(3, 4, 3).eval())
    assert conv.training and conv.weight.is_contiguous(memory_format=torch.channels_last_3d)
    eager = execution.ExecutionPath(channels_last=False).prepare(nn.Conv3d(3, 4, 3))
    assert not eager.training and eager.weight.is_contiguous()


def test_amp_runs_every_model_under_autocast(tmp_path):
    path = execution.ExecutionPath(amp="bf16")
    assert path.describe() == "inference, autocast bf16; cpu, channels_last"
    model = models.build_from_spec(_config("r3d_18") + "@MODEL.TEMPORAL_OP=cakes", TINY_OVERRIDES).eval()
    x = torch.randn(1, 3, 4, 32, 32)
    with torch.inference_mode(), path.autocast():
        assert model(x).dtype == torch.bfloat16  # the head's linear ran in bf16
    with torch.inference_mode(), execution.ExecutionPath().autocast():
        assert model(x).dtype == torch.float32
    seen = []  # the timed calls themselves run under autocast, inference and train step alike
    linear = nn.Linear(4, 2)
    linear.register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    for train in (False, True):
        execution.make_step(linear, torch.randn(2, 4), execution.ExecutionPath(amp="bf16", train=train))()
    assert seen == [torch.bfloat16, torch.bfloat16] and linear.weight.grad is not None
    r3d = _config("r3d_18")
    base, cakes = _run(tmp_path, r3d, r3d + "@MODEL.TEMPORAL_OP=cakes", "--compare", "--amp", "bf16", fast=True)
    assert base["latency_ms"] > 0 and cakes["speedup_vs_reference"] > 0
    assert {r["execution"] for r in (base, cakes)} == {"inference, autocast bf16; cpu, channels_last"}


def test_compiled_model_matches_eager_and_freezes_its_weights():
    model = models.build_from_spec(_config("r3d_18") + "@MODEL.TEMPORAL_OP=cakes", TINY_OVERRIDES)
    compiled = execution.ExecutionPath(compile=True).prepare(model)
    assert isinstance(compiled, execution.CompiledModel) and not model.training
    x = execution.make_input(1, 2, 16)
    with torch.inference_mode():
        eager, once = model(x), compiled(x)
    torch.testing.assert_close(once, eager, atol=1e-4, rtol=1e-4)
    with torch.no_grad():
        model.stem.conv.weight.mul_(2)  # frozen: the compiled graph keeps the weights it was built with
    with torch.inference_mode():
        assert not torch.allclose(model(x), eager, atol=1e-4)
        torch.testing.assert_close(compiled(x), once)


def test_compiled_run_reports_compile_seconds_and_compiles_every_model():
    spec = _config("r3d_18") + "@MODEL.TEMPORAL_OP=cakes"
    path = execution.ExecutionPath(compile=True)
    [entry] = models.build_entries([spec], 2, 16, path=path, with_reference=True, overrides=TINY_OVERRIDES)
    assert isinstance(entry.model, execution.CompiledModel) and isinstance(entry.reference, execution.CompiledModel)
    # One model, no twin: each compile costs seconds on a loaded CPU.
    [result] = models.run_benchmark([spec], 2, 16, path=path, runs=1, warmup=1, overrides=TINY_OVERRIDES)
    assert result["compile_seconds"] > 0 and result["latency_ms"] > 0
    assert "reference_compile_seconds" not in result
    assert "compile_seconds" in models.format_table([result]).splitlines()[0]
