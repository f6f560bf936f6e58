"""Temporal sampling index math: properties over many shapes, and pinned library values."""
import itertools

import numpy as np
import pytest

from cakes_video.datasets import sampling

LENGTHS = (1, 2, 3, 7, 8, 15, 16, 31, 64, 65, 100, 301)
FPS_PAIRS = ((None, None), (30.0, 30.0), (60.0, 30.0), (25.0, 30.0), (29.97, 30.0))


def _assert_valid(indices, video_frames, length):
    assert indices.dtype == np.int64 and indices.shape == (length,)
    assert indices.min() >= 0 and indices.max() < video_frames


@pytest.mark.parametrize("short_mode", sampling.SHORT_MODES)
def test_dense_indices_in_range_and_spaced(short_mode):
    for n, t, rate, (vfps, tfps) in itertools.product(LENGTHS, (1, 4, 8), (1, 2, 8), FPS_PAIRS):
        step = sampling.source_step(rate, vfps, tfps)
        rng = np.random.default_rng(n)
        for clip_idx in (-1, 0, 1, 2):
            idx = sampling.dense_clip_indices(n, t, rate, clip_idx, 3, vfps, tfps, rng,
                                              short_mode=short_mode)
            _assert_valid(idx, n, t)
            if (t - 1) * step < n:  # the clip fits: exact spacing, no clamping or wrapping
                assert np.all(np.abs(np.diff(idx) - step) < 1.0 + 1e-9)
                assert np.all(np.diff(idx) >= 0)
            elif short_mode == "clamp":
                assert np.all(np.diff(idx) >= 0) and idx[-1] == n - 1


def test_dense_fps_conversion_steps_in_source_frames():
    idx = sampling.dense_clip_indices(100, 4, 2, 0, 1, video_fps=60, target_fps=30)
    assert np.all(np.diff(idx) == 4)
    idx = sampling.dense_clip_indices(100, 4, 4, 0, 1, video_fps=15, target_fps=30)
    assert np.all(np.diff(idx) == 2)


def test_dense_test_views_cover_video_evenly():
    for n, t, rate in itertools.product((20, 64, 100, 301), (2, 4, 8), (1, 2, 4)):
        if (t - 1) * rate >= n:
            continue
        views = [sampling.dense_clip_indices(n, t, rate, i, 5, None, None) for i in range(5)]
        assert views[0][0] == 0 and views[-1][-1] == n - 1
        starts = np.array([v[0] for v in views])
        assert np.all(np.diff(starts) >= 0) and np.ptp(np.diff(starts)) <= 1


def test_dense_random_start_is_uniform_and_seeded():
    draws = [sampling.dense_clip_indices(40, 4, 2, -1, 1, rng=np.random.default_rng(7))
             for _ in range(3)]
    assert all(np.array_equal(draws[0], d) for d in draws)
    rng = np.random.default_rng(0)
    starts = [sampling.dense_clip_indices(40, 4, 2, -1, 1, rng=rng)[0] for _ in range(4000)]
    counts = np.bincount(starts, minlength=34)
    assert counts.shape == (34,)  # every start in [0, 40 - 1 - 6] reachable, none beyond
    assert counts.min() > 60


def test_dense_short_video_modes():
    clamp = sampling.dense_clip_indices(5, 4, 2, 0, 1)
    loop = sampling.dense_clip_indices(5, 4, 2, 0, 1, short_mode="loop")
    assert clamp.tolist() == [0, 2, 4, 4]
    assert loop.tolist() == [0, 2, 4, 1]


def test_dense_bad_arguments_raise_with_names():
    with pytest.raises(ValueError, match="rng"):
        sampling.dense_clip_indices(10, 4, 1, -1, 1)
    with pytest.raises(ValueError, match="clip_idx"):
        sampling.dense_clip_indices(10, 4, 1, 3, 3)
    with pytest.raises(ValueError, match="video_fps"):
        sampling.dense_clip_indices(10, 4, 1, 0, 1, video_fps=0, target_fps=30)
    with pytest.raises(ValueError, match="video_frames"):
        sampling.dense_clip_indices(0, 4, 1, 0, 1)
    with pytest.raises(ValueError, match="short_mode"):
        sampling.dense_clip_indices(10, 4, 1, 0, 1, short_mode="wrap")


def test_tsn_properties():
    for n, s in itertools.product(LENGTHS, (1, 3, 8, 16)):
        rng = np.random.default_rng(n * 31 + s)
        for train in (True, False):
            idx = sampling.tsn_indices(n, s, train, rng)
            _assert_valid(idx, n, s)
            assert np.all(np.diff(idx) >= 0)
            if n >= s:
                assert np.all(np.diff(idx) > 0)  # one distinct frame per segment
                bounds = np.arange(s + 1) * n // s
                assert np.all((idx >= bounds[:-1]) & (idx < bounds[1:]))


