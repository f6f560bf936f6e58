"""Weight import: torchvision video models, the official CAKES release, ImageNet 2D inflation."""
import importlib.util
import json
import math
import os
import re

import pytest
import torch
import torchvision
import torchvision.models.video as tv_video

from cakes_video import build_model, load_config, load_model
from cakes_video.checkpoint import CheckpointError, convert, load_model_state
from cakes_video.checkpoint.schema import diff_state
from cakes_video.models.resnet3d import ResNet3D, cakes_layer_widths
from cakes_video.models.subkernels import official_config_names, uniform_channel_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ORACLE = os.path.join(REPO, "tests", "fixtures", "oracle_CAKES123D_P.json")


def _tool():
    path = os.path.join(REPO, "tools", "convert_checkpoint.py")
    spec = importlib.util.spec_from_file_location("convert_checkpoint", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _randomise_bn(model, seed=0):
    """Non-trivial BN statistics and affine parameters, so a BN mapped wrong changes the output."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.normal_(0, 0.1, generator=g)
            m.running_var.uniform_(0.5, 1.5, generator=g)
            m.weight.data.normal_(1, 0.1, generator=g)
            m.bias.data.normal_(0, 0.1, generator=g)
    return model.eval()


def _clip(t=8, size=32, seed=1):
    return torch.randn(1, 3, t, size, size, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("arch", ["r3d_18", "mc3_18"])
def test_torchvision_models_convert_exactly(arch):
    torch.manual_seed(0)
    reference = _randomise_bn(getattr(tv_video, arch)(weights=None))
    model = build_model(load_config(arch)).eval()
    load_model_state(model, convert.torchvision_to_project(reference.state_dict(), arch))
    with torch.no_grad():
        assert (model(_clip()) - reference(_clip())).abs().max() < 1e-4


def test_torchvision_cli_converts_r2plus1d_exactly_into_a_loadable_model(tmp_path):
    torch.manual_seed(0)
    reference = _randomise_bn(tv_video.r2plus1d_18(weights=None))
    src = tmp_path / "r2plus1d_18.pth"
    torch.save(reference.state_dict(), src)
    assert _tool().main(["--source", "torchvision", "--arch", "r2plus1d_18", str(src), str(tmp_path / "out")]) == 0
    model = load_model(str(tmp_path / "out" / "config.yaml"), str(tmp_path / "out" / "model.pyth"))
    assert not model.training
    with torch.no_grad():
        assert (model(_clip()) - reference(_clip())).abs().max() < 1e-4
    zoo = load_config("r2plus1d_18")
    assert load_config(str(tmp_path / "out" / "config.yaml")) == zoo


def test_torchvision_keys_of_no_known_layer_are_named():
    state = tv_video.r3d_18(weights=None).state_dict()
    state["layer1.0.attention.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="layer1.0.attention.weight"):
        convert.torchvision_to_project(state, "r3d_18")


def _official_state(layout):
    """The oracle's deterministic weights (recipe in shared/reference/official_cakes/README.md)."""
    state = {}
    for i, (key, shape) in enumerate(layout):
        g = torch.Generator().manual_seed(1000 + i)
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0)
        elif key.endswith("running_var"):
            state[key] = 0.5 + torch.rand(shape, generator=g)
        elif key.endswith("running_mean"):
            state[key] = 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1 and key.endswith("weight"):
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=g)
        elif len(shape) == 1:
            state[key] = 0.1 * torch.randn(shape, generator=g)
        else:
            state[key] = torch.randn(shape, generator=g) / math.sqrt(math.prod(shape[1:]))
    return state


@pytest.fixture(scope="module")
def oracle():
    with open(ORACLE) as f:
        return json.load(f)


