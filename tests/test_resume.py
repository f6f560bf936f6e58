"""Resuming a run in its OUTPUT_DIR: the config checked against the run's config.yaml, one run
per folder (its lock), unreadable newest checkpoints skipped, and exact resume of a SIGKILLed
run with the demo's data settings (decoded-frame cache, persistent workers).

Each refusal is checked as a user sees it through ``run_tool``: exit status 1, one line naming
the key or file, and nothing written first (no checkpoint, no metrics line, config.yaml kept)."""
import errno
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import yaml
from test_engine_fakes import FakeLoaderFn, tiny_cfg
from test_engine_train import CrashAfterStep

from cakes_video.config import get_cfg
from cakes_video.config.resume import NEUTRAL_KEYS, config_changes, flat_items, is_neutral
from cakes_video.datasets.synthetic import make_synthetic
from cakes_video.engine.cli import run_tool
from cakes_video.engine.demo import data_overrides
from cakes_video.engine.monitor import read_metrics, setup_logging
from cakes_video.engine.setup import train
from cakes_video.utils.io import FileLock, LockHeldError

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
# Takes the lock argv[1], forks a child that sleeps (writing its pid to argv[2]), SIGKILLs itself
FORK_SCRIPT = """
import os, signal, sys, time
from cakes_video.utils.io import FileLock
FileLock(sys.argv[1]).acquire()
worker = os.fork()
if worker == 0:
    time.sleep(60)
    os._exit(0)
with open(sys.argv[2], "w") as f:
    f.write(str(worker))
os.kill(os.getpid(), signal.SIGKILL)
"""


def _snapshot(out_dir):
    """What a refused run must leave as it was: every file's bytes (no lock file either)."""
    return {os.path.relpath(os.path.join(d, f), out_dir): open(os.path.join(d, f), "rb").read()
            for d, _, files in os.walk(out_dir) for f in files}


def _refused(caplog, cfg, loader_fn=None):
    """run_tool's status and its one error record for ``train(cfg)``, as a new process sees
    them (no log file of an earlier run in this process still open)."""
    setup_logging()
    caplog.clear()
    status = run_tool(lambda: train(cfg, loader_fn or FakeLoaderFn()))
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and "\n" not in errors[0], errors
    return status, errors[0]


def test_every_neutral_key_exists_and_the_rest_change_results():
    keys = [k for k, _ in flat_items(get_cfg())]
    assert all(any(k == n or k.startswith(n + ".") for k in keys) for n in NEUTRAL_KEYS)
    assert is_neutral("DATA_LOADER.NUM_WORKERS") and is_neutral("TEST.NUM_SPATIAL_CROPS")
    assert not any(is_neutral(k) for k in ("SEED", "MODEL.DEPTH", "DATA.TRAIN_LIST", "DATA.NUM_FRAMES",
                                           "SOLVER.BASE_LR", "TRAIN.BATCH_SIZE", "TRAIN.EVAL_PERIOD"))
    assert not is_neutral("DATA.CACHE_DECODED_X") and not is_neutral("TESTING.X")  # whole names only
    old, new = get_cfg(), get_cfg()
    new.merge_from_list(["SOLVER.MAX_EPOCH", 6, "TRAIN.LOG_PERIOD", 3, "DATA.TRAIN_JITTER_SCALES", (256, 320)])
    assert config_changes(old, new) == ({"SOLVER.MAX_EPOCH": (10, 6)}, {"TRAIN.LOG_PERIOD": (10, 3)})


def test_resume_refuses_a_changed_config_naming_every_key_and_both_values(tmp_path, caplog):
    train(tiny_cfg(tmp_path), FakeLoaderFn())  # 2 epochs, batch 4
    before = _snapshot(tmp_path)
    changed = tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 3, "TRAIN.BATCH_SIZE", 2, "DATA.TRAIN_LIST", "other.txt",
                       "TRAIN.LOG_PERIOD", 2)
    status, message = _refused(caplog, changed)
    assert status == 1
    assert "SOLVER.MAX_EPOCH 2 -> 3" in message and "TRAIN.BATCH_SIZE 4 -> 2" in message
    assert "DATA.TRAIN_LIST '' -> 'other.txt'" in message and "TRAIN.LOG_PERIOD" not in message
    assert str(tmp_path / "checkpoints" / "checkpoint_epoch_00002.pyth") in message
    assert "TRAIN.RESUME_CHANGED_CONFIG" in message
    assert _snapshot(tmp_path) == before  # no checkpoint, no metrics or log line, config.yaml kept


