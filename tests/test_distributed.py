"""Two gloo processes on the CPU (torch.multiprocessing, 127.0.0.1, a free port): DDP training
equals one process with the same global batch, DDP testing counts every video exactly once,
and a global batch that does not divide by the processes is refused naming the key; the same
across two single-process "nodes" launched by torchrun (c10d rendezvous on 127.0.0.1), where
both processes have LOCAL_RANK 0; SyncBN requested on the CPU is skipped with a warning."""
import json
import logging
import os
import socket
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from test_engine_fakes import FakeLoaderFn, tiny_cfg
from torch import nn

from cakes_video.checkpoint import load_checkpoint
from cakes_video.config import ConfigError
from cakes_video.engine.monitor import read_metrics
from cakes_video.engine.setup import train
from cakes_video.engine.testing import run_test
from cakes_video.utils.distributed import shutdown_distributed, wrap_model

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTS = ("SOLVER.MAX_EPOCH", 2, "TRAIN.BATCH_SIZE", 8, "TEST.BATCH_SIZE", 2, "SOLVER.OPTIMIZER", "adamw",
        "SOLVER.BASE_LR", 0.01)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    notes = {}
    try:
        try:
            train(tiny_cfg(os.path.join(out_dir, "bad"), *OPTS, "TRAIN.BATCH_SIZE", 3, arch="engine_tiny_nobn"))
        except ConfigError as e:
            notes["config_error"] = str(e)
        # 8 videos, global batch 8: one full-batch step per epoch, so sample order cannot matter
        cfg = tiny_cfg(os.path.join(out_dir, "ddp"), *OPTS, arch="engine_tiny_nobn")
        train(cfg, FakeLoaderFn(num_videos=8, noise=0.0))
        notes["test"] = run_test(cfg, FakeLoaderFn(num_videos=7))  # 7 videos: uneven shards 3 + 4
    finally:
        shutdown_distributed()
    with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
        json.dump(notes, f)


@pytest.mark.slow
def test_ddp_matches_single_process_and_tests_each_video_once(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    notes = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert all("TRAIN.BATCH_SIZE" in n["config_error"] and "2 processes" in n["config_error"] for n in notes)
    _assert_matches_one_process(tmp_path, notes)


# One "node" of the multi-node test: trains and tests the DDP run, then writes what it saw
NODE_SCRIPT = """
import json, os, sys
from test_engine_fakes import FakeLoaderFn, tiny_cfg
from cakes_video.config import ConfigError
from cakes_video.engine.setup import train
from cakes_video.engine.testing import run_test
from cakes_video.utils.distributed import get_rank, get_world_size, shutdown_distributed

out, opts = sys.argv[1], json.loads(sys.argv[2])
cfg = tiny_cfg(os.path.join(out, "ddp"), *opts, arch="engine_tiny_nobn")
train(cfg, FakeLoaderFn(num_videos=8, noise=0.0))
notes = {"test": run_test(cfg, FakeLoaderFn(num_videos=7)), "rank": get_rank(), "world_size": get_world_size(),
         "local_rank": os.environ["LOCAL_RANK"], "node_rank": os.environ["GROUP_RANK"]}
try:  # rank 0 reads config.yaml and refuses: every rank must raise, none wait
    train(tiny_cfg(os.path.join(out, "ddp"), *opts, "SOLVER.MAX_EPOCH", 3, arch="engine_tiny_nobn"), FakeLoaderFn())
except ConfigError as e:
    notes["refused"] = str(e)
shutdown_distributed()
with open(os.path.join(out, f"rank{notes['rank']}.json"), "w") as f:
    json.dump(notes, f)
"""


@pytest.mark.slow
def test_two_nodes_under_torchrun_match_one_process(tmp_path):
    script = tmp_path / "node.py"
    script.write_text(NODE_SCRIPT)
    launch = [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc-per-node", "1",
              "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{_free_port()}", "--rdzv-id", "cakes-test",
              "--rdzv-conf", "join_timeout=120", "--local-addr", "127.0.0.1", "--max-restarts", "0",
              str(script), str(tmp_path), json.dumps([str(v) for v in OPTS])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([REPO, os.path.join(REPO, "tests")]), "OMP_NUM_THREADS": "1"}
    nodes = [subprocess.Popen(launch, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for _ in range(2)]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    notes = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    assert [(n["rank"], n["world_size"], n["local_rank"]) for n in notes] == [(0, 2, "0"), (1, 2, "0")]
    assert sorted(n["node_rank"] for n in notes) == ["0", "1"]
    assert all("SOLVER.MAX_EPOCH 2 -> 3" in n["refused"] for n in notes)
    assert not (tmp_path / "ddp" / "run.lock").exists()  # rank 0 took the folder's lock and released it
    _assert_matches_one_process(tmp_path, notes)


def _assert_matches_one_process(tmp_path, notes) -> None:
    """The DDP run in tmp_path/ddp (its ranks' ``notes``) against one process on the same data:
    the same losses and weights, metrics written once, every test video counted once."""
    single_cfg = tiny_cfg(tmp_path / "single", *OPTS, arch="engine_tiny_nobn")
    train(single_cfg, FakeLoaderFn(num_videos=8, noise=0.0))
    single_test = run_test(single_cfg, FakeLoaderFn(num_videos=7))
    ddp_losses = [r["loss"] for r in read_metrics(str(tmp_path / "ddp"), "train_iter")]
    single_losses = [r["loss"] for r in read_metrics(str(tmp_path / "single"), "train_iter")]
    assert len(ddp_losses) == 2 and ddp_losses == pytest.approx(single_losses, rel=1e-5)
    ddp_val = read_metrics(str(tmp_path / "ddp"), "epoch")[-1]
    assert ddp_val["val_num_videos"] == 8
    assert ddp_val["val_loss"] == pytest.approx(read_metrics(str(tmp_path / "single"), "epoch")[-1]["val_loss"], rel=1e-5)
    a = load_checkpoint(str(tmp_path / "ddp" / "checkpoints" / "checkpoint_epoch_00002.pyth"))["model"]
    b = load_checkpoint(str(tmp_path / "single" / "checkpoints" / "checkpoint_epoch_00002.pyth"))["model"]
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)

    ddp_test = notes[0]["test"]
    assert notes[1]["test"] == ddp_test  # every rank gets rank 0's results
    assert ddp_test["num_videos"] == 7 and ddp_test["num_failed"] == 0
    assert ddp_test["top1"] == pytest.approx(single_test["top1"])
    with open(tmp_path / "ddp" / "predictions.csv") as f:
        ids = [line.split(",")[0] for line in f.read().splitlines()[1:]]
    assert sorted(ids) == [f"video_{i:03d}" for i in range(7)]


def test_sync_bn_on_the_cpu_is_skipped_with_a_warning(tmp_path, caplog):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        with caplog.at_level(logging.WARNING, logger="cakes_video"):
            wrapped = wrap_model(nn.Sequential(nn.Conv3d(3, 4, 1), nn.BatchNorm3d(4)), torch.device("cpu"), True)
    finally:
        shutdown_distributed()
    assert isinstance(wrapped, nn.parallel.DistributedDataParallel)
    assert type(wrapped.module[1]) is nn.BatchNorm3d  # not converted: torch has no CPU SyncBatchNorm
    assert "TRAIN.SYNC_BN ignored on the CPU" in caplog.text
