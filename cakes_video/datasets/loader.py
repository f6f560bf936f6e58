"""DataLoaders for every split: samplers (distributed-aware), batch collation, worker seeding.

Every batch is a dict (B items left after dropping videos that failed to decode)::

    "video":    float [B, C, T, H, W] (train / val) or [B, V, C, T, H, W] (test)
    "label":    int64 [B]
    "index":    int64 [B]     dataset index of each item
    "video_id": list[str]     length B
    "failed":   list of {"path", "error"}: videos that failed while making this batch

B can be 0 when every video of a batch failed ("video" is then an empty tensor): the loop
skips the step but still counts the failures (``failures.check_failure_fraction``).
"""
import random
from typing import Dict, Iterator, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from ..config import ConfigError
from ..utils.distributed import get_rank, get_world_size, is_dist
from .registry import build_dataset


class ShardSampler(Sampler[int]):
    """Rank ``rank``'s contiguous shard of ``range(num_samples)``: shards are disjoint and cover
    every index exactly once (no padding, unlike DistributedSampler), so distributed
    evaluation sees each video once. Shard sizes differ by at most one."""

    def __init__(self, num_samples: int, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, {world_size})")
        self.start = num_samples * rank // world_size
        self.stop = num_samples * (rank + 1) // world_size

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.start, self.stop))

    def __len__(self) -> int:
        return self.stop - self.start


def collate_videos(items: List[Dict]) -> Dict:
    """Stacks dataset items into the batch dict above; items with an empty "video" are left
    out of the tensors, their failures kept in "failed"."""
    kept = [item for item in items if item["video"].numel() > 0]
    failed = [failure for item in items for failure in item["failed"]]
    return {
        "video": torch.stack([item["video"] for item in kept]) if kept else torch.empty(0),
        "label": torch.tensor([item["label"] for item in kept], dtype=torch.int64),
        "index": torch.tensor([item["index"] for item in kept], dtype=torch.int64),
        "video_id": [item["video_id"] for item in kept],
        "failed": failed,
    }


def seed_worker(worker_id: int) -> None:
    """Seeds numpy and random in a worker from torch's per-worker seed (base seed + worker id),
    which the DataLoader draws from its generator: a seeded generator makes epochs repeat."""
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def _uses_cuda(cfg) -> bool:
    return cfg.DEVICE == "cuda" or (cfg.DEVICE == "auto" and torch.cuda.is_available())


def per_process_batch_size(global_batch: int, world_size: int, key: str) -> int:
    """``global_batch // world_size``; raises ConfigError naming ``key`` when it does not divide evenly."""
    if global_batch % world_size:
        raise ConfigError(f"{key}={global_batch} is not divisible by the world size {world_size}: the global "
                          f"batch is split evenly over the {world_size} processes")
    return global_batch // world_size


def _sampler(dataset, split: str, seed: int) -> Optional[Sampler]:
    """Train: a (seed, epoch) permutation, this rank's share of it under torch.distributed. Its
    own generator, not the loader's: the loader also draws worker seeds from that one, but only
    when workers start, which persistent workers do once, so a shared generator would order a
    resumed epoch differently. Val / test: None (in order), or this rank's shard."""
    rank, world_size = get_rank(), get_world_size()
    if split == "train":
        return DistributedSampler(dataset, world_size, rank, shuffle=True, seed=seed, drop_last=True)
    return ShardSampler(len(dataset), rank, world_size) if is_dist() else None


def build_loader(cfg, split: str, dataset=None) -> DataLoader:
    """The DataLoader of ``split`` ("train", "val", "test") as the config describes, over
    ``dataset`` when given (already built, e.g. by ``preflight.check_split``).

    Train shuffles (a DistributedSampler, also in one process) and drops the last partial
    batch; val and test keep order and, distributed, each rank reads a disjoint shard.
    Batch sizes in the config are global: each process takes its share. Call
    :func:`set_loader_epoch` before each epoch so shuffling and augmentation follow
    ``cfg.SEED`` and the epoch number.
    """
    dataset = build_dataset(cfg, split) if dataset is None else dataset
    world_size = get_world_size()
    key = "TEST.BATCH_SIZE" if split == "test" else "TRAIN.BATCH_SIZE"  # val clips cost what train clips do
    global_batch = cfg.TEST.BATCH_SIZE if split == "test" else cfg.TRAIN.BATCH_SIZE
    batch_size = per_process_batch_size(global_batch, world_size, key)
    if split == "train" and len(dataset) < global_batch:
        raise ConfigError(f"DATA.TRAIN_LIST: {len(dataset)} videos make no full batch of TRAIN.BATCH_SIZE="
                         f"{global_batch} (the last partial batch is dropped)")
    sampler = _sampler(dataset, split, cfg.SEED)
    workers = cfg.DATA_LOADER.NUM_WORKERS
    loader = DataLoader(
        dataset, batch_size=batch_size, sampler=sampler,
        num_workers=workers, collate_fn=collate_videos, pin_memory=cfg.DATA_LOADER.PIN_MEMORY and _uses_cuda(cfg),
        drop_last=split == "train", worker_init_fn=seed_worker, generator=torch.Generator().manual_seed(cfg.SEED),
        # A decoded-video cache lives in the worker processes: keep them between epochs.
        persistent_workers=workers > 0 and cfg.DATA.CACHE_DECODED)
    loader.seed = cfg.SEED
    return loader


def set_loader_epoch(loader: DataLoader, epoch: int) -> None:
    """Makes ``epoch``'s order and augmentation a function of (cfg.SEED, epoch) alone, so a
    resumed run repeats them: the order through the sampler's ``set_epoch``, the augmentation
    through the dataset's (it seeds each item itself: persistent workers, DATA.CACHE_DECODED,
    keep the seeds they started with); the worker seeds of other datasets through the
    loader's generator (workers that restart every epoch draw them from it)."""
    if isinstance(loader.sampler, DistributedSampler):
        loader.sampler.set_epoch(epoch)
    if hasattr(loader.dataset, "set_epoch"):
        loader.dataset.set_epoch(epoch)
    loader.generator.manual_seed(loader.seed * 100_003 + epoch)
