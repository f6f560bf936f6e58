"""Loaders: samplers, collation of failures, seeding, distributed sharding, multi-view tests."""
import json

import pytest
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from cakes_video.config import ConfigError, get_cfg
from cakes_video.config_loader import check_config
from cakes_video.datasets import TooManyFailedVideos, build_dataset, build_loader, check_failure_fraction, transforms
from cakes_video.datasets.loader import ShardSampler, collate_videos, per_process_batch_size, set_loader_epoch
from cakes_video.datasets.video_reader import DecodeOptions


@pytest.fixture(scope="module")
def videos(tmp_path_factory, make_index_video):
    """Four 64x48 index videos of 24 frames at 25 fps and a zero-byte "bad.mp4"."""
    root = tmp_path_factory.mktemp("videos")
    for i in range(4):
        make_index_video(root / f"v{i}.mp4", num_frames=24, fps=25, size=(64, 48))
    (root / "bad.mp4").write_bytes(b"")
    return root


def _cfg(tmp_path, videos, names, **data):
    cfg = get_cfg()
    listing = tmp_path / "list.txt"
    listing.write_text("".join(f"{name}.mp4 {i % 2}\n" for i, name in enumerate(names)))
    cfg.DATA.ROOT = str(videos)
    cfg.DATA.TRAIN_LIST = cfg.DATA.VAL_LIST = cfg.DATA.TEST_LIST = str(listing)
    cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = 4, 2
    cfg.DATA.TRAIN_JITTER_SCALES, cfg.DATA.TRAIN_CROP_SIZE = [48, 56], 32
    cfg.DATA.TEST_SCALE, cfg.DATA.TEST_CROP_SIZE = 40, 32
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = 3, 3
    cfg.TRAIN.BATCH_SIZE = cfg.TEST.BATCH_SIZE = 2
    cfg.DATA_LOADER.NUM_WORKERS = 0
    for key, value in data.items():
        cfg.DATA[key] = value
    return check_config(cfg)


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_shard_sampler_covers_every_index_once(world_size):
    for size in range(11):
        shards = [list(ShardSampler(size, rank, world_size)) for rank in range(world_size)]
        assert sorted(i for shard in shards for i in shard) == list(range(size))
        assert [len(ShardSampler(size, r, world_size)) for r in range(world_size)] == [len(s) for s in shards]
        assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_shard_sampler_rejects_bad_rank():
    with pytest.raises(ValueError, match="rank 2 is not in"):
        ShardSampler(5, 2, 2)


def _item(index, views=None, failed=()):
    video = torch.full((3, 2, 4, 4), float(index)) if views is None else torch.zeros(views, 3, 2, 4, 4)
    return {"video": torch.empty(0) if failed else video, "label": index % 2, "index": index,
            "video_id": f"v{index}", "failed": [{"path": p, "error": "bad"} for p in failed]}


def test_collate_drops_failed_videos_and_lists_them():
    retried = dict(_item(3), failed=[{"path": "x.mp4", "error": "zero-byte"}])  # a train retry
    batch = collate_videos([_item(0), _item(1, failed=["b.mp4"]), retried])
    assert batch["video"].shape == (2, 3, 2, 4, 4) and batch["video"][1].eq(3).all()
    assert batch["label"].tolist() == [0, 1] and batch["index"].tolist() == [0, 3]
    assert batch["video_id"] == ["v0", "v3"]
    assert [f["path"] for f in batch["failed"]] == ["b.mp4", "x.mp4"]
    empty = collate_videos([_item(5, failed=["c.mp4"])])
    assert empty["video"].numel() == 0 and empty["index"].tolist() == [] and len(empty["failed"]) == 1


def test_check_failure_fraction():
    check_failure_fraction(1, 100, 0.01)
    check_failure_fraction(0, 0, 0.0)
    with pytest.raises(TooManyFailedVideos, match="2 of 100 videos \\(2.0%\\) failed.*MAX_FAILED_FRACTION=0.01"):
        check_failure_fraction(2, 100, 0.01)


def test_per_process_batch_size_must_divide():
    assert per_process_batch_size(8, 4, "TRAIN.BATCH_SIZE") == 2
    with pytest.raises(ConfigError, match="TRAIN.BATCH_SIZE=6 is not divisible by the world size 4.*4 processes"):
        per_process_batch_size(6, 4, "TRAIN.BATCH_SIZE")
    assert issubclass(ConfigError, ValueError)  # callers catching ValueError still see it


def test_test_loader_gives_all_views_and_reports_failed_videos(tmp_path, videos):
    cfg = _cfg(tmp_path, videos, ["v0", "bad", "v1"])
    batches = list(build_loader(cfg, "test"))
    assert [b["video"].shape for b in batches] == [(1, 9, 3, 4, 32, 32), (1, 9, 3, 4, 32, 32)]
    assert [b["video_id"] for b in batches] == [["v0"], ["v1"]]
    assert batches[0]["failed"] == [{"path": str(videos / "bad.mp4"), "error": batches[0]["failed"][0]["error"]}]
    assert "zero-byte" in batches[0]["failed"][0]["error"] and batches[1]["failed"] == []


@pytest.mark.parametrize("protocol, rate", [("pyslowfast", 2), ("mmaction2", 2), ("tsn", 2),
                                            ("pyslowfast", 16)])  # 4 clip frames 8 apart > 24: clips coincide
