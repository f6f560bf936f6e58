"""The hard variant of the synthetic benchmark: same files for a seed, exact time-reversed pairs
(identical frames as sets), its classes' motions, its size and generation time."""
import filecmp
import json
import os
import subprocess
import sys
import time

import av
import numpy as np
import pytest

from cakes_video.config_loader import load_config
from cakes_video.datasets import synthetic
from cakes_video.datasets.transforms import load_flip_label_map

FRAMES, SIZE = 6, 32
TOOL = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools", "make_synthetic.py")
HARD = synthetic.VARIANTS["hard"]


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("hard") / "a")
    return synthetic.make_synthetic(out, seed=5, videos_per_class=1, frames=FRAMES, size=SIZE, variant="hard")


def _decode(path):
    with av.open(path) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


def _entries(list_path):
    with open(list_path) as f:
        return [(rel, int(label)) for rel, label in (line.split() for line in f)]


def _all_files(root):
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files)


def test_same_seed_same_files_other_seed_other_clips(bench, tmp_path):
    again = synthetic.make_synthetic(str(tmp_path / "b"), seed=5, videos_per_class=1, frames=FRAMES, size=SIZE,
                                     variant="hard")
    names = _all_files(bench["root"])
    assert names == _all_files(again["root"]) and len(names) == 3 * 24 + 7
    match, mismatch, errors = filecmp.cmpfiles(bench["root"], again["root"], names, shallow=False)
    assert mismatch == [] and errors == []
    other = synthetic.make_synthetic(str(tmp_path / "c"), seed=6, videos_per_class=1, frames=FRAMES, size=SIZE,
                                     variant="hard", splits=("test",))
    rel = _entries(bench["test"])[0][0]
    assert not np.array_equal(_decode(os.path.join(bench["root"], rel)), _decode(os.path.join(other["root"], rel)))


def test_every_reversed_pair_has_the_same_frames_as_a_set(bench):
    for split in synthetic.SPLITS:
        by_label = {label: rel for rel, label in _entries(bench[split])}
        assert sorted(by_label) == list(range(24))
        for forward, backward in HARD.pairs:
            a = _decode(os.path.join(bench["root"], by_label[forward]))
            b = _decode(os.path.join(bench["root"], by_label[backward]))
            assert a.shape == (FRAMES, SIZE, SIZE, 3)
            assert not np.array_equal(a, b)  # the clip changes over time, so the order tells them apart
            assert sorted(frame.tobytes() for frame in a) == sorted(frame.tobytes() for frame in b)
            assert np.array_equal(a, b[::-1])


def test_metadata_names_the_variant_its_classes_pairs_and_flips(bench):
    with open(bench["classes"]) as f:
        assert [line.rstrip("\n") for line in f] == list(synthetic.HARD_CLASS_NAMES)
    with open(bench["meta"]) as f:
        meta = json.load(f)
    assert meta["variant"] == "hard" and meta["seed"] == 5 and meta["videos_per_class"] == {
        "train": 1, "val": 1, "test": 1}
    with open(bench["pairs"]) as f:
        assert json.load(f)["pairs"] == [[2 * p, 2 * p + 1] for p in range(12)]
    # A horizontal flip swaps exactly the words right/left and clockwise/anticlockwise.
    swap = {"right": "left", "left": "right", "clockwise": "anticlockwise", "anticlockwise": "clockwise"}
    names = synthetic.HARD_CLASS_NAMES
    flipped = {i: " ".join(swap.get(w, w) for w in name.split()) for i, name in enumerate(names)}
    expected = {i: names.index(f) for i, f in flipped.items() if f != names[i]}
    assert load_flip_label_map(bench["flip_label_map"]) == expected and len(expected) == 14


def test_unknown_variant_is_refused(tmp_path):
    with pytest.raises(ValueError, match=r"variant must be one of \['easy', 'hard'\], got 'medium'"):
        synthetic.make_synthetic(str(tmp_path), variant="medium")
    assert not os.listdir(tmp_path)


