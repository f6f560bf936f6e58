"""Temporal sampling as pure index math: which frame indices a clip reads. No decoding.

Every function returns int64 frame indices in ``[0, video_frames)``, in time order.

- ``dense_clip_indices``: ``num_frames`` frames ``sampling_rate`` apart, the rate counted at
  ``target_fps`` (a 60 fps video with target 30 steps 2 source frames per unit of rate).
  ``clip_idx=-1``: a uniformly random integer start (training); else clip ``clip_idx`` of
  ``num_clips`` starts spread evenly from the first frame to the last possible start
  (testing). Videos shorter than the clip repeat their last frame (``short_mode="clamp"``)
  or wrap around (``"loop"``).
- ``tsn_indices``: TSN segment sampling (the official CAKES sampling): ``num_segments`` equal
  segments, a random frame in each (training) or each segment's centre frame (testing).
- ``view_clip_indices(protocol, ...)``: the temporal views of one test video under a named
  protocol from ``PROTOCOLS``; every reported accuracy names its protocol.
"""
import math

import numpy as np

SHORT_MODES = ("clamp", "loop")


def _check_positive(**values) -> None:
    for name, value in values.items():
        if value is None or value <= 0:
            raise ValueError(f"{name} must be positive, got {value!r}")


def source_step(sampling_rate: float, video_fps=None, target_fps=None) -> float:
    """Source frames between sampled frames: the rate is counted at target_fps.

    Without both fps values the rate is already in source frames.
    """
    _check_positive(sampling_rate=sampling_rate)
    if video_fps is None or target_fps is None:
        return float(sampling_rate)
    _check_positive(video_fps=video_fps, target_fps=target_fps)
    return sampling_rate * video_fps / target_fps


def _fit_to_video(positions: np.ndarray, video_frames: int, short_mode: str) -> np.ndarray:
    """Maps float positions (>= 0) to valid int64 frame indices."""
    indices = np.floor(positions + 1e-9).astype(np.int64)  # 1e-9: 2.9999999 is frame 3
    if short_mode == "clamp":
        return np.minimum(indices, video_frames - 1)
    if short_mode == "loop":
        return indices % video_frames
    raise ValueError(f"short_mode must be one of {SHORT_MODES}, got {short_mode!r}")


def dense_clip_indices(video_frames, num_frames, sampling_rate, clip_idx, num_clips,
                       video_fps=None, target_fps=None, rng=None,
                       short_mode="clamp") -> np.ndarray:
    """Indices of one dense clip: int64 [num_frames].

    Frame k of the clip is ``floor(start + k * step)`` with ``step`` from ``source_step``.
    ``clip_idx=-1`` draws an integer start uniformly from ``[0, max_start]`` with ``rng``
    (np.random.Generator, required); otherwise start = ``round(max_start * clip_idx /
    (num_clips - 1))`` (centre when ``num_clips == 1``), so the first view starts at
    frame 0 and the last one ends on the last full clip.
    """
    _check_positive(video_frames=video_frames, num_frames=num_frames, num_clips=num_clips)
    step = source_step(sampling_rate, video_fps, target_fps)
    offsets = np.arange(num_frames) * step
    max_start = max(math.floor(video_frames - 1 - offsets[-1] + 1e-9), 0)
    if clip_idx == -1:
        if rng is None:
            raise ValueError("dense_clip_indices: clip_idx=-1 (random) needs rng")
        start = int(rng.integers(0, max_start + 1))
    elif 0 <= clip_idx < num_clips:
        start = _even_start(max_start, clip_idx, num_clips)
    else:
        raise ValueError(f"clip_idx must be -1 or in [0, {num_clips}), got {clip_idx}")
    return _fit_to_video(start + offsets, video_frames, short_mode)


def _even_start(max_start: int, clip_idx: int, num_clips: int) -> int:
    if num_clips == 1:
        return max_start // 2
    return int(np.round(max_start * clip_idx / (num_clips - 1)))


def tsn_indices(video_frames, num_segments, train, rng=None) -> np.ndarray:
    """TSN sampling: int64 [num_segments], one frame per equal segment.

    Segment s covers frames ``[floor(s * N / S), floor((s + 1) * N / S))``; training takes a
    uniformly random frame of it (``rng`` required), testing ``floor((s + 0.5) * N / S)``.
    With fewer frames than segments, empty segments repeat the frame at their start.
    """
    _check_positive(video_frames=video_frames, num_segments=num_segments)
    if not train:
        return _tsn_view(video_frames, num_segments, 0.5)
    if rng is None:
        raise ValueError("tsn_indices: train=True needs rng")
    bounds = np.arange(num_segments + 1) * video_frames // num_segments
    lengths = np.maximum(bounds[1:] - bounds[:-1], 1)
    picks = np.floor(rng.random(num_segments) * lengths).astype(np.int64)
    return (bounds[:-1] + picks).astype(np.int64)


