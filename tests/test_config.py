"""Config loading: _BASE_ inheritance, KEY VALUE overrides, validation errors, the model zoo."""
import glob
import json
import os

import pytest
import yaml

from cakes_video import build_model, load_config
from cakes_video.checkpoint import convert
from cakes_video.config import CONFIG_DIR, ConfigError, config_names, get_cfg, get_config_file
from cakes_video.models.plan import plan_convs
from cakes_video.models.resnet3d import cakes_layer_widths
from cakes_video.models.subkernels import resolve_channel_config

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ZOO = CONFIG_DIR


def _write(path, text):
    path.write_text(text)
    return str(path)


def test_base_inheritance_and_overrides(tmp_path):
    (tmp_path / "base").mkdir()
    _write(tmp_path / "base" / "b.yaml", "MODEL:\n  DEPTH: 50\n  NUM_CLASSES: 10\nDATA:\n  NUM_FRAMES: 4\n")
    child = _write(tmp_path / "c.yaml", "_BASE_: base/b.yaml\nMODEL:\n  NUM_CLASSES: 5\n")
    cfg = load_config(child)
    assert (cfg.MODEL.DEPTH, cfg.MODEL.NUM_CLASSES, cfg.DATA.NUM_FRAMES) == (50, 5, 4)
    cfg = load_config(child, ["MODEL.NUM_CLASSES", "7", "MODEL.TEMPORAL_STRIDES", "[1, 1, 2, 2]",
                              "MODEL.NUM_CLASSES", "8"])
    assert cfg.MODEL.NUM_CLASSES == 8 and list(cfg.MODEL.TEMPORAL_STRIDES) == [1, 1, 2, 2]
    assert cfg.is_frozen()


@pytest.mark.parametrize("text, overrides, names", [
    ("MODEL:\n  DEPTHS: 50\n", [], ["bad.yaml", "MODEL.DEPTHS"]),
    ("MODEL:\n  DEPTH: deep\n", [], ["bad.yaml", "MODEL.DEPTH"]),
    ("", ["MODEL.WIDTH", "2"], ["MODEL.WIDTH"]),
    ("", ["MODEL.NUM_CLASSES", "many"], ["MODEL.NUM_CLASSES"]),
    ("", ["MODEL.DEPTH"], ["KEY VALUE"]),
    ("MODEL:\n  TEMPORAL_OP: 4d\n", [], ["MODEL.TEMPORAL_OP", "'4d'"]),
    ("", ["MODEL.STAGE_TEMPORAL_OPS", "['3d', '3d', 'mc', '2d']"], ["MODEL.STAGE_TEMPORAL_OPS", "'mc'"]),
    ("", ["MODEL.STAGE_TEMPORAL_OPS", "['3d', '2d']"], ["MODEL.STAGE_TEMPORAL_OPS", "4 entries"]),
    ("", ["MODEL.ARCH", "resnet4d"], ["MODEL.ARCH", "resnet4d", "resnet3d"]),
    ("", ["MODEL.DEPTH", "20"], ["MODEL.DEPTH"]),
    ("", ["MODEL.STEM", "5x5x5"], ["MODEL.STEM"]),
    ("", ["MODEL.TEMPORAL_STRIDES", "[1, 0, 2, 2]"], ["MODEL.TEMPORAL_STRIDES"]),
    ("", ["MODEL.P3D_VARIANTS", "['A', 'D']"], ["MODEL.P3D_VARIANTS"]),
    ("", ["MODEL.KERNEL_SIZE", "4"], ["MODEL.KERNEL_SIZE"]),
    ("", ["MODEL.BASE_WIDTH", "0"], ["MODEL.BASE_WIDTH", "positive int", "uniform"]),
    ("", ["MODEL.BASE_WIDTH", "32.0"], ["MODEL.BASE_WIDTH"]),
    ("", ["MODEL.DEPTH", "50", "MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.CONV_CONFIG", "CAKES123D_P",
          "MODEL.BASE_WIDTH", "32"], ["MODEL.CAKES.CONV_CONFIG", "the layer needs"]),
    ("", ["DEVICE", "gpu"], ["DEVICE", "'gpu'", "auto"]),
    ("", ["TEST.NUM_SPATIAL_CROPS", "2"], ["TEST.NUM_SPATIAL_CROPS", "2"]),
    ("", ["TEST.AGGREGATION", "median"], ["TEST.AGGREGATION", "mean_softmax"]),
    ("", ["SOLVER.OPTIMIZER", "lion"], ["SOLVER.OPTIMIZER", "adamw"]),
    ("", ["DATA.DECODER", "opencv"], ["DATA.DECODER", "decord"]),
    ("", ["MODEL.CAKES.KERNEL_SIZE", "3"], ["MODEL.CAKES.KERNEL_SIZE", "renamed", "MODEL.KERNEL_SIZE"]),
    ("MODEL:\n  KERNEL_SIZE: 3\n  CAKES:\n    KERNEL_SIZE: 3\n", [], ["bad.yaml", "MODEL.CAKES.KERNEL_SIZE", "both"]),
    ("", ["MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.CONV_CONFIG", "CAKES99D"],
     ["MODEL.CAKES.CONV_CONFIG", "CAKES99D"]),
    ("", ["MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.SUBKERNELS", "['kxkxk', '2x2x2']"],
     ["MODEL.CAKES.SUBKERNELS", "2x2x2"]),
])
def test_bad_configs_name_the_key_or_file(tmp_path, text, overrides, names):
    with pytest.raises(ConfigError) as e:
        load_config(_write(tmp_path / "bad.yaml", text) if text else None, overrides)
    for name in names:
        assert name in str(e.value)


