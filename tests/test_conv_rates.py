"""Per-convolution rates (cakes_video.benchmarks.conv_rates, tools/benchmark_conv.py).

No test asserts a timing: the FLOPs each convolution is credited with, the 2D forms' results
and the report's schema.
"""
import json
import math
import os

import pytest
import torch
from torch import nn

from cakes_video.benchmarks import breakdown, cli, conv_rates, models
from cakes_video.config import get_config_file
from cakes_video.engine.cli import run_tool
from cakes_video.models.cakes import CakesConv3d, EfficientCakesConv3d
from cakes_video.models.complexity import conv_linear_gflops_by_module
from cakes_video.models.inference import inference_form
from cakes_video.models.rewrite import to_reference
from cakes_video.models.subkernels import kernel_shape

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

R3D = get_config_file("r3d_18")
SMALL = ["MODEL.DEPTH", "10", "MODEL.NUM_CLASSES", "5"]


def _outputs(call):
    return {path: step() for path, step in conv_rates.calls_by_path(call).items()}


@pytest.mark.parametrize("kernel,stride", [((1, 3, 3), (1, 2, 2)), ((1, 3, 3), (1, 1, 1)),
                                           ((3, 1, 1), (2, 1, 1)), ((3, 1, 1), (1, 1, 1))])