def test_decode_once_views_equal_per_view_decoding(tmp_path, videos, protocol, rate):
    sampling = "tsn" if protocol == "tsn" else "dense"
    cfg = _cfg(tmp_path, videos, ["v2"], TEST_PROTOCOL=protocol, SAMPLING=sampling, SAMPLING_RATE=rate,
               TARGET_FPS=50.0)
    dataset = build_dataset(cfg, "test")
    once = dataset[0]["video"]
    dataset.decode_once = False
    assert torch.equal(once, dataset[0]["video"])
    # clip-major order: views 0..2 are the crops of clip 0, which differ from each other
    assert once.shape == (9, 3, 4, 32, 32) and not torch.equal(once[0], once[1])
    assert torch.equal(once[:3], once[3:6]) == (rate == 16)
    (last_clip,) = dataset.reader.read_clips(dataset.records[0], lambda meta: dataset.temporal.indices(meta)[2:])
    spatial = dataset.spatial
    assert torch.equal(once[6:], transforms.crop_views(last_clip, scale=spatial.scale, crop_size=spatial.crop_size,
                                                                  num_crops=3, mean=spatial.mean, std=spatial.std))


def test_train_loader_repeats_an_epoch_and_varies_between_epochs(tmp_path, videos):
    cfg = _cfg(tmp_path, videos, ["v0", "v1", "v2", "v3"])
    cfg.DATA_LOADER.NUM_WORKERS = 1

    def epoch(loader, number):
        set_loader_epoch(loader, number)
        return [(b["index"].tolist(), b["video"]) for b in loader]

    loader = build_loader(cfg, "train")
    first, again, other = epoch(loader, 1), epoch(loader, 1), epoch(loader, 2)
    assert len(first) == 2 and all(v.shape == (2, 3, 4, 32, 32) for _, v in first)
    assert all(i == j and torch.equal(v, w) for (i, v), (j, w) in zip(first, again))
    assert not all(i == j and torch.equal(v, w) for (i, v), (j, w) in zip(first, other))


def test_cached_dataset_decodes_each_video_once(tmp_path, videos, monkeypatch):
    opened = []
    real_open = DecodeOptions.open
    monkeypatch.setattr(DecodeOptions, "open", lambda self, record: opened.append(record.path) or real_open(self, record))
    loader = build_loader(_cfg(tmp_path, videos, ["v0", "v1"], CACHE_DECODED=True), "val")
    assert loader.persistent_workers is False  # no workers: the cache lives in this process
    first = next(iter(loader))["video"]
    assert torch.equal(first, next(iter(loader))["video"])
    assert opened == [str(videos / "v0.mp4"), str(videos / "v1.mp4")]


def test_distributed_loaders_use_distributed_samplers(tmp_path, videos):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        cfg = _cfg(tmp_path, videos, ["v0", "v1", "v2"])
        train, test = build_loader(cfg, "train"), build_loader(cfg, "test")
        assert isinstance(train.sampler, DistributedSampler) and train.batch_size == 2
        assert isinstance(test.sampler, ShardSampler) and list(test.sampler) == [0, 1, 2]
    finally:
        dist.destroy_process_group()


def test_benchmark_reports_every_documented_key(tmp_path):
    from cakes_video.benchmarks.cli import data_main as main

    out = tmp_path / "bench.json"
    main(["--json", str(out), "--videos-per-class", "1", "--workers", "0", "--views", "2x3",
          "--test-videos", "1", "--repeats", "1", "--threads", str(torch.get_num_threads())])  # keep this process's threads
    report = json.loads(out.read_text())
    assert set(report) == {"data", "decode", "train", "test"}
    assert report["data"]["num_videos"] == 10 and report["data"]["synthetic"] is True
    for backend in ("pyav", "decord"):
        decode = report["decode"][backend]
        assert set(decode) == {"frames", "ours_fps", "plain_fps", "ratio", "skipped"}
        assert decode["frames"] == 160 and decode["skipped"] == [] and decode["ratio"] > 0
    assert set(report["train"]) == {"workers", "batch_size", "clips", "seconds", "clips_per_s"}
    assert report["train"]["clips"] == 8 and report["train"]["clips_per_s"] > 0
    assert set(report["test"]) == {"clips", "crops", "views_per_video", "videos", "decode_once_views_per_s",
                                   "per_view_views_per_s", "decode_once_speedup"}
    assert report["test"]["views_per_video"] == 6 and report["test"]["decode_once_speedup"] > 0


def test_train_list_smaller_than_a_batch_is_an_error(tmp_path, videos):
    cfg = _cfg(tmp_path, videos, ["v0"])
    with pytest.raises(ValueError, match="DATA.TRAIN_LIST: 1 videos make no full batch of TRAIN.BATCH_SIZE=2"):
        build_loader(cfg, "train")


def test_a_persistent_worker_repeats_an_epoch_as_a_fresh_loader_reads_it(tmp_path, videos):
    """A resumed run starts its loader at epoch 2: its order and augmentation must be those of
    epoch 2 of a loader whose one persistent worker (DATA.CACHE_DECODED) already ran epoch 1."""
    cfg = _cfg(tmp_path, videos, ["v0", "v1", "v2", "v3"], CACHE_DECODED=True)
    cfg.DATA_LOADER.NUM_WORKERS = 1

    def epoch(loader, number):
        set_loader_epoch(loader, number)
        return [(b["index"].tolist(), b["video"]) for b in loader]

    running = build_loader(cfg, "train")
    assert running.persistent_workers
    epoch(running, 0)
    continued, fresh = epoch(running, 1), epoch(build_loader(cfg, "train"), 1)
    assert [i for i, _ in continued] == [i for i, _ in fresh]
    assert all(torch.equal(v, w) for (_, v), (_, w) in zip(continued, fresh))
