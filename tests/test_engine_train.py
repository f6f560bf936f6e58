"""The training and test loops on in-memory stand-ins (tests/test_engine_fakes.py): exact
resume, fine-tuning with a new head, NaN stop, failed videos, gradient accumulation,
refusing to test random weights, the report files."""
import csv
import json
import os

import pytest
import torch
from test_engine_fakes import FakeLoaderFn, tiny_cfg

from cakes_video.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from cakes_video.config import ConfigError
from cakes_video.datasets.failures import TooManyFailedVideos
from cakes_video.engine import testing
from cakes_video.engine.hooks import NonFiniteLossError
from cakes_video.engine.monitor import read_metrics
from cakes_video.engine.predict import load_trained_model
from cakes_video.engine.runtime import amp_dtype
from cakes_video.engine.setup import build_trainer, train
from cakes_video.engine.testing import inference_model, run_test
from cakes_video.engine.train import Hook
from cakes_video.models import build_model
from cakes_video.models.fusion import FusedConv3d
from cakes_video.models.inference import ChannelsLast3d
from cakes_video.solver import lr_function


class CrashAfterStep(Hook):
    """Simulates a crash (e.g. the machine going down) right after optimizer step ``iteration``."""

    def __init__(self, iteration):
        self.iteration = iteration

    def after_step(self, trainer, record):
        if record["iteration"] == self.iteration:
            raise KeyboardInterrupt("simulated crash")


def _csv_dicts(path):
    with open(path) as f:
        return list(csv.DictReader(f))


def _iter_losses(out_dir):
    return {r["iteration"]: r["loss"] for r in read_metrics(str(out_dir), "train_iter")}


def test_exact_resume_repeats_the_uninterrupted_run(tmp_path):
    loader_fn = FakeLoaderFn(num_videos=8)
    opts = ("SOLVER.MAX_EPOCH", 3, "SOLVER.WARMUP_EPOCHS", 1.0)
    full = train(tiny_cfg(tmp_path / "full", *opts), loader_fn)
    crashed_cfg = tiny_cfg(tmp_path / "crashed", *opts)
    with pytest.raises(KeyboardInterrupt):
        train(crashed_cfg, loader_fn, hooks=[CrashAfterStep(5)])  # mid-epoch 3 (2 steps per epoch)
    assert sorted(os.listdir(tmp_path / "crashed" / "checkpoints"))[-1] == "checkpoint_epoch_00002.pyth"
    resumed = train(crashed_cfg, loader_fn)  # back to the end of epoch 2, epoch 3 again
    assert resumed["epochs"] == 3 and full["iteration"] == resumed["iteration"] == 6
    crashed_losses = [r["loss"] for r in read_metrics(str(tmp_path / "crashed"), "train_iter")]
    assert len(crashed_losses) == 7 and crashed_losses[4] == crashed_losses[5]  # step 5 before and after
    assert _iter_losses(tmp_path / "full") == _iter_losses(tmp_path / "crashed")
    a = load_checkpoint(full["last_checkpoint"])["model"]
    b = load_checkpoint(resumed["last_checkpoint"])["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    log = (tmp_path / "crashed" / "log.txt").read_text()
    assert "resuming from" in log and "missing keys: none; unexpected keys: none" in log


def test_finetune_with_another_number_of_classes(tmp_path):
    source = tiny_cfg(tmp_path / "src", "MODEL.NUM_CLASSES", 7)
    pretrained = build_model(source)
    path = save_checkpoint(str(tmp_path / "pretrained.pyth"), pretrained.state_dict())
    t = build_trainer(tiny_cfg(tmp_path / "ft", "TRAIN.CHECKPOINT_FILE", path), FakeLoaderFn())
    model = t.model
    assert torch.equal(model.conv.weight, pretrained.conv.weight)
    assert model.head.fc.weight.shape == (4, 8)
    log = (tmp_path / "ft" / "log.txt").read_text()
    assert "head re-initialised" in log and "mis-shaped keys: head.fc.weight" in log


def test_finetune_rejects_a_checkpoint_of_another_body(tmp_path):
    state = build_model(tiny_cfg(tmp_path / "src")).state_dict()
    state["conv.weight"] = torch.zeros(8, 3, 1, 1, 1)
    path = save_checkpoint(str(tmp_path / "bad.pyth"), state)
    with pytest.raises(CheckpointError, match="conv.weight"):
        build_trainer(tiny_cfg(tmp_path / "ft", "TRAIN.CHECKPOINT_FILE", path), FakeLoaderFn())


class PoisonAfter(Hook):
    def __init__(self, epoch):
        self.epoch = epoch

    def after_epoch(self, trainer, epoch, stats):
        if epoch == self.epoch:
            trainer.loaders["train"].dataset.poison = True


@pytest.mark.parametrize("batch, accum", [(4, 1), (2, 2)])  # the check runs once per optimizer step
def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, batch, accum):
    cfg = tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 3, "TRAIN.BATCH_SIZE", batch, "SOLVER.GRAD_ACCUM_STEPS", accum)
    with pytest.raises(NonFiniteLossError, match="checkpoint_epoch_00001.pyth") as info:
        train(cfg, FakeLoaderFn(), hooks=[PoisonAfter(1)])
    assert "loss is nan at epoch 2" in str(info.value)
    steps = read_metrics(str(tmp_path), "train_iter")
    assert [r["epoch"] for r in steps] == [1, 1]  # epoch 2 stopped before its first optimizer step
    ckpts = sorted(os.listdir(tmp_path / "checkpoints"))
    assert ckpts == ["best.pyth", "checkpoint_epoch_00001.pyth"]
    weights = load_checkpoint(str(tmp_path / "checkpoints" / ckpts[1]))["model"]
    assert all(torch.isfinite(v).all() for v in weights.values() if v.is_floating_point())