def test_official_checkpoint_reproduces_the_oracle_logits(tmp_path, oracle):
    src = tmp_path / "cakes123d_p_8f.pth.tar"
    torch.save({"epoch": 40, "arch": "resnet50", "state_dict": _official_state(oracle["layout"]),
                "best_prec1": 47.0}, src)
    out = tmp_path / "out"
    argv = ["--source", "official-cakes", "--conv-config", oracle["config"], "--num-classes",
            str(oracle["num_classes"]), "--frames", str(oracle["num_frames"]), str(src), str(out)]
    assert _tool().main(argv) == 0
    model = load_model(str(out / "config.yaml"), str(out / "model.pyth"))
    x = torch.randn(1, 3, 8, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(x)[0]
    assert (logits - torch.tensor(oracle["expected_logits"])).abs().max() < 1e-3


# Our key -> the official key, the inverse of convert.OFFICIAL_RULES (test-only, to synthesise
# official state dicts of configs the fixture has no layout for).
_TO_OFFICIAL = [
    (r"^stem\.conv\.", "conv1."), (r"^stem\.bn\.", "bn1."),
    (r"^(layer\d\.\d+)\.conv2\.convs\.(\d+)\.", r"\1.convT.convs.\2.0."),
    (r"^(layer\d\.\d+)\.conv2\.bn\.", r"\1.convT.out.0."),
]


def _as_official(state):
    out = {}
    for key, value in state.items():
        if key.startswith("head.fc."):
            out["module.new_fc." + key[len("head.fc."):]] = value
            continue
        for pattern, repl in _TO_OFFICIAL:
            key = re.sub(pattern, repl, key)
        out["module.base_model." + key] = value
    return out


def test_our_layout_maps_back_to_the_official_layout_exactly(oracle):
    model = build_model(convert.official_cakes_config("CAKES123D_P", 174, 8))
    ours = [[k, list(v.shape)] for k, v in _as_official(model.state_dict()).items()]
    assert ours == oracle["layout"]


@pytest.mark.parametrize("name", official_config_names())
def test_every_official_config_converts_without_key_errors(name):
    model = build_model(convert.official_cakes_config(name, 174, 8))
    official = _as_official(model.state_dict())
    assert diff_state(model, convert.official_cakes_to_project(official)) == ([], [], [])


def test_converted_official_weights_fit_the_efficient_cakes_layer_too():
    cfg = load_config("cakes123d_c_r50_ssv1",
                      ["MODEL.CAKES.IMPL", "efficient"])
    model = build_model(cfg)
    official = _as_official(build_model(convert.official_cakes_config("CAKES123D_C")).state_dict())
    assert diff_state(model, convert.official_cakes_to_project(official)) == ([], [], [])


def test_official_checkpoint_with_the_wrong_config_fails_listing_keys(tmp_path, oracle):
    src = tmp_path / "ckpt.pth"
    torch.save({"epoch": 1, "arch": "resnet50", "state_dict": _official_state(oracle["layout"])}, src)
    with pytest.raises(CheckpointError) as e:
        convert.convert_official_cakes(str(src), str(tmp_path / "out"), "CAKES12D_P")
    assert "mis-shaped" in str(e.value) and "layer1.0.conv2.convs.0.weight" in str(e.value)
    assert not (tmp_path / "out").exists()  # nothing written
    assert _tool().main(["--source", "official-cakes", "--conv-config", "CAKES12D_P", str(src),
                         str(tmp_path / "out")]) == 1


def test_cli_reports_a_value_error_as_an_expected_error(tmp_path, monkeypatch, caplog):
    def fails(*args, **kwargs):
        raise ValueError("no layer takes these weights")

    monkeypatch.setitem(convert.CONVERTERS, "torchvision", fails)
    argv = ["--source", "torchvision", "--arch", "r3d_18", str(tmp_path / "in.pth"), str(tmp_path / "out")]
    assert _tool().main(argv) == 1
    assert "in.pth: no layer takes these weights" in caplog.text


def test_cli_names_the_key_of_a_bad_config(tmp_path, caplog):
    cfg_file = tmp_path / "bad.yaml"
    cfg_file.write_text("MODEL:\n  DEPTH: 12\n")
    argv = ["--source", "imagenet-2d", "--cfg", str(cfg_file), str(tmp_path / "in.pth"), str(tmp_path / "out")]
    assert _tool().main(argv) == 1
    assert "ConfigError" in caplog.text and "MODEL.DEPTH" in caplog.text


def test_write_converted_checks_a_prebuilt_model_and_loads_it(tmp_path):
    cfg = load_config(None, ["MODEL.DEPTH", "10", "MODEL.NUM_CLASSES", "5"])
    state = build_model(cfg).state_dict()
    with pytest.raises(CheckpointError, match="head.fc.weight"):
        convert.write_converted(str(tmp_path / "bad"), cfg, state, "src", model=ResNet3D(depth=10, num_classes=7))
    assert not (tmp_path / "bad").exists()
    model = ResNet3D(depth=10, num_classes=5)
    convert.write_converted(str(tmp_path / "ok"), cfg, state, "src", model=model)
    assert torch.equal(model.head.fc.weight, state["head.fc.weight"])
    assert (tmp_path / "ok" / "model.pyth").exists()


def test_official_keys_without_the_release_prefix_are_rejected():
    with pytest.raises(CheckpointError, match="base_model.conv1.weight"):
        convert.official_cakes_to_project({"base_model.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="not an official CAKES checkpoint"):
        convert.official_state_dict({"model": {}}, "x.pth")


def test_load_model_refuses_weights_of_another_architecture(tmp_path):
    state = convert.torchvision_to_project(tv_video.r3d_18(weights=None).state_dict(), "r3d_18")
    convert.write_converted(str(tmp_path), convert.torchvision_config("r3d_18"), state, "r3d")
    with pytest.raises(CheckpointError) as e:
        load_model("r2plus1d_18", str(tmp_path / "model.pyth"))
    assert "missing" in str(e.value) and "stem.conv_s.weight" in str(e.value)
    assert "unexpected" in str(e.value) and "stem.conv.weight" in str(e.value)


def test_inflated_resnet50_equals_the_2d_network_frame_by_frame():
    torch.manual_seed(0)
    net2d = _randomise_bn(torchvision.models.resnet50())
    cfg = load_config("c2d_r50_ssv1", ["MODEL.NUM_CLASSES", "1000"])
    model = build_model(cfg).eval()
    state, not_inflated = convert.inflate_2d_state(net2d.state_dict(), model)
    assert not_inflated == ["head.fc.weight", "head.fc.bias"]
    state.update({"head.fc.weight": net2d.fc.weight, "head.fc.bias": net2d.fc.bias})
    load_model_state(model, state)
    frame = torch.randn(1, 3, 64, 64)
    with torch.no_grad():  # a clip of 3 identical frames: every frame sees what the 2D net sees
        expected = net2d(frame)
        error = (model(frame.unsqueeze(2).repeat(1, 1, 3, 1, 1)) - expected).abs().max()
    assert error < 1e-5 * expected.abs().max()  # logits reach ~1e2 with random BN statistics


def test_inflation_rules_for_3d_and_cakes_sub_kernels():
    state2d = torchvision.models.resnet18().state_dict()
    w2d = state2d["layer1.0.conv1.weight"]  # [64, 64, 3, 3]
    config = uniform_channel_config([w for w, _ in cakes_layer_widths(18)])
    config[0] = {"kxkxk": 28, "1xkxk": 35, "kx1x1": 1}  # groups in this order, as CAKES123D_P's first layer
    model = ResNet3D(depth=18, stem="1x7x7", stem_pool=True, stage_ops=["cakes"] * 4, channel_config=config)
    state, _ = convert.inflate_2d_state(state2d, model)
    k3, k2, k1 = (state[f"layer1.0.conv1.convs.{i}.weight"] for i in range(3))
    assert torch.allclose(k3.sum(2), w2d[:28], atol=1e-6) and k3.shape == (28, 64, 3, 3, 3)
    assert torch.equal(k2[:, :, 0], w2d[28:63])
    assert torch.allclose(k1[:, :, 1, 0, 0] * 3, w2d[63:].sum(dim=(2, 3)), atol=1e-5)
    assert torch.equal(k1[:, :, 0], k1[:, :, 2])
    assert torch.equal(state["layer1.0.conv1.bn.weight"], state2d["layer1.0.bn1.weight"])
    i3d = ResNet3D(depth=18, stem="3x7x7", stage_ops=["3d"] * 4)
    stem, _ = convert.inflate_2d_state(state2d, i3d)
    assert torch.allclose(stem["stem.conv.weight"][:, :, 0] * 3, state2d["conv1.weight"], atol=1e-6)


def test_inflation_names_keys_without_2d_source_and_unused_2d_keys():
    model = build_model(load_config("r2plus1d_18"))
    with pytest.raises(CheckpointError, match="stem.conv_s.weight: no 2D source"):
        convert.inflate_2d_state(torchvision.models.resnet18().state_dict(), model)
    shallow = ResNet3D(depth=10, stem="1x7x7", stage_ops=["2d"] * 4)
    with pytest.raises(CheckpointError, match="2D key layer1.1.conv1.weight fits no layer"):
        convert.inflate_2d_state(torchvision.models.resnet18().state_dict(), shallow)


def test_imagenet_cli_writes_a_headless_init_checkpoint(tmp_path):
    src, cfg_file = tmp_path / "resnet18.pth", tmp_path / "c2d_18.yaml"
    torch.save(torchvision.models.resnet18().state_dict(), src)
    cfg_file.write_text("MODEL:\n  STEM: '1x7x7'\n  STEM_POOL: True\n  TEMPORAL_OP: '2d'\n")
    argv = ["--source", "imagenet-2d", "--cfg", str(cfg_file), str(src), str(tmp_path / "out")]
    assert _tool().main(argv) == 0
    model = build_model(load_config(str(tmp_path / "out" / "config.yaml")))
    ckpt = torch.load(tmp_path / "out" / "model.pyth", weights_only=True)
    assert not any(k.startswith("head.") for k in ckpt["model"])
    load_model_state(model, ckpt["model"], allow_missing=["head."])
    with pytest.raises(CheckpointError, match="missing.*head.fc.weight"):
        load_model(str(tmp_path / "out" / "config.yaml"), str(tmp_path / "out" / "model.pyth"))