def test_keys_that_cannot_change_results_resume_and_are_recorded(tmp_path, caplog):
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 3), FakeLoaderFn(), hooks=[CrashAfterStep(3)])
    assert run_tool(lambda: train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 3, "TRAIN.LOG_PERIOD", 2,
                                           "NUM_THREADS", 1, "TRAIN.CHECKPOINT_KEEP_LAST", 5), FakeLoaderFn())) == 0
    (change,) = read_metrics(str(tmp_path), "config_change")
    assert change["epoch"] == 1 and change["result_changes"] == {}
    assert change["neutral_changes"] == {"NUM_THREADS": [0, 1], "TRAIN.CHECKPOINT_KEEP_LAST": [3, 5],
                                         "TRAIN.LOG_PERIOD": [1, 2]}
    assert yaml.safe_load((tmp_path / "config.1.yaml").read_text())["TRAIN"]["LOG_PERIOD"] == 1
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["TRAIN"]["LOG_PERIOD"] == 2
    assert "do not change results: NUM_THREADS 0 -> 1" in caplog.text
    assert [r["epoch"] for r in read_metrics(str(tmp_path), "epoch")] == [1, 2, 3]


def test_the_switch_resumes_a_changed_run_and_records_what_changed(tmp_path, caplog):
    train(tiny_cfg(tmp_path), FakeLoaderFn())
    longer = tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 3, "TRAIN.RESUME_CHANGED_CONFIG", True)
    assert run_tool(lambda: train(longer, FakeLoaderFn())) == 0
    assert [r["epoch"] for r in read_metrics(str(tmp_path), "epoch")] == [1, 2, 3]
    (change,) = read_metrics(str(tmp_path), "config_change")
    assert change["result_changes"] == {"SOLVER.MAX_EPOCH": [2, 3]}
    assert change["neutral_changes"] == {"TRAIN.RESUME_CHANGED_CONFIG": [False, True]}
    assert change["previous_config"] == str(tmp_path / "config.1.yaml")
    assert yaml.safe_load((tmp_path / "config.1.yaml").read_text())["SOLVER"]["MAX_EPOCH"] == 2
    assert "keys that change results: SOLVER.MAX_EPOCH 2 -> 3" in (tmp_path / "log.txt").read_text()


def test_a_fresh_run_over_another_runs_config_keeps_it(tmp_path, caplog):
    with pytest.raises(KeyboardInterrupt):  # stopped before its first checkpoint: nothing to resume
        train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1), FakeLoaderFn(), hooks=[CrashAfterStep(1)])
    train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1, "SEED", 1), FakeLoaderFn())
    assert yaml.safe_load((tmp_path / "config.1.yaml").read_text())["SEED"] == 0
    assert "held the config of an earlier run" in caplog.text


def test_a_fresh_run_in_a_folder_with_checkpoints_is_refused_naming_it(tmp_path, caplog):
    """Else its own checkpoints are pruned among the earlier run's and a later resume takes theirs."""
    train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1), FakeLoaderFn())
    before = _snapshot(tmp_path)
    fresh = tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1, "TRAIN.AUTO_RESUME", False, "SEED", 1)
    status, message = _refused(caplog, fresh)
    assert status == 1 and f"OUTPUT_DIR {tmp_path} holds 1 epoch checkpoint(s) of an earlier run" in message
    assert f"move {tmp_path / 'checkpoints'} away" in message and "TRAIN.AUTO_RESUME True" in message
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("config_yaml", ["replaced", "missing"])
def test_resume_checks_the_config_the_checkpoint_was_trained_with(tmp_path, caplog, config_yaml):
    train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1), FakeLoaderFn())
    other = tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 2, "SEED", 1)
    if config_yaml == "replaced":  # e.g. by a fresh run of another config
        (tmp_path / "config.yaml").write_text(other.dump())
    else:
        (tmp_path / "config.yaml").unlink()
    status, message = _refused(caplog, other)
    assert status == 1 and f"resume from {tmp_path / 'checkpoints' / 'checkpoint_epoch_00001.pyth'}" in message
    assert "SEED 0 -> 1" in message and "SOLVER.MAX_EPOCH 1 -> 2" in message