def _tsn_view(video_frames: int, num_segments: int, fraction: float) -> np.ndarray:
    """Frame at ``fraction`` of the way through every segment."""
    positions = (np.arange(num_segments) + fraction) * video_frames / num_segments
    return _fit_to_video(positions, video_frames, "clamp")


def _dense_views(video_frames, num_frames, sampling_rate, num_views, video_fps, target_fps, short_mode):
    """dense_clip_indices views: starts round(i * max_start / (V - 1)) from 0 to the last full
    clip (V=1: centre), short videos clamped (or looped); equals mmaction2>=1.0 SampleFrames
    test_mode (clip_len>1, no target_fps) on videos >= one clip."""
    return [dense_clip_indices(video_frames, num_frames, sampling_rate, i, num_views, video_fps, target_fps,
                               short_mode=short_mode) for i in range(num_views)]


def _pyslowfast_views(video_frames, num_frames, sampling_rate, num_views, video_fps, target_fps, short_mode):
    """PySlowFast get_start_end_idx + temporal_sampling: clip_size = rate * T * fps / target_fps,
    start_i = max(N - clip_size, 0) * i / V, T indices linspace(start, start + clip_size - 1)
    truncated, clamped (``short_mode`` unused: PySlowFast clamps)."""
    clip_size = num_frames * source_step(sampling_rate, video_fps, target_fps)
    delta = max(video_frames - clip_size, 0)
    views = []
    for i in range(num_views):
        start = delta * i / num_views
        # Exact float64 positions. PySlowFast's float32 torch.linspace can land a position
        # that is an exact integer just below it: in a sweep of 13760 views 0.4% differed
        # from it, each by one frame at one position.
        positions = np.linspace(start, start + clip_size - 1, num_frames)
        positions = np.clip(positions, 0, video_frames - 1)
        views.append(positions.astype(np.int64))  # truncation, as torch .long()
    return views


def _mmaction2_views(video_frames, num_frames, sampling_rate, num_views, video_fps, target_fps, short_mode):
    """mmaction2 0.x SampleFrames test_mode: avg = (N - T * rate + 1) / V, offsets
    int(avg * i + avg / 2) (zeros if the video is shorter), indices wrap around; rate =
    round(rate * fps / target_fps) (``short_mode`` unused: mmaction2 wraps)."""
    interval = max(round(source_step(sampling_rate, video_fps, target_fps)), 1)
    span = num_frames * interval
    avg = (video_frames - span + 1) / num_views
    if video_frames > span - 1:
        starts = (np.arange(num_views) * avg + avg / 2).astype(np.int64)
    else:
        starts = np.zeros(num_views, dtype=np.int64)
    return [(s + np.arange(num_frames) * interval) % video_frames for s in starts]


def _tsn_views(video_frames, num_frames, sampling_rate, num_views, video_fps, target_fps, short_mode):
    """TSN: T equal segments; view v takes frame floor((s + (v + 0.5) / V) * N / T) of segment s
    (V=1: segment centres); sampling_rate, the frame rates and ``short_mode`` are unused."""
    return [_tsn_view(video_frames, num_frames, (v + 0.5) / num_views) for v in range(num_views)]


# DATA.TEST_PROTOCOL -> the temporal views of one test video (each docstring gives the exact rule).
PROTOCOLS = {"dense": _dense_views, "pyslowfast": _pyslowfast_views, "mmaction2": _mmaction2_views,
             "tsn": _tsn_views}


def view_clip_indices(protocol, video_frames, num_frames, sampling_rate, num_views,
                      video_fps=None, target_fps=None, short_mode="clamp") -> list:
    """The ``num_views`` temporal views of a test video: list of int64 [num_frames].

    ``protocol`` is a key of ``PROTOCOLS`` (its function's docstring says the exact rule). For
    "tsn", ``num_frames`` is the number of segments. ``short_mode`` applies to "dense" only; the
    library protocols keep their own rule (PySlowFast clamps, mmaction2 wraps around).
    """
    _check_positive(video_frames=video_frames, num_frames=num_frames, num_views=num_views)
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown test protocol {protocol!r}; known: {sorted(PROTOCOLS)}")
    return PROTOCOLS[protocol](video_frames, num_frames, sampling_rate, num_views, video_fps, target_fps,
                               short_mode)
