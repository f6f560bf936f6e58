"""The model zoo: the manifest against the code and the docs, get_model / get_weights for
every weight format (served from 127.0.0.1 or a local file), mismatches refused, torch.hub,
and the tools that take a zoo name."""
import dataclasses
import http.server
import importlib.util
import json
import os
import subprocess
import sys
import threading

import pytest
import torch
from test_convert import ORACLE, _official_state, _randomise_bn
from torchvision.models import video as tv_video
from torchvision.models._meta import _KINETICS400_CATEGORIES

import cakes_video
from cakes_video.checkpoint import CheckpointError, save_checkpoint
from cakes_video.datasets.synthetic import CLASS_NAMES, make_synthetic
from cakes_video.models import build_model
from cakes_video.models.complexity import count_gflops, count_params
from cakes_video.engine.testing import run_test
from cakes_video.zoo import ChecksumError, DownloadError, api, checkpoint_file, get_model, get_weights, list_models
from cakes_video.zoo.docs import with_zoo_table
from cakes_video.zoo.download import sha256_of
from cakes_video.zoo.manifest import ManifestError, load_manifest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL_ZOO_MD = os.path.join(REPO, "model_zoo", "MODEL_ZOO.md")


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache and no mirror or offline setting from outside."""
    monkeypatch.setenv("CAKES_VIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("CAKES_VIDEO_MIRROR", raising=False)
    monkeypatch.delenv("CAKES_VIDEO_OFFLINE", raising=False)
    return tmp_path / "cache"


@pytest.fixture
def served(tmp_path):
    """A folder served over HTTP on 127.0.0.1 (port chosen by the OS); yields (folder, base URL)."""
    folder = tmp_path / "served"
    folder.mkdir()
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(folder))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


def _with_entry(monkeypatch, name, **weights):
    """The zoo as it is, but entry ``name``'s weights fields replaced by ``weights``."""
    entries = dict(load_manifest())
    entries[name] = dataclasses.replace(entries[name], weights={**entries[name].weights, **weights})
    monkeypatch.setattr(api, "_manifest", lambda: entries)



# --- the manifest against the code and the docs ------------------------------------------------

def test_every_entry_builds_with_the_params_and_classes_it_states():
    for name in list_models():
        weights = get_weights(name)
        model = build_model(weights.config())
        assert count_params(model) == weights.entry.params, name
        assert len(weights.class_names()) == weights.config().MODEL.NUM_CLASSES, name


def test_every_entry_states_the_input_protocol_and_cost_of_its_config():
    for name in list_models():
        e, cfg = load_manifest()[name], get_weights(name).config()
        data, test = cfg.DATA, cfg.TEST
        assert (e.input["frames"], e.input["crop"], e.input["test_scale"]) == (
            data.NUM_FRAMES, data.TEST_CROP_SIZE, data.TEST_SCALE), name
        rate = e.input["sampling_rate"]
        assert data.SAMPLING == "tsn" if rate == "segments" else rate == data.SAMPLING_RATE, name
        assert list(e.input["mean"]) == list(data.MEAN) and list(e.input["std"]) == list(data.STD), name
        assert (e.protocol["clips"], e.protocol["crops"]) == (test.NUM_ENSEMBLE_VIEWS, test.NUM_SPATIAL_CROPS), name
        assert e.views == test.NUM_ENSEMBLE_VIEWS * test.NUM_SPATIAL_CROPS, name
        if e.params < 5_000_000:  # the small ones are cheap to count; the others: tests/test_convert.py
            shape = (3, data.NUM_FRAMES, data.TEST_CROP_SIZE, data.TEST_CROP_SIZE)
            assert abs(count_gflops(build_model(cfg), shape)["gflops"] - e.gflops_per_view) < 0.001, name