def test_resuming_with_another_number_of_steps_per_epoch_is_refused(tmp_path, caplog):
    """The schedule counts iterations: the resumed run would train at another learning rate than its epoch's."""
    train(tiny_cfg(tmp_path), FakeLoaderFn())  # 2 epochs of 2 steps: iteration 4
    allowed = ("SOLVER.MAX_EPOCH", 3, "TRAIN.RESUME_CHANGED_CONFIG", True)
    status, message = _refused(caplog, tiny_cfg(tmp_path, *allowed, "TRAIN.BATCH_SIZE", 8))
    assert status == 1 and "checkpoint_epoch_00002.pyth: cannot resume: it stopped at iteration 4 after 2 epoch(s) " \
        "(2 optimizer steps per epoch), this run has 1 per epoch and 3 in all, which ends before iteration 4" in message
    status, message = _refused(caplog, tiny_cfg(tmp_path, *allowed), FakeLoaderFn(num_videos=16))  # a longer list
    assert status == 1 and "this run has 4 per epoch and 12 in all:" in message
    assert [r["epoch"] for r in read_metrics(str(tmp_path), "epoch")] == [1, 2]


def test_a_second_run_on_a_folder_in_use_is_refused_naming_the_folder_and_the_holder(tmp_path, caplog):
    holder = FileLock(str(tmp_path / "run.lock"))
    holder.acquire()
    try:
        status, message = _refused(caplog, tiny_cfg(tmp_path))
        record = json.loads((tmp_path / "run.lock").read_text())
    finally:
        holder.release()
    assert status == 1 and f"OUTPUT_DIR {tmp_path} is in use" in message
    assert f"pid {os.getpid()} on host {socket.gethostname()}, started {record['started']}" in message
    assert sorted(os.listdir(tmp_path)) == []  # no log, no checkpoint, no metrics, no config.yaml
    train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1), FakeLoaderFn())  # free again: it runs
    assert not (tmp_path / "run.lock").exists()  # released at the end


def test_file_lock_waits_up_to_its_timeout_then_is_free_once_released(tmp_path):
    path = str(tmp_path / "locks" / "x.lock")
    first = FileLock(path)
    assert first.acquire() == {}
    start = time.monotonic()
    with pytest.raises(LockHeldError, match=f"pid {os.getpid()}"):
        FileLock(path).acquire(timeout=0.3)
    assert time.monotonic() - start >= 0.3
    first.release()
    assert not os.path.exists(path)
    with FileLock(path, timeout=0.3) as again:  # the zoo's form: a context manager with a timeout
        assert json.loads(open(again.path).read())["pid"] == os.getpid()
    assert not os.path.exists(path)


def test_a_lock_left_by_a_killed_run_is_taken_over_with_a_message(tmp_path, caplog):
    script = ("import os, signal, sys; from cakes_video.utils.io import FileLock; "
              "FileLock(sys.argv[1]).acquire(); os.kill(os.getpid(), signal.SIGKILL)")
    killed = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run.lock")],
                            env={**os.environ, "PYTHONPATH": REPO}, timeout=60)
    assert killed.returncode == -signal.SIGKILL
    dead = json.loads((tmp_path / "run.lock").read_text())
    with pytest.raises(KeyboardInterrupt):  # a failed run releases the lock too
        train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1), FakeLoaderFn(), hooks=[CrashAfterStep(1)])
    assert f"the run that held it is gone (pid {dead['pid']} on host {dead['host']}" in caplog.text
    assert not (tmp_path / "run.lock").exists()


