"""Synthetic temporal benchmark: files, decodability, exact time-reversal pairs, determinism."""
import filecmp
import json
import os

import av
import numpy as np
import pytest

from cakes_video.datasets import synthetic
from cakes_video.datasets.transforms import load_flip_label_map

FRAMES, SIZE = 6, 32


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("synthetic") / "a")
    return synthetic.make_synthetic(out, seed=3, videos_per_class=1, frames=FRAMES, size=SIZE)


def _decode(path):
    with av.open(path) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and stream.codec_context.pix_fmt == "yuv420p"
        assert float(stream.average_rate) == synthetic.FPS
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _entries(paths, split):
    with open(paths[split]) as f:
        return [(rel, int(label)) for rel, label in (line.split() for line in f)]


def test_lists_well_formed_and_decodable(bench):
    with open(bench["classes"]) as f:
        names = [line.rstrip("\n") for line in f]
    assert names == list(synthetic.CLASS_NAMES)
    for split in synthetic.SPLITS:
        entries = _entries(bench, split)
        assert sorted(label for _, label in entries) == list(range(len(names)))
        for rel, label in entries:
            assert not os.path.isabs(rel) and rel.endswith(".mp4")
            frames = _decode(os.path.join(bench["root"], rel))
            assert frames.shape == (FRAMES, SIZE, SIZE, 3)


def test_partner_clips_are_exact_reversals(bench):
    for split in synthetic.SPLITS:
        entries = dict((label, rel) for rel, label in _entries(bench, split))
        for forward, backward in synthetic.PAIRS:
            a = _decode(os.path.join(bench["root"], entries[forward]))
            b = _decode(os.path.join(bench["root"], entries[backward]))
            assert not np.array_equal(a, a[::-1])  # the clip changes over time
            assert np.array_equal(a, b[::-1])
            stats = lambda clip: sorted(clip.reshape(len(clip), -1, 3).mean(1).round(6).tolist())
            assert stats(a) == stats(b)  # same single-frame statistics


def test_metadata_files(bench):
    with open(bench["pairs"]) as f:
        pairs = json.load(f)
    assert [tuple(p) for p in pairs["pairs"]] == list(synthetic.PAIRS)
    assert sorted(pairs["temporal_only"]) == list(range(len(synthetic.CLASS_NAMES)))
    flip = load_flip_label_map(bench["flip_label_map"])
    names = synthetic.CLASS_NAMES
    assert {names[k]: names[v] for k, v in flip.items()} == {
        "moving right": "moving left", "moving left": "moving right",
        "rotating clockwise": "rotating anticlockwise",
        "rotating anticlockwise": "rotating clockwise"}
    with open(bench["meta"]) as f:
        meta = json.load(f)
    assert meta["seed"] == 3 and meta["frames"] == FRAMES and meta["size"] == SIZE


def test_deterministic_from_seed(bench, tmp_path):
    again = synthetic.make_synthetic(str(tmp_path / "b"), seed=3, videos_per_class=1,
                                     frames=FRAMES, size=SIZE)
    other = synthetic.make_synthetic(str(tmp_path / "c"), seed=4, videos_per_class=1,
                                     frames=FRAMES, size=SIZE)
    rel = _entries(bench, "train")[0][0]
    assert filecmp.cmp(os.path.join(bench["root"], rel), os.path.join(again["root"], rel),
                       shallow=False)
    assert not np.array_equal(_decode(os.path.join(bench["root"], rel)),
                              _decode(os.path.join(other["root"], rel)))
    for split in synthetic.SPLITS:
        assert filecmp.cmp(bench[split], again[split], shallow=False)


def test_one_split_alone_is_that_split_of_the_whole_benchmark(bench, tmp_path):
    alone = synthetic.make_synthetic(str(tmp_path / "t"), seed=3, videos_per_class=1, frames=FRAMES, size=SIZE,
                                     splits=("test",))
    assert "train" not in alone and not os.path.exists(os.path.join(alone["root"], "videos", "train"))
    assert filecmp.cmp(bench["test"], alone["test"], shallow=False)
    for rel, _ in _entries(alone, "test"):
        assert filecmp.cmp(os.path.join(bench["root"], rel), os.path.join(alone["root"], rel), shallow=False)
    with pytest.raises(ValueError, match="splits must be among"):
        synthetic.make_synthetic(str(tmp_path / "x"), splits=("holdout",))


@pytest.mark.parametrize("motion, key", [("horizontal", "x"), ("vertical", "y"),
                                         ("rotation", "angle"), ("scale", "half")])
def test_forward_motion_directions(motion, key):
    # The rendered member of each pair is the first class: right (+x), down (+y, rows grow
    # downwards), clockwise (+angle, see below), growing (+half size).
    for seed in range(20):
        obj = synthetic._main_object(motion, np.random.default_rng(seed), 16, 64)
        assert np.all(np.diff(obj[key]) > 0)
        if key in ("x", "y"):
            assert obj[key][-1] - obj[key][0] > 0.3 * 64


def test_appearing_fades_in():
    for seed in range(20):
        alpha = synthetic._main_object("opacity", np.random.default_rng(seed), 16, 64)["alpha"]
        assert alpha[0] == 0 and alpha[-1] == 1 and np.all(np.diff(alpha) >= 0)


def test_increasing_angle_turns_clockwise_on_screen():
    grid = np.mgrid[0:41, 0:41].astype(np.float64) + 0.5

    def centroid(angle):
        canvas = np.zeros((41, 41, 3))
        synthetic._draw(canvas, grid, "L", np.ones(3), 20.5, 20.5, 12.0, angle, 1.0)
        weight = canvas[..., 0]
        return np.array([(weight * grid[1]).sum(), (weight * grid[0]).sum()]) / weight.sum() - 20.5

    x0, y0 = centroid(0.0)
    x1, y1 = centroid(np.pi / 2)
    assert x0 < -1 and y0 > 1  # the L's mass is bottom-left
    # a quarter turn clockwise on screen (y down) maps (x, y) to (-y, x): bottom-left -> top-left
    assert np.allclose([x1, y1], [-y0, x0], atol=0.2)


def test_temporal_pair_accuracy():
    labels = np.array([0, 1, 2, 3])
    perfect = np.eye(10)[labels]
    assert synthetic.temporal_pair_accuracy(perfect, labels) == 1.0
    frame_only = np.zeros((4, 10))
    frame_only[:, [0, 1]] = 0.5  # same scores for a clip and its reversal
    frame_only[:, 2] = 0.9
    assert synthetic.temporal_pair_accuracy(frame_only, labels) == pytest.approx(0.5 * 0.5 + 0.25)


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="videos_per_class"):
        synthetic.make_synthetic(str(tmp_path), videos_per_class=0)
