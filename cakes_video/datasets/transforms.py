"""Spatial transforms on video clips (time is a batch dimension for the image ops).

Layouts: decoded ``frames`` are uint8 ``[T, H, W, 3]`` (np.ndarray or tensor, RGB); the
intermediate ``video`` is a uint8 tensor ``[T, 3, H, W]`` (torchvision v2 ops treat T as a
batch); the model input is float ``[C, T, H, W]``, normalised with ``mean``/``std`` given in
[0, 1] units. All randomness comes from one ``np.random.Generator``, so a seeded generator
reproduces a transform exactly.

Entry points the datasets use::

    train_transform(frames, label, *, jitter_scales, crop_size, mean, std, flip=True,
                    flip_label_map=None, multiscale=False, rng) -> (float [C, T, S, S], label)
    crop_views(frames, *, scale, crop_size, num_crops, mean, std, out=None) -> float [V, C, T, S, S]
    load_flip_label_map(path) -> {label: flipped_label}

Training: resize the short side to a random integer in ``jitter_scales`` (min, max;
inclusive), then a uniformly random ``crop_size`` square crop, or with ``multiscale`` the TSN
multi-scale crop (scales 1, .875, .75, .66 of the short side, 13 fixed positions, resized to
``crop_size``); then a horizontal flip with probability 0.5 when ``flip`` is true; a flipped
clip of a label in ``flip_label_map`` takes the mapped label ("left" <-> "right"). Testing:
resize the short side to ``scale``, then 1 (centre) or 3 (start, centre, end along the long
side, as PySlowFast) crops.
"""
import json
import math

import numpy as np
import torch
from torchvision.transforms.v2 import functional as F

TSN_SCALES = (1.0, 0.875, 0.75, 0.66)
# TSN's 13 fixed crop positions, in quarters of the free space (x, y).
TSN_OFFSETS = ((0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0),
               (1, 1), (3, 1), (1, 3), (3, 3))


def to_video(frames) -> torch.Tensor:
    """uint8 [T, H, W, 3] (numpy or tensor) -> uint8 tensor [T, 3, H, W]."""
    video = torch.as_tensor(np.asarray(frames)) if not torch.is_tensor(frames) else frames
    if video.dim() != 4 or video.shape[-1] != 3 or video.dtype != torch.uint8:
        raise ValueError(f"frames must be uint8 [T, H, W, 3], got {video.dtype} "
                         f"{tuple(video.shape)}")
    return video.permute(0, 3, 1, 2)


def short_side_scale(video: torch.Tensor, size: int) -> torch.Tensor:
    """Resizes [T, 3, H, W] so its short side is ``size``; the long side is floored."""
    height, width = video.shape[-2:]
    if height <= width:
        new_h, new_w = size, math.floor(width * size / height)
    else:
        new_h, new_w = math.floor(height * size / width), size
    if (new_h, new_w) == (height, width):
        return video
    return F.resize(video, [new_h, new_w], antialias=True)


def _check_fits(video: torch.Tensor, crop_h: int, crop_w: int) -> None:
    height, width = video.shape[-2:]
    if crop_h > height or crop_w > width:
        raise ValueError(f"crop {crop_h}x{crop_w} is larger than the frames {height}x{width}")


def random_crop(video: torch.Tensor, size: int, rng: np.random.Generator) -> torch.Tensor:
    """A uniformly placed ``size`` x ``size`` crop of [T, 3, H, W]."""
    _check_fits(video, size, size)
    top = int(rng.integers(0, video.shape[-2] - size + 1))
    left = int(rng.integers(0, video.shape[-1] - size + 1))
    return F.crop(video, top, left, size, size)


def spatial_crop(video: torch.Tensor, size: int, position: int) -> torch.Tensor:
    """Crop 0, 1 or 2 (start, centre, end) along the long side of [T, 3, H, W].

    The short side is centred; centres round up (``ceil``), as PySlowFast's uniform crop.
    """
    _check_fits(video, size, size)
    height, width = video.shape[-2:]
    top, left = math.ceil((height - size) / 2), math.ceil((width - size) / 2)
    if position not in (0, 1, 2):
        raise ValueError(f"crop position must be 0, 1 or 2, got {position}")
    if position != 1 and height > width:
        top = 0 if position == 0 else height - size
    elif position != 1:
        left = 0 if position == 0 else width - size
    return F.crop(video, top, left, size, size)


def _tsn_crop_size(base: int, crop_size: int, scale: float) -> int:
    size = int(base * scale)
    return crop_size if abs(size - crop_size) < 3 else size  # snap near-misses, as TSN