def test_model_zoo_md_table_is_generated_from_the_manifest():
    with open(MODEL_ZOO_MD) as f:
        text = f.read()
    assert with_zoo_table(text, load_manifest()) == text, "run tools/zoo_docs.py"
    for name in list_models():
        assert f"`{name}`" in text


def test_class_name_files_are_their_sources():
    assert get_weights("r3d_18").class_names() == list(_KINETICS400_CATEGORIES)
    synthetic = [n for n in list_models() if get_weights(n).entry.dataset.startswith("synthetic")]
    for name in synthetic:
        assert get_weights(name).class_names() == list(CLASS_NAMES)


def test_a_bad_entry_is_named(tmp_path):
    path = tmp_path / "manifest.yaml"
    path.write_text("broken:\n  config: r3d_18\n")
    with pytest.raises(ManifestError, match="'broken': missing"):
        load_manifest(str(path))


def test_unknown_names_list_the_zoo():
    with pytest.raises(KeyError, match="no zoo model 'r4d'.*r3d_18"):
        get_model("r4d")


def test_weights_give_metadata_transforms_and_the_protocol_config():
    weights = get_weights("r3d_18")
    assert weights.meta["accuracy"]["top1"] == 63.2 and weights.meta["weights"]["sha256"] == "b3b3357e"
    cfg = weights.config()
    assert (cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS) == (5, 1)  # the published protocol
    views = weights.transforms()(torch.randint(0, 255, (16, 128, 171, 3), dtype=torch.uint8).numpy())
    assert views.shape == (1, 3, 16, 112, 112) and views.dtype == torch.float32


# --- weights of every format -------------------------------------------------------------------