def test_a_lock_dies_with_its_killed_holder_not_with_its_forked_workers(tmp_path):
    """A DataLoader worker forked by the killed run inherits its descriptors and lives on a while."""
    lock, pid_file = tmp_path / "run.lock", tmp_path / "worker.pid"
    killed = subprocess.run([sys.executable, "-c", FORK_SCRIPT, str(lock), str(pid_file)],
                            env={**os.environ, "PYTHONPATH": REPO}, stdout=subprocess.DEVNULL, timeout=60)
    worker = int(pid_file.read_text())
    try:
        assert killed.returncode == -signal.SIGKILL
        os.kill(worker, 0)  # the worker still lives
        dead = json.loads(lock.read_text())
        taken = FileLock(str(lock))
        assert taken.acquire() == dead and dead["pid"] != worker  # free at once, the killed run's record
        taken.release()
    finally:
        os.kill(worker, signal.SIGKILL)


def test_a_free_lock_is_taken_over_whatever_live_pid_its_record_names(tmp_path, caplog):
    """pids are reused: the kernel's lock, free, is what says the holder is gone."""
    record = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2025-01-01 00:00:00"}
    (tmp_path / "run.lock").write_text(json.dumps(record))
    train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1), FakeLoaderFn())
    assert f"the run that held it is gone (pid {os.getppid()} on host {record['host']}" in caplog.text
    assert not (tmp_path / "run.lock").exists()


def test_where_flock_is_unsupported_a_live_holders_record_counts(tmp_path, caplog, monkeypatch):
    def no_flock(fd, op):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    record = {"pid": os.getppid(), "host": socket.gethostname(), "started": "2025-01-01 00:00:00"}
    (tmp_path / "run.lock").write_text(json.dumps(record))
    status, message = _refused(caplog, tiny_cfg(tmp_path))
    assert status == 1 and f"pid {os.getppid()}" in message and "2025-01-01 00:00:00" in message
    assert f"if no run is active there, remove {tmp_path / 'run.lock'}" in message
    assert sorted(os.listdir(tmp_path)) == ["run.lock"]


def test_an_output_dir_that_cannot_be_written_is_named(tmp_path, caplog):
    (tmp_path / "file").write_text("")  # a file where a folder is expected: not even root writes under it
    cfg = tiny_cfg(tmp_path / "unused")
    cfg.defrost()
    cfg.OUTPUT_DIR = str(tmp_path / "file" / "run")
    status, message = _refused(caplog, cfg)
    assert status == 1 and message.startswith("ConfigError: OUTPUT_DIR") and str(tmp_path / "file" / "run") in message
    assert "cannot write" in message


def test_auto_resume_falls_back_from_an_unreadable_newest_checkpoint(tmp_path, caplog):
    opts = ("SOLVER.MAX_EPOCH", 3)
    full = train(tiny_cfg(tmp_path / "full", *opts), FakeLoaderFn())
    out = tmp_path / "crashed"
    with pytest.raises(KeyboardInterrupt):
        train(tiny_cfg(out, *opts), FakeLoaderFn(), hooks=[CrashAfterStep(5)])  # after epoch 2
    newest = out / "checkpoints" / "checkpoint_epoch_00002.pyth"
    newest.write_bytes(newest.read_bytes()[:100])  # truncated
    resumed = train(tiny_cfg(out, *opts), FakeLoaderFn())
    assert f"skipping an unreadable checkpoint: cannot read checkpoint {newest}" in caplog.text
    assert "checkpoint_epoch_00001.pyth, the newest readable checkpoint (skipped: checkpoint_epoch_00002.pyth)" \
        in caplog.text
    assert resumed["iteration"] == full["iteration"] == 6
    last = {r["epoch"]: r["train_loss"] for r in read_metrics(str(out), "epoch")}
    assert last == {r["epoch"]: r["train_loss"] for r in read_metrics(str(tmp_path / "full"), "epoch")}


def test_auto_resume_with_no_readable_checkpoint_stops_naming_the_folder(tmp_path, caplog):
    train(tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1), FakeLoaderFn())
    (tmp_path / "checkpoints" / "checkpoint_epoch_00001.pyth").write_bytes(b"not a checkpoint")
    before = _snapshot(tmp_path)
    status, message = _refused(caplog, tiny_cfg(tmp_path, "SOLVER.MAX_EPOCH", 1))
    assert status == 1 and f"none of the 1 checkpoints in {tmp_path / 'checkpoints'} can be read" in message
    after = _snapshot(tmp_path)
    assert {k: v for k, v in after.items() if k != "log.txt"} == {k: v for k, v in before.items() if k != "log.txt"}


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
