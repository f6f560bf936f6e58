"""Spatial video transforms: shapes, exact crop positions, flips, label remap, determinism."""
import json

import numpy as np
import pytest
import torch

from cakes_video.datasets import transforms as tf

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)


def _coords(t, h, w):
    """uint8 [T, H, W, 3]: channel 0 = column, 1 = row, 2 = frame index (for locating crops)."""
    frames = np.zeros((t, h, w, 3), np.uint8)
    frames[..., 0] = np.arange(w)[None, None, :]
    frames[..., 1] = np.arange(h)[None, :, None]
    frames[..., 2] = np.arange(t)[:, None, None]
    return frames


def _unnormalize(video):
    """float [3, T, H, W] -> the uint8 values it came from."""
    mean, std = torch.tensor(MEAN)[:, None, None, None], torch.tensor(STD)[:, None, None, None]
    return torch.round((video * std + mean) * 255).to(torch.int64)


def test_normalize_layout_and_values():
    frames = _coords(3, 4, 5)
    out = tf.normalize(tf.to_video(frames), MEAN, STD)
    assert out.shape == (3, 3, 4, 5) and out.dtype == torch.float32
    assert torch.equal(_unnormalize(out), torch.as_tensor(frames).permute(3, 0, 1, 2).long())
    assert out[0, 0, 0, 0].item() == pytest.approx((0 / 255 - 0.5) / 0.25)