def test_torchvision_weights_download_convert_and_match_torchvision(served, monkeypatch):
    folder, url = served
    torch.manual_seed(0)
    reference = _randomise_bn(tv_video.r3d_18(weights=None))
    torch.save(reference.state_dict(), folder / "r3d_18-b3b3357e.pth")
    _with_entry(monkeypatch, "r3d_18", sha256=sha256_of(folder / "r3d_18-b3b3357e.pth"))
    monkeypatch.setenv("CAKES_VIDEO_MIRROR", url)
    model = cakes_video.get_model("r3d_18")
    x = torch.randn(1, 3, 8, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert (model(x) - reference(x)).abs().max() == 0
    assert not model.training


def test_official_weights_need_a_manual_download_then_reproduce_the_oracle(tmp_path):
    with pytest.raises(DownloadError, match="8frame_CAKES123D_PerformancePriority.tar.*by hand"):
        get_model("cakes123d_p_r50_ssv1_8f")
    with open(ORACLE) as f:
        oracle = json.load(f)
    src = tmp_path / "8frame_CAKES123D_PerformancePriority.tar"
    torch.save({"epoch": 40, "arch": "resnet50", "state_dict": _official_state(oracle["layout"])}, src)
    model = get_model("cakes123d_p_r50_ssv1_8f", weights_path=str(src))
    x = torch.randn(1, 3, 8, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert (model(x)[0] - torch.tensor(oracle["expected_logits"])).abs().max() < 1e-3


def test_a_mirror_serves_the_files_to_download_by_hand(served, monkeypatch):
    folder, url = served
    with open(ORACLE) as f:
        oracle = json.load(f)
    torch.save({"state_dict": _official_state(oracle["layout"])}, folder / "8frame_CAKES123D_PerformancePriority.tar")
    monkeypatch.setenv("CAKES_VIDEO_MIRROR", url)
    model = get_model("cakes123d_p_r50_ssv1_8f")  # fetched from the mirror, checked by its layout
    assert model.head.fc.out_features == 174
    torch.save({"state_dict": {"module.base_model.conv1.weight": torch.zeros(1)}},
               folder / "16frame_CAKES123D_PerformancePriority.tar")
    with pytest.raises(CheckpointError):
        get_model("cakes123d_p_r50_ssv1_16f")


def _project_checkpoint(path, name, **model_overrides):
    cfg = get_weights(name).config([k for kv in model_overrides.items() for k in kv])
    return save_checkpoint(str(path), build_model(cfg).state_dict(), cfg=cfg.dump())


def test_a_checkpoint_of_another_head_or_config_is_refused_naming_both(tmp_path, monkeypatch):
    name = "r3d_18"
    other_head = _project_checkpoint(tmp_path / "head.pyth", name, **{"MODEL.NUM_CLASSES": 5})
    _with_entry(monkeypatch, name, format="project", packaged=None)
    with pytest.raises(CheckpointError, match="MODEL.NUM_CLASSES: 5 in the file, 400 in the entry"):
        get_model(name, weights_path=other_head)
    other_op = _project_checkpoint(tmp_path / "op.pyth", name, **{"MODEL.TEMPORAL_OP": "2d"})
    with pytest.raises(CheckpointError, match="TEMPORAL_OP: '2d' in the file, '3d' in the entry"):
        get_model(name, weights_path=other_op)


def test_published_weights_with_another_head_are_refused_naming_both(served, monkeypatch):
    folder, url = served
    torch.save(tv_video.r3d_18(weights=None, num_classes=5).state_dict(), folder / "r3d_18-b3b3357e.pth")
    _with_entry(monkeypatch, "r3d_18", sha256=sha256_of(folder / "r3d_18-b3b3357e.pth"))
    monkeypatch.setenv("CAKES_VIDEO_MIRROR", url)
    with pytest.raises(CheckpointError, match="head of 5 classes; zoo model 'r3d_18' has 400"):
        get_model("r3d_18")


def test_converted_weights_are_made_once_per_source(served, monkeypatch):
    folder, url = served
    torch.save(tv_video.mc3_18(weights=None).state_dict(), folder / "mc3_18-a90a0ba3.pth")
    _with_entry(monkeypatch, "mc3_18", sha256=sha256_of(folder / "mc3_18-a90a0ba3.pth"))
    monkeypatch.setenv("CAKES_VIDEO_MIRROR", url)
    first = checkpoint_file("mc3_18")
    stamp = os.stat(first).st_mtime_ns
    assert checkpoint_file("mc3_18") == first and os.stat(first).st_mtime_ns == stamp
    assert cakes_video.load_model(get_weights("mc3_18").entry.config, first).head.fc.out_features == 400


def test_offline_without_the_file_names_it_and_how_to_get_it(monkeypatch):
    monkeypatch.setenv("CAKES_VIDEO_OFFLINE", "1")
    with pytest.raises(DownloadError, match="r3d_18-b3b3357e.pth"):
        get_model("r3d_18")


# --- the shipped models ------------------------------------------------------------------------

SHIPPED = [n for n in load_manifest() if load_manifest()[n].packaged_weights]


def test_shipped_weights_fit_the_budget_and_their_digests():
    assert len(SHIPPED) >= 2 and {"synthetic_cakes_r10_w32", "synthetic_r3d_r10_w32"} <= set(SHIPPED)
    sizes = [os.path.getsize(load_manifest()[n].packaged_weights) for n in SHIPPED]
    assert sum(sizes) <= 25 * 2**20
    for name, size in zip(SHIPPED, sizes):
        w = load_manifest()[name].weights
        assert size == w["size_bytes"] and sha256_of(load_manifest()[name].packaged_weights) == w["sha256"], name


@pytest.mark.slow
def test_every_shipped_model_scores_its_manifest_top1_on_the_regenerated_test_set(tmp_path):
    data = tmp_path / "data"
    make_synthetic(str(data), seed=0, videos_per_class=96, frames=16, size=64, splits=("test",))
    for name in SHIPPED:
        weights = get_weights(name)
        cfg = weights.config(["DATA.ROOT", str(data), "DATA.TEST_LIST", str(data / "test.txt"),
                              "TEST.CHECKPOINT_FILE", checkpoint_file(name), "OUTPUT_DIR", str(tmp_path / name),
                              "TEST.PROGRESS_BAR", False, "DATA_LOADER.NUM_WORKERS", 0, "DEVICE", "cpu"])
        results = run_test(cfg)
        assert results["num_videos"] == 240 and results["num_failed"] == 0, name
        assert abs(results["top1"] - weights.entry.accuracy["top1"]) <= 0.1, (name, results["top1"])
        assert abs(results["top5"] - weights.entry.accuracy["top5"]) <= 0.1, (name, results["top5"])


def test_a_changed_shipped_file_is_refused(tmp_path, monkeypatch):
    name = SHIPPED[0]
    _with_entry(monkeypatch, name, sha256="0" * 64)
    with pytest.raises(ChecksumError, match="expected"):
        get_model(name)


# --- torch.hub and the tools -------------------------------------------------------------------

def test_torch_hub_has_one_entry_point_per_zoo_model():
    spec = importlib.util.spec_from_file_location("hubconf", os.path.join(REPO, "hubconf.py"))
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    # what torch.hub.list reports: the public callables of hubconf.py
    assert sorted(n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")) == sorted(
        list_models())
    model = torch.hub.load(REPO, "mc3_18", source="local", pretrained=False)
    assert count_params(model) == get_weights("mc3_18").entry.params and not model.training


def test_tools_take_a_zoo_name(tmp_path):
    bench = subprocess.run([sys.executable, os.path.join(REPO, "tools", "benchmark_net.py"), "zoo:mc3_18",
                            "--frames", "2", "--size", "32", "--runs", "1", "--warmup", "1", "--threads", "1"],
                           capture_output=True, text=True, env={**os.environ, "CAKES_VIDEO_CACHE": str(tmp_path)})
    assert bench.returncode == 0, bench.stderr
    assert "zoo:mc3_18" in bench.stdout and "11,695,440" in bench.stdout
    offline = {**os.environ, "CAKES_VIDEO_CACHE": str(tmp_path), "CAKES_VIDEO_OFFLINE": "1"}
    test = subprocess.run([sys.executable, os.path.join(REPO, "tools", "test_net.py"), "--model", "r3d_18",
                           "OUTPUT_DIR", str(tmp_path / "out")], capture_output=True, text=True, env=offline)
    assert test.returncode == 1 and "DownloadError" in test.stderr and "Traceback" not in test.stderr
    fetch = subprocess.run([sys.executable, os.path.join(REPO, "tools", "download_weights.py"), "r3d_18",
                            "cakes123d_p_r50_ssv1_8f", "synthetic_r3d_r10_w32"], capture_output=True, text=True,
                           env=offline)
    assert fetch.returncode == 1 and "r3d_18: error:" in fetch.stdout
    assert "cakes123d_p_r50_ssv1_8f: manual:" in fetch.stdout and "synthetic_r3d_r10_w32.pyth" in fetch.stdout
    unknown = subprocess.run([sys.executable, os.path.join(REPO, "tools", "predict.py"), "--model", "r4d", "x.mp4"], capture_output=True, text=True, env=offline)
    assert unknown.returncode == 1 and "no zoo model 'r4d'" in unknown.stderr and "Traceback" not in unknown.stderr


def test_a_shipped_zoo_model_predicts_a_video_by_name(tmp_path):
    data = make_synthetic(str(tmp_path / "data"), videos_per_class=4, frames=16, size=64, splits=("test",))
    video = os.path.join(data["root"], open(data["test"]).readline().split()[0])
    run = subprocess.run([sys.executable, os.path.join(REPO, "tools", "predict.py"), video, "--model",
                          "synthetic_cakes_r10_w32", "DEVICE", "cpu"],
                         capture_output=True, text=True, env={**os.environ, "CAKES_VIDEO_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    assert "  1. moving right" in run.stdout  # the first test video moves right; the model gets it
