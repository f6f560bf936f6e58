"""Stand-ins for the engine tests (no tests here): a tiny registered model and an in-memory
video dataset whose loader mirrors datasets.loader.build_loader (same batch dict, samplers,
seeding), so the loop is exercised in seconds without decoding."""
import os

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from cakes_video.config import get_cfg
from cakes_video.config_loader import check_config
from cakes_video.datasets.loader import ShardSampler, collate_videos
from cakes_video.models.registry import MODEL_REGISTRY

NUM_CLASSES = 4


class _Head(nn.Module):
    def __init__(self, width: int, num_classes: int):
        super().__init__()
        self.fc = nn.Linear(width, num_classes)


class TinyVideoNet(nn.Module):
    """[N, 3, T, H, W] -> [N, K]: one 3D conv (+ BN), global mean pool, ``head.fc``."""

    def __init__(self, num_classes: int, bn: bool):
        super().__init__()
        self.conv = nn.Conv3d(3, 8, 3, padding=1, bias=not bn)
        self.bn = nn.BatchNorm3d(8) if bn else nn.Identity()
        self.head = _Head(8, num_classes)

    def forward(self, x):
        return self.head.fc(torch.relu(self.bn(self.conv(x))).mean(dim=(2, 3, 4)))


def engine_tiny(cfg):
    return TinyVideoNet(cfg.MODEL.NUM_CLASSES, bn=True)


def engine_tiny_nobn(cfg):
    """Without BatchNorm: a DDP run then equals one process exactly (BN statistics are per rank)."""
    return TinyVideoNet(cfg.MODEL.NUM_CLASSES, bn=False)


for _builder in (engine_tiny, engine_tiny_nobn):
    if _builder.__name__ not in MODEL_REGISTRY:
        MODEL_REGISTRY.register(_builder)


class FakeVideos(Dataset):
    """``num_videos`` clips [3, T, S, S] whose channel means encode the label, plus noise drawn
    from torch's global RNG (so exact resume must restore it). ``failing`` indices fail like an
    undecodable file; ``poison`` makes every clip NaN."""

    def __init__(self, num_videos: int, split: str, frames: int, size: int, views: int, failing=(), noise=0.3):
        self.num_videos, self.split, self.frames, self.size, self.views = num_videos, split, frames, size, views
        self.noise = noise
        self.failing, self.poison = set(failing), False
        self.class_names = [f"class_{i}" for i in range(NUM_CLASSES)]

    def __len__(self):
        return self.num_videos

    def _clip(self, label: int) -> torch.Tensor:
        base = torch.zeros(3, self.frames, self.size, self.size)
        base[label % 3] += 1.0 if label < 3 else -1.0
        noise = self.noise * torch.randn(base.shape) if self.split == "train" and self.noise else 0.0
        return base + noise

    def __getitem__(self, index):
        label, video_id = index % NUM_CLASSES, f"video_{index:03d}"
        if index in self.failing:
            return {"video": torch.empty(0), "label": label, "index": index, "video_id": video_id,
                    "failed": [{"path": f"{video_id}.mp4", "error": "cannot decode"}]}
        video = self._clip(label)
        if self.split == "test":
            video = torch.stack([video * (1 + 0.1 * v) for v in range(self.views)])  # [V, C, T, S, S]
        if self.poison:
            video = video * float("nan")
        return {"video": video, "label": label, "index": index, "video_id": video_id, "failed": []}


class FakeLoaderFn:
    """``loader_fn(cfg, split)`` for ``train``/``test_net``: picklable for spawned processes."""

    def __init__(self, num_videos: int = 8, failing=(), noise: float = 0.3):
        self.num_videos, self.failing, self.noise = num_videos, tuple(failing), noise

    def __call__(self, cfg, split):
        views = cfg.TEST.NUM_ENSEMBLE_VIEWS * cfg.TEST.NUM_SPATIAL_CROPS
        size = cfg.DATA.TRAIN_CROP_SIZE if split == "train" else cfg.DATA.TEST_CROP_SIZE
        ds = FakeVideos(self.num_videos, split, cfg.DATA.NUM_FRAMES, size, views, self.failing, self.noise)
        world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else None
        sampler = None
        if world and split == "train":
            sampler = DistributedSampler(ds, world[1], world[0], shuffle=True, seed=cfg.SEED, drop_last=True)
        elif world:
            sampler = ShardSampler(len(ds), *world)
        batch = (cfg.TRAIN.BATCH_SIZE if split != "test" else cfg.TEST.BATCH_SIZE) // (world[1] if world else 1)
        loader = DataLoader(ds, batch_size=batch, shuffle=split == "train" and sampler is None, sampler=sampler,
                            collate_fn=collate_videos, drop_last=split == "train",
                            generator=torch.Generator().manual_seed(cfg.SEED))
        loader.seed = cfg.SEED
        return loader


def tiny_cfg(output_dir, *overrides, arch: str = "engine_tiny"):
    """A validated, frozen config for the stand-ins, writing to ``output_dir``."""
    cfg = get_cfg()
    cfg.merge_from_list([
        "OUTPUT_DIR", str(output_dir), "MODEL.ARCH", arch, "MODEL.NUM_CLASSES", NUM_CLASSES,
        "DATA.NUM_FRAMES", 4, "DATA.TRAIN_CROP_SIZE", 8, "DATA.TEST_CROP_SIZE", 8,
        "TRAIN.BATCH_SIZE", 4, "TRAIN.PROGRESS_BAR", False, "TEST.PROGRESS_BAR", False, "TRAIN.TENSORBOARD", False, "TRAIN.LOG_PERIOD", 1,
        "TEST.BATCH_SIZE", 2, "TEST.NUM_ENSEMBLE_VIEWS", 2, "TEST.NUM_SPATIAL_CROPS", 1,
        "SOLVER.MAX_EPOCH", 2, "SOLVER.BASE_LR", 0.1, "SOLVER.WARMUP_EPOCHS", 0.0, "DETERMINISTIC", True,
        "DATA_LOADER.NUM_WORKERS", 0, *overrides])
    check_config(cfg)
    cfg.freeze()
    os.makedirs(output_dir, exist_ok=True)
    return cfg