def test_failed_videos_are_counted_then_too_many_stop(tmp_path):
    loader_fn = FakeLoaderFn(num_videos=8, failing=[3])
    train(tiny_cfg(tmp_path / "ok", "SOLVER.MAX_EPOCH", 1, "DATA.MAX_FAILED_FRACTION", 0.2), loader_fn)
    epoch = read_metrics(str(tmp_path / "ok"), "epoch")[0]
    assert epoch["train_num_failed"] == 1 and epoch["val_num_failed"] == 1
    with pytest.raises(TooManyFailedVideos, match="DATA.MAX_FAILED_FRACTION"):
        train(tiny_cfg(tmp_path / "bad", "SOLVER.MAX_EPOCH", 1, "DATA.MAX_FAILED_FRACTION", 0.01), loader_fn)


def test_gradient_accumulation_equals_the_large_batch(tmp_path):
    opts = ("SOLVER.MAX_EPOCH", 1, "TRAIN.EVAL_PERIOD", 0, "TRAIN.BEST_METRIC", "train_loss",
            "SOLVER.OPTIMIZER", "sgd", "SOLVER.LR_POLICY", "steps")
    big = train(tiny_cfg(tmp_path / "big", *opts, "TRAIN.BATCH_SIZE", 8, arch="engine_tiny_nobn"), FakeLoaderFn())
    acc = train(tiny_cfg(tmp_path / "acc", *opts, "TRAIN.BATCH_SIZE", 4, "SOLVER.GRAD_ACCUM_STEPS", 2,
                         arch="engine_tiny_nobn"), FakeLoaderFn())
    assert big["iteration"] == acc["iteration"] == 1
    a, b = (load_checkpoint(r["last_checkpoint"])["model"] for r in (big, acc))
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    assert not torch.equal(a["conv.weight"], build_model(tiny_cfg(tmp_path / "x", arch="engine_tiny_nobn")).conv.weight)


def test_refuses_to_test_without_a_checkpoint(tmp_path):
    with pytest.raises(ConfigError, match="TEST.CHECKPOINT_FILE.*refusing to test random weights"):
        run_test(tiny_cfg(tmp_path), FakeLoaderFn())
    assert not (tmp_path / "results.json").exists()


def test_missing_list_file_fails_before_training_naming_the_key(tmp_path):
    cfg = tiny_cfg(tmp_path, "DATA.TRAIN_LIST", str(tmp_path / "nope.txt"))
    with pytest.raises(ConfigError, match="DATA.TRAIN_LIST"):
        train(cfg)
    assert not (tmp_path / "checkpoints").exists()