def multiscale_crop(video: torch.Tensor, crop_size: int, rng: np.random.Generator,
                    scales=TSN_SCALES, max_distort: int = 1) -> torch.Tensor:
    """TSN multi-scale crop of [T, 3, H, W] -> [T, 3, crop_size, crop_size].

    Width and height are scales of the short side at most ``max_distort`` apart in the
    scale list; the crop sits at one of 13 fixed positions (quarters of the free space).
    """
    height, width = video.shape[-2:]
    sizes = [_tsn_crop_size(min(height, width), crop_size, s) for s in scales]
    pairs = [(w, h) for i, w in enumerate(sizes) for j, h in enumerate(sizes)
             if abs(i - j) <= max_distort]
    crop_w, crop_h = pairs[int(rng.integers(len(pairs)))]
    _check_fits(video, crop_h, crop_w)
    qx, qy = TSN_OFFSETS[int(rng.integers(len(TSN_OFFSETS)))]
    top, left = qy * ((height - crop_h) // 4), qx * ((width - crop_w) // 4)
    crop = F.crop(video, top, left, crop_h, crop_w)
    return F.resize(crop, [crop_size, crop_size], antialias=True)


def flip_label(label: int, flip_label_map) -> int:
    """The label of a horizontally flipped clip."""
    return flip_label_map.get(label, label) if flip_label_map else label


def normalize(video: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 [T, 3, H, W] -> float [3, T, H, W]: (x / 255 - mean) / std."""
    floats = video.permute(1, 0, 2, 3).to(torch.float32, memory_format=torch.contiguous_format)
    return _normalize_(floats, mean, std)


def _normalize_(floats: torch.Tensor, mean, std) -> torch.Tensor:
    """In place on float [..., 3, T, H, W] holding 0..255: (x / 255 - mean) / std.

    The one place of this arithmetic, so training, validation and test views agree bitwise.
    """
    channel = (3, 1, 1, 1)  # broadcast over T, H, W
    mean = torch.tensor(mean, dtype=floats.dtype).view(channel)
    std = torch.tensor(std, dtype=floats.dtype).view(channel)
    return floats.div_(255.0).sub_(mean).div_(std)


def train_transform(frames, label: int, *, jitter_scales, crop_size: int, mean, std,
                    flip: bool = True, flip_label_map=None, multiscale: bool = False,
                    rng: np.random.Generator):
    """Training augmentation: uint8 [T, H, W, 3] -> (float [3, T, crop, crop], label)."""
    low, high = jitter_scales
    if not 0 < low <= high:
        raise ValueError(f"jitter_scales must be (min, max) with 0 < min <= max, got "
                         f"{list(jitter_scales)}")
    video = short_side_scale(to_video(frames), int(rng.integers(low, high + 1)))
    if multiscale:
        video = multiscale_crop(video, crop_size, rng)
    else:
        video = random_crop(video, crop_size, rng)
    if flip and rng.random() < 0.5:
        video = F.horizontal_flip(video)
        label = flip_label(label, flip_label_map)
    return normalize(video, mean, std), label


# TEST.NUM_SPATIAL_CROPS -> the :func:`spatial_crop` positions of the test crops.
CROP_POSITIONS = {1: (1,), 3: (0, 1, 2)}


def crop_positions(num_crops: int) -> tuple:
    """The :func:`spatial_crop` positions of ``num_crops`` test crops: 1 -> centre, 3 -> all."""
    if num_crops not in CROP_POSITIONS:
        raise ValueError(f"num_crops must be one of {sorted(CROP_POSITIONS)}, got {num_crops}")
    return CROP_POSITIONS[num_crops]


def crop_views(frames, *, scale: int, crop_size: int, num_crops: int, mean, std, out=None):
    """Test crops: uint8 [T, H, W, 3] -> float [num_crops, 3, T, crop, crop].

    1 crop: the centre; 3 crops: start, centre, end along the long side. ``out`` (float
    [num_crops, 3, T, crop, crop]) receives the crops and is returned: the crops are copied
    straight into it and normalised there at once, since per-crop tensors and a stack cost
    more than decoding when a video has 10 x 3 views.
    """
    positions = crop_positions(num_crops)
    video = short_side_scale(to_video(frames), scale)  # [T, 3, H', W']
    if out is None:
        out = torch.empty((len(positions), 3, video.shape[0], crop_size, crop_size))
    for view, position in zip(out, positions):
        view.copy_(spatial_crop(video, crop_size, position).permute(1, 0, 2, 3))
    return _normalize_(out, mean, std)


def load_flip_label_map(path: str) -> dict:
    """Reads a JSON object {label: flipped_label} (keys may be strings); must be symmetric."""
    try:
        with open(path) as f:
            raw = json.load(f)
        mapping = {int(k): int(v) for k, v in raw.items()}
    except (OSError, ValueError, AttributeError, TypeError) as err:
        raise ValueError(f"{path}: not a JSON object of label -> label ({err})") from err
    for label, partner in mapping.items():
        if mapping.get(partner) != label:
            raise ValueError(f"{path}: label {label} maps to {partner}, which does not map "
                             f"back")
    return mapping