@pytest.mark.parametrize("layers, message", [
    ([{"kxkxk": 64}] * 15, "15 layers"),
    ([{"kxkxk": 64, "1xkxk": 8}] + [{"kxkxk": 8}] * 15, "layer 0: counts"),
    ([{"kxkxk": 8, "3x3x3": 8}] * 16, "unknown sub-kernel '3x3x3'"),
    ([{"kxkxk": -1, "1xkxk": 8}] * 16, "non-negative"),
])
def test_channel_config_files_that_do_not_fit_are_rejected(tmp_path, layers, message):
    path = tmp_path / "channels.json"
    path.write_text(json.dumps(layers))
    with pytest.raises(ConfigError, match=f"MODEL.CAKES.CONV_CONFIG.*{message}"):
        load_config(None, ["MODEL.DEPTH", "50", "MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.CONV_CONFIG", str(path)])


def test_a_config_written_before_a_key_was_renamed_still_loads(tmp_path, caplog):
    old = yaml.safe_load(get_cfg().dump())  # an earlier run's OUTPUT_DIR/config.yaml
    del old["MODEL"]["KERNEL_SIZE"], old["TEST"]["PROGRESS_BAR"]
    old["MODEL"]["CAKES"]["KERNEL_SIZE"] = 5
    path = _write(tmp_path / "config.yaml", yaml.safe_dump(old))
    assert load_config(path).MODEL.KERNEL_SIZE == 5
    assert "MODEL.CAKES.KERNEL_SIZE is now MODEL.KERNEL_SIZE" in caplog.text and "config.yaml" in caplog.text


def test_an_old_model_zoo_path_names_the_config_that_replaces_it():
    with pytest.raises(ConfigError, match="model_zoo/configs/r3d_18.yaml.*use the name r3d_18$"):
        load_config("model_zoo/configs/r3d_18.yaml")


def test_missing_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="nowhere.yaml"):
        load_config(str(tmp_path / "nowhere.yaml"))


ZOO_FILES = sorted(p for p in glob.glob(os.path.join(ZOO, "**", "*.yaml"), recursive=True)
                   if not p.startswith(os.path.join(ZOO, "channel_configs")))


def test_the_zoo_has_every_model_of_the_issue():
    names = {os.path.basename(p) for p in ZOO_FILES}
    expected = {"r3d_18.yaml", "mc3_18.yaml", "r2plus1d_18.yaml", "i3d_r50_ssv1.yaml", "c2d_r50_ssv1.yaml",
                "p3d_r50_ssv1.yaml"} | {f"cakes{n}_r50_ssv1.yaml" for n in ("12d_p", "12d_c", "23d_p", "23d_c",
                                                                                "123d_p", "123d_c")}
    assert expected <= names


