"""Resuming a run: exact resume of a SIGKILLed run with the demo's data settings (decoded-frame
cache, persistent workers)."""
import os
import signal
import subprocess
import sys

import pytest

from cakes_video.datasets.synthetic import make_synthetic
from cakes_video.engine.demo import data_overrides
from cakes_video.engine.monitor import read_metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = "demo/cakes_r10_synthetic"
# The demo's data settings (DATA.CACHE_DECODED True, one persistent worker) on a tiny network
TINY = ["DEVICE", "cpu", "MODEL.BASE_WIDTH", "8", "DATA.NUM_FRAMES", "4", "DATA.SAMPLING_RATE", "4",
        "DATA.TRAIN_JITTER_SCALES", "[32, 40]", "DATA.TRAIN_CROP_SIZE", "32", "DATA.TEST_SCALE", "32",
        "DATA.TEST_CROP_SIZE", "32", "TRAIN.BATCH_SIZE", "4", "SOLVER.MAX_EPOCH", "2", "DETERMINISTIC", "True",
        "TRAIN.PROGRESS_BAR", "False", "TRAIN.TENSORBOARD", "False", "NUM_THREADS", "1", "TEST.ENABLE", "False"]
# Trains the config argv[2:] names, SIGKILLing itself after optimizer step argv[1] (0: never)
TRAIN_SCRIPT = """
import os, signal, sys
from cakes_video import load_config
from cakes_video.engine.setup import train
from cakes_video.engine.train import Hook

class KillAfterStep(Hook):
    def after_step(self, trainer, record):
        if record["iteration"] == int(sys.argv[1]):
            os.kill(os.getpid(), signal.SIGKILL)

train(load_config(sys.argv[2], sys.argv[3:]), hooks=[KillAfterStep()])
"""


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """The synthetic benchmark, one video per class and split (10 train videos: 2 steps of 4)."""
    return make_synthetic(str(tmp_path_factory.mktemp("synthetic")), videos_per_class=1, frames=16, size=40)["root"]


def _train(out_dir, data_dir, kill_after: int = 0):
    argv = [sys.executable, "-c", TRAIN_SCRIPT, str(kill_after), DEMO, *data_overrides(str(out_dir), data_dir), *TINY]
    env = {**os.environ, "PYTHONPATH": REPO}
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=300)


def _epochs(out_dir):
    """The last record of each epoch (a resumed run repeats the epoch it was killed in)."""
    return {r["epoch"]: r for r in read_metrics(str(out_dir), "epoch")}


@pytest.mark.slow
def test_a_run_killed_mid_epoch_resumes_exactly_with_the_decoded_cache_and_workers(tmp_path, synthetic):
    full = _train(tmp_path / "full", synthetic)
    assert full.returncode == 0, full.stderr
    killed = _train(tmp_path / "killed", synthetic, kill_after=3)  # the first step of epoch 2
    assert killed.returncode == -signal.SIGKILL
    assert sorted(os.listdir(tmp_path / "killed" / "checkpoints"))[-1] == "checkpoint_epoch_00001.pyth"
    resumed = _train(tmp_path / "killed", synthetic)
    assert resumed.returncode == 0, resumed.stderr
    expected, got = _epochs(tmp_path / "full"), _epochs(tmp_path / "killed")
    assert sorted(got) == [1, 2]
    keys = ("train_loss", "train_top1", "val_loss", "val_top1")
    for epoch in (1, 2):
        assert {k: got[epoch][k] for k in keys} == {k: expected[epoch][k] for k in keys}, epoch
