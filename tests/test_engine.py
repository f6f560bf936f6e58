"""Engine pieces without a loop: schedules, parameter groups, aggregation, metrics, reports,
checkpoint manager (keep-last-N, atomic best.pyth, RNG round trip), config validation,
atomic results.json."""
import json
import math
import os
import random
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from cakes_video.checkpoint import load_checkpoint, save_checkpoint
from cakes_video.config import ConfigError, get_cfg
from cakes_video.config_loader import check_config
from cakes_video.engine.checkpointer import Checkpointer, rng_state, set_rng_state
from cakes_video.solver import IterationScheduler, build_optimizer, lr_function, param_groups
from cakes_video.utils.metrics import (
    aggregate_views,
    confusion_matrix,
    mean_class_accuracy,
    per_class_accuracy,
    topk_correct,
)


def _solver(**kw):
    cfg = get_cfg()
    for k, v in kw.items():
        cfg.SOLVER[k] = v
    return cfg.SOLVER


def test_cosine_with_warmup_values():
    s = _solver(LR_POLICY="cosine", BASE_LR=1.0, COSINE_END_LR=0.0, MAX_EPOCH=10, WARMUP_EPOCHS=1.0,
                WARMUP_START_LR=0.1)
    lr = lr_function(s, iters_per_epoch=10)  # 100 iterations, 10 of warm-up
    end_of_warmup = 0.5 * (1 + math.cos(math.pi * 10 / 100))
    assert lr(0) == pytest.approx(0.1)
    assert lr(5) == pytest.approx(0.1 + (end_of_warmup - 0.1) * 0.5)
    assert lr(10) == pytest.approx(end_of_warmup)
    assert lr(50) == pytest.approx(0.5)
    assert lr(100) == pytest.approx(0.0, abs=1e-12)


def test_steps_schedule_values():
    s = _solver(LR_POLICY="steps", BASE_LR=0.4, STEPS=[2, 3.5], GAMMA=0.1, MAX_EPOCH=5)
    lr = lr_function(s, iters_per_epoch=4)  # boundaries at iterations 8 and 14
    assert [lr(i) for i in (0, 7, 8, 13, 14, 19)] == pytest.approx([0.4, 0.4, 0.04, 0.04, 0.004, 0.004])


def test_iteration_scheduler_sets_every_group_and_round_trips():
    net = nn.Linear(2, 2)
    opt = torch.optim.SGD(param_groups(net, 1e-4, True), lr=1.0)
    sched = IterationScheduler(opt, lambda it: 1.0 / (it + 1))
    sched.apply()
    sched.step()
    assert sched.apply() == 0.5 and all(g["lr"] == 0.5 for g in opt.param_groups)
    other = IterationScheduler(opt, lambda it: 1.0 / (it + 1))
    other.load_state_dict(sched.state_dict())
    assert other.iteration == 1


def test_param_groups_exempt_norm_and_bias():
    net = nn.Sequential(nn.Conv3d(3, 4, 3, bias=False), nn.BatchNorm3d(4), nn.Flatten(), nn.Linear(4, 2))
    groups = {g["name"]: g for g in param_groups(net, 0.01, zero_wd_norm_bias=True)}
    decay = {id(p) for p in groups["decay"]["params"]}
    assert decay == {id(net[0].weight), id(net[3].weight)}
    assert {id(p) for p in groups["no_decay"]["params"]} == {id(net[1].weight), id(net[1].bias), id(net[3].bias)}
    assert groups["no_decay"]["weight_decay"] == 0.0 and groups["decay"]["weight_decay"] == 0.01
    single = param_groups(net, 0.01, zero_wd_norm_bias=False)
    assert len(single) == 1 and len(single[0]["params"]) == 5