def test_to_video_rejects_wrong_layout():
    with pytest.raises(ValueError, match="uint8"):
        tf.to_video(np.zeros((2, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        tf.to_video(np.zeros((2, 8, 8, 3), np.float32))


@pytest.mark.parametrize("h, w, size, expected", [(60, 80, 30, (30, 40)), (80, 60, 30, (40, 30)),
                                                  (64, 100, 64, (64, 100)), (7, 10, 3, (3, 4))])
def test_short_side_scale(h, w, size, expected):
    out = tf.short_side_scale(tf.to_video(_coords(2, h, w)), size)
    assert tuple(out.shape) == (2, 3) + expected


def test_spatial_crop_positions_landscape_and_portrait():
    land = tf.to_video(_coords(2, 10, 17))
    lefts = [tf.spatial_crop(land, 6, p)[0, 0, 0, 0].item() for p in (0, 1, 2)]
    tops = [tf.spatial_crop(land, 6, p)[0, 1, 0, 0].item() for p in (0, 1, 2)]
    assert lefts == [0, 6, 11] and tops == [2, 2, 2]  # centre = ceil((17 - 6) / 2) = 6
    port = tf.to_video(_coords(2, 17, 10))
    tops = [tf.spatial_crop(port, 6, p)[0, 1, 0, 0].item() for p in (0, 1, 2)]
    lefts = [tf.spatial_crop(port, 6, p)[0, 0, 0, 0].item() for p in (0, 1, 2)]
    assert tops == [0, 6, 11] and lefts == [2, 2, 2]
    with pytest.raises(ValueError, match="larger"):
        tf.spatial_crop(land, 11, 1)


def test_test_views_shapes_and_crops():
    frames = _coords(4, 20, 30)
    views = tf.crop_views(frames, scale=20, crop_size=16, num_crops=3, mean=MEAN, std=STD)
    assert views.shape == (3, 3, 4, 16, 16)
    raw = _unnormalize(views)
    assert [raw[v, 0, 0, 0, 0].item() for v in range(3)] == [0, 7, 14]
    assert torch.all(raw[:, 1, :, 0, 0] == 2) and torch.all(raw[0, 2, :, 0, 0] == torch.arange(4))
    one = tf.crop_views(frames, scale=20, crop_size=16, num_crops=1, mean=MEAN, std=STD)
    assert one.shape == (1, 3, 4, 16, 16) and torch.equal(one[0], views[1])
    with pytest.raises(ValueError, match="num_crops"):
        tf.crop_views(frames, scale=20, crop_size=16, num_crops=2, mean=MEAN, std=STD)


def test_random_crop_is_a_true_window_and_covers_positions():
    video = tf.to_video(_coords(2, 12, 15))
    rng = np.random.default_rng(0)
    corners = set()
    for _ in range(300):
        crop = tf.random_crop(video, 8, rng)
        left, top = crop[0, 0, 0, 0].item(), crop[0, 1, 0, 0].item()
        assert torch.equal(crop, video[:, :, top:top + 8, left:left + 8])
        corners.add((top, left))
    assert corners == {(y, x) for y in range(5) for x in range(8)}


def test_multiscale_crop_sizes_and_positions():
    video = tf.to_video(_coords(2, 40, 60))
    rng = np.random.default_rng(1)
    for _ in range(50):
        assert tf.multiscale_crop(video, 32, rng).shape == (2, 3, 32, 32)
    # One scale, so the crop is 40x40 at a fixed position: x in quarters of (60 - 40) // 4.
    lefts = set()
    for _ in range(200):
        crop = tf.multiscale_crop(video, 40, rng, scales=(1.0,))
        assert crop[0, 1, 0, 0].item() == 0
        lefts.add(crop[0, 0, 0, 0].item())
    assert lefts == {0, 5, 10, 15, 20}


def test_train_transform_shapes_and_determinism():
    frames = _coords(4, 24, 32)
    kwargs = dict(jitter_scales=(20, 28), crop_size=16, mean=MEAN, std=STD, flip=True)
    a = tf.train_transform(frames, 3, rng=np.random.default_rng(5), **kwargs)
    b = tf.train_transform(frames, 3, rng=np.random.default_rng(5), **kwargs)
    assert a[0].shape == (3, 4, 16, 16) and torch.equal(a[0], b[0]) and a[1] == b[1] == 3
    multi = tf.train_transform(frames, 3, rng=np.random.default_rng(5), multiscale=True,
                               **kwargs)
    assert multi[0].shape == (3, 4, 16, 16)
    with pytest.raises(ValueError, match="jitter_scales"):
        tf.train_transform(frames, 0, jitter_scales=(30, 20), crop_size=16, mean=MEAN,
                           std=STD, rng=np.random.default_rng(0))


def test_flip_mirrors_frames_and_remaps_labels():
    frames = _coords(2, 16, 16)  # no resize or crop freedom: only the flip is random
    kwargs = dict(jitter_scales=(16, 16), crop_size=16, mean=MEAN, std=STD)
    flip_map = {0: 1, 1: 0}
    rng = np.random.default_rng(0)
    results = [tf.train_transform(frames, 0, flip_label_map=flip_map, rng=rng, **kwargs)
               for _ in range(40)]
    flipped = [(v, lab) for v, lab in results if _unnormalize(v)[0, 0, 0, 0] == 15]
    plain = [(v, lab) for v, lab in results if _unnormalize(v)[0, 0, 0, 0] == 0]
    assert len(flipped) + len(plain) == 40 and flipped and plain
    assert all(lab == 1 for _, lab in flipped) and all(lab == 0 for _, lab in plain)
    assert torch.equal(flipped[0][0], plain[0][0].flip(-1))
    assert all(tf.train_transform(frames, 2, flip_label_map=flip_map, rng=rng, **kwargs)[1] == 2
               for _ in range(10))
    never = [tf.train_transform(frames, 0, flip=False, rng=rng, **kwargs) for _ in range(20)]
    assert all(_unnormalize(v)[0, 0, 0, 0] == 0 and lab == 0 for v, lab in never)


def test_load_flip_label_map(tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps({"0": 1, "1": 0, "4": 5, "5": 4}))
    assert tf.load_flip_label_map(str(good)) == {0: 1, 1: 0, 4: 5, 5: 4}
    one_way = tmp_path / "one_way.json"
    one_way.write_text(json.dumps({"0": 1}))
    with pytest.raises(ValueError, match="one_way.json"):
        tf.load_flip_label_map(str(one_way))
    broken = tmp_path / "broken.json"
    broken.write_text("[1, 2]")
    with pytest.raises(ValueError, match="broken.json"):
        tf.load_flip_label_map(str(broken))