@pytest.mark.parametrize("path", ZOO_FILES, ids=lambda p: os.path.relpath(p, ZOO))
def test_every_zoo_config_loads_and_builds(path):
    cfg = load_config(path)
    model = build_model(cfg)
    assert model.head.fc.out_features == cfg.MODEL.NUM_CLASSES


def test_block16_channel_config_needs_no_replanning():
    """Every group of the 16-aligned CAKES-18 split fills whole 16-channel blocks, so the
    efficient layer's plan is one conv per sub-kernel, as even as blocks allow."""
    path = "cakes_18_block16"  # a packaged channel config, found by name
    widths = cakes_layer_widths(18)
    for counts, (width, _) in zip(resolve_channel_config(path, widths), widths):
        assert all(n % 16 == 0 and abs(n - width / 3) < 16 for n in counts.values()), counts
        assert plan_convs(counts, block=16) == [(s, [(s, 0, n)]) for s, n in counts.items()]
    cfg = load_config(os.path.join(ZOO, "r3d_18.yaml"), ["MODEL.TEMPORAL_OP", "cakes", "MODEL.CAKES.CONV_CONFIG", path])
    assert build_model(cfg).layer1[0].conv1.counts == {"kxkxk": 16, "1xkxk": 32, "kx1x1": 16}


@pytest.mark.parametrize("name", ["12D_P", "12D_C", "23D_P", "23D_C", "123D_P", "123D_C"])
def test_official_zoo_configs_are_the_released_network_with_their_channel_config(name):
    zoo = load_config(f"cakes{name.lower()}_r50_ssv1")
    assert zoo == convert.official_cakes_config(f"CAKES{name}", 174, 8)


def test_packaged_configs_are_found_by_name_from_any_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no repository here: names resolve inside the package
    assert get_config_file("r3d_18") == get_config_file("r3d_18.yaml") == os.path.join(CONFIG_DIR, "r3d_18.yaml")
    assert {"r3d_18", "demo/cakes_r10_synthetic", "base/r50_ssv1", "channel_configs/cakes_18_block16"} <= set(
        config_names())
    assert load_config("r3d_18") == load_config(os.path.join(CONFIG_DIR, "r3d_18.yaml"))
    with pytest.raises(ValueError, match="no packaged config 'r4d'.*r3d_18"):
        get_config_file("r4d")
    with pytest.raises(ConfigError, match="r4d.*nor a packaged config"):
        load_config("r4d")


@pytest.mark.parametrize("name, op", [("i3d", "3d"), ("c2d", "2d"), ("p3d", "p3d")])
def test_official_family_baselines_differ_from_cakes_only_in_the_op(name, op):
    baseline = load_config(os.path.join(ZOO, f"{name}_r50_ssv1.yaml"))
    cakes = load_config(os.path.join(ZOO, "cakes123d_p_r50_ssv1.yaml"), ["MODEL.TEMPORAL_OP", op,
                                                                         "MODEL.CAKES.CONV_CONFIG", "uniform"])
    assert baseline == cakes


def test_empty_config_file_is_named(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    with pytest.raises(ConfigError, match="empty.yaml"):
        load_config(str(empty))


def test_synthetic_zoo_configs_are_the_demo_at_width_32_and_differ_only_in_the_op():
    cakes = load_config("synthetic/cakes_r10_w32")
    assert cakes.MODEL.BASE_WIDTH == 32 and cakes.SOLVER.MAX_EPOCH == 6
    demo = load_config("demo/cakes_r10_synthetic", ["MODEL.BASE_WIDTH", "32", "SOLVER.MAX_EPOCH", "6"])
    assert cakes == demo  # the demo's data settings, so its data overrides apply
    assert load_config("synthetic/r3d_r10_w32", ["MODEL.TEMPORAL_OP", "cakes"]) == cakes