def test_train_then_test_writes_the_reports(tmp_path):
    cfg = tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 2, "TRAIN.PRECISE_BN", True, "TRAIN.PRECISE_BN_ITERS", 2,
                   "SOLVER.ZERO_WD_NORM_BIAS", True, "SOLVER.LABEL_SMOOTHING", 0.1, "SOLVER.CLIP_GRAD_NORM", 1.0,
                   "DATA.MAX_FAILED_FRACTION", 0.2)
    train(cfg, FakeLoaderFn(num_videos=8))
    results = run_test(cfg, FakeLoaderFn(num_videos=9, failing=[8]))
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved == results
    for key in ("top1", "top5", "mean_class_acc", "num_classes", "num_videos", "num_failed", "failed_videos",
                "protocol", "params", "gflops_per_view"):
        assert key in saved, key
    assert saved["num_videos"] == 8 and saved["num_failed"] == 1 and saved["failed_videos"] == ["video_008.mp4"]
    assert saved["protocol"]["views_per_video"] == 2 and saved["protocol"]["aggregation"] == "mean_softmax"
    assert saved["params"] == sum(p.numel() for p in build_model(cfg).parameters()) and saved["gflops_per_view"] > 0
    rows = _csv_dicts(tmp_path / "predictions.csv")
    assert sorted(r["video_id"] for r in rows) == [f"video_{i:03d}" for i in range(8)]
    assert sum(int(r["correct"]) for r in rows) / 8 * 100 == pytest.approx(saved["top1"])
    with open(tmp_path / "confusion_matrix.csv") as f:
        confusion = list(csv.reader(f))
    assert sum(int(v) for row in confusion[1:] for v in row[1:]) == 8
    assert (tmp_path / "confusion_matrix.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "training_curves.png").read_bytes()[:4] == b"\x89PNG"  # drawn when training ended
    epochs = read_metrics(str(tmp_path), "epoch")
    assert [e["epoch"] for e in epochs] == [1, 2] and all("val_top1" in e for e in epochs)
    lr = lr_function(cfg.SOLVER, iters_per_epoch=2)  # 8 videos, batch 4
    assert [r["lr"] for r in read_metrics(str(tmp_path), "train_iter")] == pytest.approx([lr(i) for i in range(4)])


def test_deployed_test_gives_the_same_scores(tmp_path, monkeypatch):
    cfg = tiny_cfg(tmp_path)
    train(cfg, FakeLoaderFn(num_videos=8))
    plain = run_test(cfg, FakeLoaderFn(num_videos=8))
    plain_rows = _csv_dicts(tmp_path / "predictions.csv")
    deployed_cfg = tiny_cfg(tmp_path, "TEST.DEPLOY", True, "TEST.FUSE", True)
    model = load_trained_model(deployed_cfg)  # what run_test and predict run: BN folded, convs fused
    kinds = {type(m) for m in model.modules()}
    assert isinstance(model, ChannelsLast3d) and FusedConv3d in kinds and torch.nn.BatchNorm3d not in kinds
    ran = []

    def spy(cfg, model):  # records the model run_test evaluates
        ran.append(inference_model(cfg, model))
        return ran[-1]
    monkeypatch.setattr(testing, "inference_model", spy)
    deployed = run_test(deployed_cfg, FakeLoaderFn(num_videos=8))
    assert [type(m) for m in ran] == [ChannelsLast3d]
    rows = _csv_dicts(tmp_path / "predictions.csv")
    assert deployed["top1"] == plain["top1"] and deployed["gflops_per_view"] == plain["gflops_per_view"]
    assert plain["inference_form"] == {"deploy": False, "fuse": False, "cakes_impl": "reference"}
    assert deployed["inference_form"] == {"deploy": True, "fuse": True, "cakes_impl": "reference"}
    assert [r["video_id"] for r in rows] == [r["video_id"] for r in plain_rows]
    for a, b in zip(plain_rows, rows):
        assert a["topk_labels"] == b["topk_labels"]
        scores = [(float(x), float(y)) for x, y in zip(a["topk_scores"].split(";"), b["topk_scores"].split(";"))]
        assert all(x == pytest.approx(y, abs=1e-4) for x, y in scores)


def test_mixed_precision_only_on_cuda():
    assert amp_dtype("bf16", torch.device("cpu")) is None and amp_dtype("off", torch.device("cuda")) is None
    assert amp_dtype("bf16", torch.device("cuda")) == torch.bfloat16
    assert amp_dtype("fp16", torch.device("cuda")) == torch.float16