@pytest.mark.slow  # a subprocess that imports the package
def test_the_tool_writes_the_variant_its_flag_names(tmp_path):
    args = [sys.executable, TOOL, "--videos-per-class", "1", "--frames", "4", "--size", "32"]
    run = subprocess.run(args + [str(tmp_path / "h"), "--variant", "hard"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    with open(tmp_path / "h" / "meta.json") as f:
        assert json.load(f)["variant"] == "hard"
    with open(tmp_path / "h" / "test.txt") as f:
        assert len(f.readlines()) == 24
    bad = subprocess.run(args + [str(tmp_path / "m"), "--variant", "medium"], capture_output=True, text=True)
    assert bad.returncode == 1 and "invalid choice: 'medium'" in bad.stderr and not os.path.exists(tmp_path / "m")


def _motion(name, seed, frames=16, size=64):
    return synthetic.HARD_MOTIONS[name](np.random.default_rng(seed), frames, size)


def test_speed_classes_differ_in_distance_not_in_direction():
    for seed in range(20):
        for name, axis in (("slow horizontal", "x"), ("slow vertical", "y")):
            (slow,), _ = _motion(name, seed)
            (quick,), _ = _motion(name.replace("slow", "quick"), seed)
            assert np.all(np.diff(slow[axis]) > 0) and np.all(np.diff(quick[axis]) > 0)
            assert slow[axis][-1] - slow[axis][0] < 0.23 * 64 < 0.39 * 64 < quick[axis][-1] - quick[axis][0]
        (speeding,), _ = _motion("speeding up", seed)
        (slowing,), _ = _motion("slowing down", seed)
        assert np.all(np.diff(speeding["x"], 2) > 0) and np.all(np.diff(slowing["x"], 2) < 0)
        assert np.all(np.diff(speeding["x"]) > 0) and np.all(np.diff(slowing["x"]) > 0)


def test_meeting_ends_in_contact_and_passing_crosses_with_the_front_one_moving_right():
    for seed in range(20):
        (a, b), bar = _motion("meeting", seed)
        gap = np.hypot(a["x"] - b["x"], a["y"] - b["y"])
        assert bar is None and np.all(np.diff(gap) <= 1e-9) and gap[0] > gap[-1] + 0.19 * 64
        assert gap[-1] == pytest.approx(a["half"][0] + b["half"][0], abs=0.16 * 8)
        (back, front), _ = _motion("passing", seed)  # drawn in this order: front last
        assert np.all(np.diff(front["x"]) >= 0) and np.all(np.diff(back["x"]) <= 0)
        assert front["x"][0] < back["x"][0] and front["x"][-1] > back["x"][-1]


def test_going_behind_ends_hidden_under_the_bar():
    for seed in range(20):
        (obj,), (cover, _) = _motion("going behind", seed)
        canvas = np.zeros((64 + 2 * synthetic.MARGIN,) * 2 + (3,))
        grid = np.mgrid[0:len(canvas), 0:len(canvas)].astype(np.float64) + 0.5
        synthetic._draw(canvas, grid, obj["shape"], np.ones(3), obj["x"][-1], obj["y"][-1], obj["half"][-1],
                        obj["angle"][-1], 1.0)
        assert canvas.sum() > 0 and np.all(cover[canvas[..., :1] > 0] == 1.0)  # fully covered
        assert not np.all(cover[..., 0] == 1.0)


def test_swinging_speeds_up_and_hopping_moves_right():
    thirds = []
    for seed in range(20):
        (obj,), _ = _motion("swinging faster", seed, frames=60)
        speed = np.abs(np.diff(obj["x"])) + np.abs(np.diff(obj["y"]))  # it swings along one of them
        thirds.append([speed[:20].mean(), speed[-20:].mean()])
        (hop,), _ = _motion("hopping", seed)
        assert np.all(np.diff(hop["x"]) > 0) and np.ptp(hop["y"]) > 0.09 * 64
    first, last = np.mean(thirds, axis=0)
    assert last > 1.5 * first  # frequency 0.3-0.6 -> 1.8-2.4 cycles per clip: about 2.5x in expectation


def test_render_hard_clip_shape_and_pair_accuracy_default_pairs():
    clip = synthetic.render_hard_clip("passing", np.random.default_rng(0), 4, 32)
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == np.uint8
    labels = np.array([22, 23])
    scores = np.zeros((2, 24))
    scores[:, 22] = 1.0  # right for 22, its reversal 23 outscored
    assert synthetic.temporal_pair_accuracy(scores, labels) == 0.5


def test_the_benchmark_config_fits_the_hard_variant():
    cfg = load_config("synthetic/hard_r3d_r10_w16")
    assert cfg.MODEL.NUM_CLASSES == len(synthetic.HARD_CLASS_NAMES) == 24
    assert cfg.DATA.NUM_FRAMES * cfg.DATA.SAMPLING_RATE == 16  # the whole default clip
    assert cfg.DATA.TEST_SCALE == 64 and cfg.MODEL.TEMPORAL_OP == "3d"


@pytest.mark.slow
def test_the_default_hard_set_has_its_size_and_generates_in_under_a_minute(tmp_path):
    start = time.process_time()  # this process's CPU time: other jobs on the machine do not count
    paths = synthetic.make_synthetic(str(tmp_path), variant="hard")
    assert time.process_time() - start < 60
    sizes = {split: len(_entries(paths[split])) for split in synthetic.SPLITS}
    assert sizes == {"train": 24 * 24, "val": 24 * 6, "test": 24 * 12}