@pytest.mark.parametrize("name, cls", [("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW)])
def test_build_optimizer(name, cls):
    opt = build_optimizer(nn.Linear(3, 2), _solver(OPTIMIZER=name, NESTEROV=True, MOMENTUM=0.9))
    assert isinstance(opt, cls)
    if name == "sgd":
        assert opt.param_groups[0]["nesterov"] and opt.param_groups[0]["momentum"] == 0.9


def test_aggregation_functions():
    logits = torch.tensor([[[2.0, 0.0], [0.0, 4.0]]])  # one video, two views, two classes
    probs = logits.softmax(-1)
    assert torch.allclose(aggregate_views(logits, "mean_logits"), torch.tensor([[1.0, 2.0]]))
    assert torch.allclose(aggregate_views(logits, "mean_softmax"), probs.mean(1))
    assert torch.allclose(aggregate_views(logits, "sum_softmax"), probs.sum(1))
    assert torch.allclose(aggregate_views(logits, "max"), probs.amax(1))
    with pytest.raises(ValueError, match="TEST.AGGREGATION"):
        aggregate_views(logits, "median")


def test_topk_and_class_metrics():
    scores = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.3, 0.5], [0.1, 0.6, 0.3], [0.5, 0.4, 0.1]])
    labels = torch.tensor([0, 1, 1, 1])
    hits = topk_correct(scores, labels, (1, 2))
    assert hits[1].tolist() == [True, False, True, False] and hits[2].tolist() == [True, True, True, True]
    cm = confusion_matrix(labels, scores.argmax(1), 3)
    assert cm.tolist() == [[1, 0, 0], [1, 1, 1], [0, 0, 0]]
    acc = per_class_accuracy(cm)
    assert acc[0] == 1.0 and acc[1] == pytest.approx(1 / 3) and math.isnan(acc[2])
    assert mean_class_accuracy(cm) == pytest.approx((1 + 1 / 3) / 2)


def test_rng_state_round_trip_is_weights_only(tmp_path):
    torch.manual_seed(1), np.random.seed(2), random.seed(3)
    state = rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    save_checkpoint(str(tmp_path / "c.pyth"), {}, rng=[state])
    set_rng_state(load_checkpoint(str(tmp_path / "c.pyth"))["rng"][0])
    assert torch.equal(torch.rand(3), expected[0])
    assert np.array_equal(np.random.rand(3), expected[1]) and random.random() == expected[2]


def test_keep_last_n_and_best(tmp_path):
    ck = Checkpointer(str(tmp_path), keep_last=2)
    for epoch in range(1, 5):
        ck.save(epoch, {"w": torch.tensor([float(epoch)])}, {}, is_best=epoch == 2)
    assert [os.path.basename(p) for p in ck.epoch_checkpoints()] == ["checkpoint_epoch_00003.pyth", "checkpoint_epoch_00004.pyth"]
    assert load_checkpoint(ck.best_path)["epoch"] == 2
    assert ck.latest().endswith("epoch_00004.pyth") and ck.for_testing() == ck.best_path


def test_crash_while_copying_best_keeps_the_previous_best(tmp_path, monkeypatch):
    ck = Checkpointer(str(tmp_path), keep_last=0)
    ck.save(1, {"w": torch.ones(2)}, {}, is_best=True)

    def broken_copy(src, dst, *args, **kwargs):
        with open(dst, "wb") as f:
            f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(shutil, "copyfile", broken_copy)
    with pytest.raises(OSError, match="disk full"):
        ck.save(2, {"w": torch.zeros(2)}, {}, is_best=True)
    best = load_checkpoint(ck.best_path)
    assert best["epoch"] == 1 and torch.equal(best["model"]["w"], torch.ones(2))
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "best.pyth", "checkpoint_epoch_00001.pyth", "checkpoint_epoch_00002.pyth"]  # no temporary file left


@pytest.mark.parametrize("key, value, match", [
    ("SOLVER.OPTIMIZER", "adam", "SOLVER.OPTIMIZER"),
    ("SOLVER.GRAD_ACCUM_STEPS", 0, "SOLVER.GRAD_ACCUM_STEPS"),
    ("SOLVER.WARMUP_EPOCHS", 20.0, "SOLVER.WARMUP_EPOCHS"),
    ("TRAIN.MIXED_PRECISION", "fp8", "TRAIN.MIXED_PRECISION"),
    ("TEST.AGGREGATION", "median", "TEST.AGGREGATION"),
    ("TEST.NUM_SPATIAL_CROPS", 2, "TEST.NUM_SPATIAL_CROPS"),
    ("TEST.FUSE", True, "TEST.FUSE: .*TEST.DEPLOY"),
])
def test_validation_names_the_key(key, value, match):
    cfg = get_cfg()
    group, name = key.split(".")
    cfg[group][name] = value
    with pytest.raises(ConfigError, match=match):
        check_config(cfg)


def test_json_reports_are_written_atomically(tmp_path, monkeypatch):
    from cakes_video.utils.io import write_json

    path = tmp_path / "results.json"
    write_json(str(path), {"top1": 1.0})
    assert json.loads(path.read_text()) == {"top1": 1.0}
    assert os.listdir(tmp_path) == ["results.json"]

    def broken_dump(obj, f, *args, **kwargs):
        f.write('{"top1": ')
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        write_json(str(path), {"top1": 2.0})
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"top1": 1.0}  # the old results survive a failed write
    assert os.listdir(tmp_path) == ["results.json"]  # and no temporary file is left