def test_every_path_computes_the_same_convolution(kernel, stride):
    padding = tuple(k // 2 for k in kernel)
    call = conv_rates.ConvCall((2, 8, 4, 9, 7), 5, kernel, stride, padding)  # H != W: strides must not swap
    with torch.inference_mode():
        out = _outputs(call)
    assert set(out) == set(conv_rates.PATHS)
    n, c, t, h, w = out["conv3d"].shape
    assert (t, h, w) == call.output_thw()
    torch.testing.assert_close(out["onednn"], out["conv3d"], atol=1e-5, rtol=1e-5)
    # the 2D form's output is a view of the same [N, C, T, H, W] channels-last data
    frames = out["frames2d"]
    as3d = (frames.reshape(n, t, c, h, w).transpose(1, 2) if kernel[0] == 1
            else frames.reshape(n, c, t, h, w))
    torch.testing.assert_close(as3d, out["conv3d"], atol=1e-5, rtol=1e-5)


def test_kernels_without_a_2d_form_and_inputs_not_channels_last():
    call = conv_rates.ConvCall((1, 4, 4, 8, 8), 4, (3, 3, 3), (1, 1, 1), (1, 1, 1))
    assert conv_rates.frames2d_view(torch.zeros(1, 4, 4, 8, 8).contiguous(memory_format=torch.channels_last_3d),
                                    call) is None
    assert set(conv_rates.calls_by_path(call)) == {"conv3d", "onednn"}
    for kernel, stride, padding in (((3, 1, 1), (1, 2, 2), (1, 0, 0)), ((1, 3, 3), (2, 1, 1), (0, 1, 1)),
                                    ((1, 3, 3), (1, 1, 1), (1, 1, 1))):  # folded-away axis strided or padded
        assert "frames2d" not in conv_rates.calls_by_path(conv_rates.ConvCall((1, 4, 4, 8, 8), 4, kernel, stride,
                                                                              padding))
    with pytest.raises(ValueError, match="channels_last_3d"):
        conv_rates.frames2d_view(torch.zeros(1, 4, 4, 8, 8), call)


R50_123D_P = get_config_file("cakes123d_p_r50_ssv1")


@pytest.mark.parametrize("spec,overrides", [(f"{R3D}@MODEL.TEMPORAL_OP=cakes", SMALL),
                                            (R50_123D_P, ["MODEL.NUM_CLASSES", "5"])])  # layers differ per block
@pytest.mark.parametrize("impl", ["efficient", "reference"])
def test_convs_are_credited_with_fvcores_flops(spec, overrides, impl):
    """Useful FLOPs summed over calls equal fvcore's count inside the CAKES layers and dense convs."""
    model = models.build_from_spec(spec, overrides, cakes_impl=impl)
    x = torch.randn(1, 3, 4, 32, 32).contiguous(memory_format=torch.channels_last_3d)
    uses = conv_rates.collect_convs(model, x)
    flops = conv_linear_gflops_by_module(to_reference(model), (3, 4, 32, 32))
    for role, names in (("cakes", breakdown.cakes_layer_names(model)),
                        ("dense", breakdown.dense_conv_names(model))):
        mine = [u for u in uses if u.role == role]
        assert sorted({m for u in mine for m in u.modules}) == sorted(names)
        assert sum(u.gflops * len(u.modules) for u in mine) == pytest.approx(sum(flops[n] for n in names))


def test_planned_convs_run_their_zero_rows_as_waste():
    layer = EfficientCakesConv3d(8, {"kxkxk": 5, "1xkxk": 7, "kx1x1": 3}, channel_block=16)
    assert any(layer.plan_zero_rows)
    x = torch.randn(1, 8, 3, 6, 5).contiguous(memory_format=torch.channels_last_3d)
    uses = conv_rates.collect_convs(nn.Sequential(layer), x)
    assert [u.call.out_channels for u in uses] == [  # rows of the plan, then its zero rows
        sum(b - a for _, a, b in rows) + z for (_, rows), z in zip(layer.plan, layer.plan_zero_rows)]
    assert all(u.call.out_channels % 16 == 0 for u in uses)
    useful = sum(n * 8 * math.prod(kernel_shape(s)) for s, n in layer.counts.items()) * 3 * 6 * 5 / 1e9
    assert sum(u.gflops for u in uses) == pytest.approx(useful)


def test_deployed_and_unusual_convolutions_are_refused():
    model = nn.Sequential(CakesConv3d(4, {"kxkxk": 2, "1xkxk": 2}).eval())
    with pytest.raises(ValueError, match="undeployed"):
        conv_rates.collect_convs(inference_form(model, channels_last=False), torch.zeros(1, 4, 2, 4, 4))
    grouped = nn.Sequential(nn.Conv3d(4, 4, 3, padding=1, groups=2))
    with pytest.raises(ValueError, match="^0: conv rates time plain convolutions"):
        conv_rates.collect_convs(grouped, torch.zeros(1, 4, 2, 4, 4))


def test_tool_reports_every_conv_with_rates_and_totals(tmp_path, capsys):
    out = tmp_path / "rates.json"
    argv = [R3D, f"{R3D}@MODEL.TEMPORAL_OP=cakes", "--frames", "4", "--size", "32", "--runs", "2",
            "--opts", *SMALL, "--json", str(out)]
    assert cli.conv_main(argv) == 0
    report = json.loads(out.read_text())
    assert list(report) == ["r3d_18", "r3d_18@MODEL.TEMPORAL_OP=cakes"]
    assert {r["role"] for r in report["r3d_18"]} == {"dense"}
    rows = report["r3d_18@MODEL.TEMPORAL_OP=cakes"]
    assert {r["role"] for r in rows} == {"cakes", "dense"}  # the 3x7x7 stem is a dense conv
    for r in rows:
        for path in ("conv3d", "onednn"):
            assert r[f"{path}_ms"] > 0 and r[f"{path}_gflops_per_s"] > 0
        call = conv_rates.ConvCall(tuple(r["input_shape"]), r["out_channels"], tuple(r["kernel"]),
                                   tuple(r["stride"]), tuple(r["padding"]))
        x = torch.zeros(call.input_shape).contiguous(memory_format=torch.channels_last_3d)
        assert (r["frames2d_ms"] is None) == (conv_rates.frames2d_view(x, call) is None)
    assert any(r["frames2d_ms"] is not None for r in rows) and any(r["frames2d_ms"] is None for r in rows)
    totals = conv_rates.totals(rows, "cakes")  # frames2d counts onednn's time where it has no 2D form
    assert totals["frames2d_ms"] == pytest.approx(sum(
        (r["frames2d_ms"] if r["frames2d_ms"] is not None else r["onednn_ms"]) * r["calls_per_forward"]
        for r in rows if r["role"] == "cakes"))
    assert totals["gflops"] == pytest.approx(sum(r["gflops"] * r["calls_per_forward"]
                                                 for r in rows if r["role"] == "cakes"))
    printed = capsys.readouterr().out
    assert printed.count("all (per forward)") == 3 and "frames2d ms / GF/s" in printed


@pytest.mark.parametrize("argv,message", [([R3D, "--frames", "0", "--size", "32"], "--frames must be >= 1"),
                                          ([R3D, "--frames", "4", "--size", "32", "--warmup", "-1"],
                                           "--warmup must be >= 0"),
                                          ([R3D, R3D, "--frames", "4", "--size", "32"], "a config is given twice")])
def test_tool_rejects_bad_arguments(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.parse_conv_args(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("spec,message", [("missing.yaml", "config file not found: missing.yaml (nor a packaged config of that name)"),
                                          ("torchvision:r4d", "torchvision:r4d: torchvision.models.video has no model 'r4d'")])
def test_tools_name_a_bad_config_in_one_line(spec, message, caplog):
    assert run_tool(lambda: cli.conv_main([spec, "--frames", "4", "--size", "32"])) == 1
    assert [r.getMessage() for r in caplog.records] == [f"ConfigError: {message}"]
