"""End to end on the real pieces: a tiny synthetic benchmark -> train 1 epoch -> multi-view
test -> predict, through tools/demo.py's library entry point; the tools' error handling."""
import importlib.util
import json
import os

import pytest

from cakes_video.engine.demo import run_demo

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "tools", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


TINY = ["SOLVER.MAX_EPOCH", "1", "TRAIN.BATCH_SIZE", "5", "TEST.BATCH_SIZE", "4", "TEST.NUM_ENSEMBLE_VIEWS", "2",
            "TEST.NUM_SPATIAL_CROPS", "1", "DATA_LOADER.NUM_WORKERS", "0", "DATA.CACHE_DECODED", "False",
            "TRAIN.PROGRESS_BAR", "False", "TEST.PROGRESS_BAR", "False", "DEVICE", "cpu", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "4",
            "DATA.TRAIN_JITTER_SCALES", "[16, 20]", "DATA.TRAIN_CROP_SIZE", "16", "DATA.TEST_SCALE", "16",
            "DATA.TEST_CROP_SIZE", "16"]


@pytest.mark.slow
def test_demo_end_to_end_on_a_tiny_benchmark(tmp_path, capsys):
    out = tmp_path / "demo"
    opts = TINY
    results = run_demo(str(out), overrides=opts, videos_per_class=1, frames=16, size=32)
    saved = json.loads((out / "results.json").read_text())
    assert saved == results
    assert saved["num_videos"] == 10 and saved["num_failed"] == 0 and saved["num_classes"] == 10
    assert saved["protocol"]["views_per_video"] == 2 and saved["protocol"]["crop_size"] == 16
    assert saved["params"] > 1e6 and saved["gflops_per_view"] > 0
    assert len(saved["demo"]["prediction"]["top5"]) == 5
    assert os.path.isfile(saved["demo"]["config_file"]) and saved["demo"]["config"] == "demo/cakes_r10_synthetic"
    assert os.path.isfile(out / "checkpoints" / "checkpoint_epoch_00001.pyth")
    assert "top-1" in capsys.readouterr().out

    cfg_args = ["--cfg", "demo/cakes_r10_synthetic",
                "OUTPUT_DIR", str(out), "DATA.CLASS_NAMES", str(out / "data" / "classes.txt"), *opts]
    video = str(out / "data" / saved["demo"]["prediction"]["video"])

    def predict(*opts):
        argv = [video, "--topk", "3", "--json", str(tmp_path / "p.json"), "--no-progress", *cfg_args, *opts]
        assert _tool("predict").main(argv) == 0
        return [(t["label"], t["score"]) for t in json.loads((tmp_path / "p.json").read_text())[0]["topk"]]

    ranked = predict()
    assert [name for name, _ in ranked] == [t["class"] for t in saved["demo"]["prediction"]["top5"][:3]]
    # the inference form (BN folded, efficient CAKES plan, fused convs) ranks the same, same scores
    fast_opts = ["TEST.DEPLOY", "True", "TEST.FUSE", "True", "MODEL.CAKES.IMPL", "efficient"]
    fast = predict(*fast_opts)
    assert [name for name, _ in fast] == [name for name, _ in ranked]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(fast, ranked))
    # what predict ran: the deployed form, whose efficient CAKES convs carry zero rows they drop
    from cakes_video import load_config
    from cakes_video.engine.predict import load_trained_model
    from cakes_video.models.deploy import DeployedCakesConv3d
    from cakes_video.models.inference import ChannelsLast3d

    fast_model = load_trained_model(load_config(cfg_args[1], cfg_args[2:] + fast_opts))
    layers = [m for m in fast_model.modules() if isinstance(m, DeployedCakesConv3d)]
    assert isinstance(fast_model, ChannelsLast3d) and layers
    assert any(sum(c.weight.shape[0] for c in m.convs) > sum(b - a for _, a, b in m.segments) for m in layers)

    # training leaves OUTPUT_DIR/config.yaml beside its checkpoints: enough to load the model
    import cakes_video

    model = cakes_video.load_model(str(out / "config.yaml"), str(out / "checkpoints" / "best.pyth"))
    assert not model.training and model.head.fc.out_features == 10


def test_test_net_refuses_without_weights(tmp_path, caplog):
    from cakes_video.config import ConfigError
    from cakes_video.engine.cli import run_tool

    argv = ["--cfg", "demo/cakes_r10_synthetic",
            "OUTPUT_DIR", str(tmp_path), "DATA.TEST_LIST", str(tmp_path / "test.txt")]
    # the refusal comes first, before the missing DATA.TEST_LIST is noticed
    with pytest.raises(ConfigError, match="TEST.CHECKPOINT_FILE.*refusing to test random weights"):
        _tool("test_net").main(argv)
    caplog.clear()
    assert run_tool(lambda: _tool("test_net").main(argv)) == 1
    assert "ConfigError" in caplog.text and "refusing to test random weights" in caplog.text
    assert not (tmp_path / "results.json").exists()


def test_train_net_fails_before_training_when_the_list_is_missing(tmp_path):
    from cakes_video.engine.cli import run_tool

    argv = ["--cfg", "demo/cakes_r10_synthetic",
            "OUTPUT_DIR", str(tmp_path), "DATA.TRAIN_LIST", str(tmp_path / "train.txt")]
    with pytest.raises(Exception, match="DATA.TRAIN_LIST"):
        _tool("train_net").main(argv)
    assert run_tool(lambda: _tool("train_net").main(argv)) == 1
    assert not (tmp_path / "checkpoints").exists()


@pytest.mark.slow
def test_compare_ops_trains_one_model_per_op_on_shared_data(tmp_path):
    from cakes_video.benchmarks.comparison import compare_ops

    rows = compare_ops(str(tmp_path), ops=("2d", "3d"), overrides=TINY, videos_per_class=1, threads=1, runs=1)
    assert [r["name"] for r in rows] == ["C2D", "R3D"]
    assert rows[1]["params"] > rows[0]["params"] and rows[1]["gflops_per_view"] > rows[0]["gflops_per_view"]
    assert all(r["latency_ms"] > 0 and os.path.isfile(r["results"]) for r in rows)
    assert json.loads((tmp_path / "comparison.json").read_text()) == rows
    table = (tmp_path / "comparison.md").read_text()
    assert "| C2D |" in table and "| R3D |" in table
    assert sorted(os.listdir(tmp_path / "data" / "videos")) == ["test", "train", "val"]  # one benchmark for all