def test_tsn_pinned_and_seeded():
    assert sampling.tsn_indices(10, 4, train=False).tolist() == [1, 3, 6, 8]
    assert sampling.tsn_indices(3, 5, train=False).tolist() == [0, 0, 1, 2, 2]
    a = sampling.tsn_indices(50, 8, True, np.random.default_rng(3))
    b = sampling.tsn_indices(50, 8, True, np.random.default_rng(3))
    assert np.array_equal(a, b)
    seen = {tuple(sampling.tsn_indices(50, 8, True, np.random.default_rng(i))) for i in range(20)}
    assert len(seen) > 10
    with pytest.raises(ValueError, match="rng"):
        sampling.tsn_indices(10, 4, train=True)


def test_pyslowfast_pinned_values():
    views = sampling.view_clip_indices("pyslowfast", 100, 8, 8, 10)
    # clip_size 64, delta 36, start_i = 3.6 i, linspace(start, start + 63, 8) truncated
    assert views[0].tolist() == [0, 9, 18, 27, 36, 45, 54, 63]
    assert views[1].tolist() == [3, 12, 21, 30, 39, 48, 57, 66]
    assert views[9].tolist() == [32, 41, 50, 59, 68, 77, 86, 95]
    views = sampling.view_clip_indices("pyslowfast", 300, 8, 8, 3, video_fps=60, target_fps=30)
    assert views[0].tolist() == [0, 18, 36, 54, 72, 90, 108, 127]  # clip_size 128
    assert views[1][0] == 57  # delta 172 / 3
    short = sampling.view_clip_indices("pyslowfast", 20, 8, 8, 2)
    assert short[0].tolist() == short[1].tolist() == [0, 9, 18, 19, 19, 19, 19, 19]


def test_mmaction2_pinned_values():
    views = sampling.view_clip_indices("mmaction2", 100, 8, 8, 10)
    # avg = (100 - 64 + 1) / 10 = 3.7, offsets int(3.7 i + 1.85)
    assert [int(v[0]) for v in views] == [1, 5, 9, 12, 16, 20, 24, 27, 31, 35]
    assert views[9].tolist() == [35, 43, 51, 59, 67, 75, 83, 91]
    short = sampling.view_clip_indices("mmaction2", 20, 8, 4, 2)
    assert short[0].tolist() == short[1].tolist() == [0, 4, 8, 12, 16, 0, 4, 8]
    fps = sampling.view_clip_indices("mmaction2", 100, 4, 2, 1, video_fps=60, target_fps=30)
    assert np.all(np.diff(fps[0]) == 4)


def test_tsn_protocol_pinned_values():
    views = sampling.view_clip_indices("tsn", 10, 4, 1, 2)
    assert views[0].tolist() == [0, 3, 5, 8]  # floor((s + 0.25) * 2.5)
    assert views[1].tolist() == [1, 4, 6, 9]  # floor((s + 0.75) * 2.5)
    assert sampling.view_clip_indices("tsn", 10, 4, 1, 1)[0].tolist() == [1, 3, 6, 8]


def test_dense_protocol_matches_mmaction2_v1_formula():
    # mmaction2>=1.0, clip_len 8, interval 8, 3 clips on 100 frames: max_offset 43,
    # offsets round([0, 21.5, 43]); 1 clip: 43 // 2.
    views = sampling.view_clip_indices("dense", 100, 8, 8, 3)
    assert [int(v[0]) for v in views] == [0, 22, 43]
    assert int(sampling.view_clip_indices("dense", 100, 8, 8, 1)[0][0]) == 21


@pytest.mark.parametrize("protocol", sorted(sampling.PROTOCOLS))
def test_every_protocol_gives_valid_views(protocol):
    for n, t, rate, views, (vfps, tfps) in itertools.product(
            LENGTHS, (1, 4, 8), (1, 3, 8), (1, 2, 10), FPS_PAIRS):
        out = sampling.view_clip_indices(protocol, n, t, rate, views, vfps, tfps)
        assert len(out) == views
        for idx in out:
            _assert_valid(idx, n, t)
        again = sampling.view_clip_indices(protocol, n, t, rate, views, vfps, tfps)
        assert all(np.array_equal(a, b) for a, b in zip(out, again))


def test_unknown_protocol_names_known_ones():
    with pytest.raises(ValueError, match="pyslowfast"):
        sampling.view_clip_indices("slowfast", 10, 4, 1, 1)
