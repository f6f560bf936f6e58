"""The built-in synthetic benchmark: classes that only temporal modelling can tell apart.

Two variants (``VARIANTS``). The easy one, the demo's and the zoo's, has ten classes in five time-reversed pairs (moving right/left, down/up, rotating
clockwise/anticlockwise, growing/shrinking, appearing/disappearing). Every clip of the
second class of a pair is the exact time reversal of a clip rendered for the first, and both
land in the same split, so the two classes have the same multiset of frames: a
frame-independent model (C2D with temporal averaging) is at chance within every pair, and
at most 50% overall. Nuisances make the model find the object that carries the class: a
smooth grey textured background, per-frame pixel noise, one-pixel camera shake, one or two
smaller distractor shapes on a random walk, and random shape, colour, size, position and slow
drift for the main object. The hard one (``HARD_MOTIONS``; datasets/SYNTHETIC.md), the
search benchmark's, keeps the pair design with 24 classes of subtler or combined motions
(speed and direction, speeding up, two objects meeting or passing, going behind a bar, a
rising swing frequency, hopping), smaller main objects among more distractors, occluding
bars and fewer clips.

Videos are H.264 (yuv420p, intra-only at a constant quantiser, so each frame is coded on its
own and a clip and its reversal decode to the same frames) mp4 files, deterministic from the
seed. ``make_synthetic(out_dir, seed, variant=...)`` writes::

    videos/{split}/{class}_{index}.mp4   train.txt val.txt test.txt ("relative/path label")
    classes.txt  pairs.json  flip_label_map.json  meta.json

``flip_label_map.json`` maps moving right <-> left and clockwise <-> anticlockwise: a
horizontal flip turns one into the other, so training with flips must remap those labels.
``meta.json`` names the variant (only when it is not the easy one, whose files stay as they
were before variants existed).
"""
import os
import shutil
from functools import partial
from typing import Callable, Dict, NamedTuple, Optional, Tuple

import av
import numpy as np

from ..utils.io import write_json

# One motion per pair; the pair's first class is the rendered direction, the second its reversal.
MOTIONS = ("horizontal", "vertical", "rotation", "scale", "opacity")
CLASS_NAMES = ("moving right", "moving left", "moving down", "moving up", "rotating clockwise",
               "rotating anticlockwise", "growing", "shrinking", "appearing", "disappearing")
PAIRS = tuple((2 * p, 2 * p + 1) for p in range(len(MOTIONS)))
FLIP_LABEL_MAP = {0: 1, 1: 0, 4: 5, 5: 4}  # left/right and clockwise/anticlockwise swap
SPLITS = ("train", "val", "test")
FPS = 30
DRIFT_SD = 0.3  # pixels per frame: the step of a distractor's random walk


# Shapes as unions of boxes (cx, cy, half_w, half_h) in units of the shape's half-size, or
# one convex polygon (vertices). None is symmetric under a one-frame rotation step.
SHAPES = {
    "square": [(0.0, 0.0, 1.0, 1.0)],
    "cross": [(0.0, 0.0, 1.0, 0.35), (0.0, 0.0, 0.35, 1.0)],
    "L": [(-0.6, 0.0, 0.4, 1.0), (0.0, 0.65, 1.0, 0.35)],
    "T": [(0.0, -0.65, 1.0, 0.35), (0.0, 0.1, 0.35, 0.9)],
    "triangle": ((0.0, -1.0), (0.95, 0.8), (-0.95, 0.8)),
}
MARGIN = 2  # canvas border hidden from view, room for camera shake of 1 pixel


def _signed_distance(shape, u, v):
    """Distance outside the shape (negative inside), in shape units, at local coords u, v."""
    parts = SHAPES[shape]
    if shape == "triangle":
        edges = []
        for (x0, y0), (x1, y1) in zip(parts, parts[1:] + parts[:1]):
            nx, ny = y1 - y0, x0 - x1  # outward normal of a clockwise (y down) polygon
            norm = np.hypot(nx, ny)
            edges.append(((u - x0) * nx + (v - y0) * ny) / norm)
        return np.max(edges, axis=0)
    boxes = [np.maximum(np.abs(u - cx) - hx, np.abs(v - cy) - hy) for cx, cy, hx, hy in parts]
    return np.min(boxes, axis=0)


def _draw(canvas, grid, shape, colour, x, y, half, angle, alpha):
    """Alpha-composites an anti-aliased shape onto canvas [S, S, 3] in place."""
    if alpha <= 0:
        return
    cos, sin = np.cos(angle), np.sin(angle)
    dx, dy = grid[1] - x, grid[0] - y
    u, v = (cos * dx + sin * dy) / half, (-sin * dx + cos * dy) / half  # world -> local
    cover = np.clip(0.5 - _signed_distance(shape, u, v) * half, 0.0, 1.0)[..., None] * alpha
    canvas *= 1.0 - cover
    canvas += cover * colour


def _smooth_noise(rng, size, cells):
    """Bilinearly upsampled random grid: float [size, size, 3] in [0, 1]."""
    coarse = rng.random((cells + 1, cells + 1, 3))
    pos = np.linspace(0, cells, size)
    low = np.minimum(pos.astype(int), cells - 1)
    frac = (pos - low)[:, None]
    rows = coarse[low] * (1 - frac[..., None]) + coarse[low + 1] * frac[..., None]
    return rows[:, low] * (1 - frac.T[..., None]) + rows[:, low + 1] * frac.T[..., None]


def _background(rng, size):
    """Desaturated smooth texture, so that the saturated shapes stand out: [size, size, 3]."""
    base = rng.uniform(0.25, 0.55) + rng.uniform(-0.05, 0.05, 3)
    texture = 0.2 * _smooth_noise(rng, size, 4) + 0.08 * _smooth_noise(rng, size, 16) - 0.14
    return np.clip(base + texture.mean(axis=2, keepdims=True), 0.0, 1.0)


def _saturated_colour(rng):
    """A bright, saturated RGB colour: one channel high, one low, one anywhere."""
    channels = np.array([rng.uniform(0.75, 1.0), rng.uniform(0.0, 1.0), rng.uniform(0.0, 0.15)])
    return channels[rng.permutation(3)]


def _random_object(rng, frames, size, half_range=(3.0, 6.0)):
    """A shape with colour, size (half-width in pixels of a 64-pixel frame), position, and a
    random-walk drift of ``DRIFT_SD`` pixels per frame."""
    half = rng.uniform(*half_range) * size / 64
    low, high = MARGIN + half, MARGIN + size - half
    drift = np.cumsum(rng.normal(0.0, DRIFT_SD, (frames, 2)), axis=0)
    xy = np.clip(rng.uniform(low, high, 2) + drift, low, high)
    return dict(shape=str(rng.choice(list(SHAPES))), colour=_saturated_colour(rng),
                x=xy[:, 0], y=xy[:, 1], half=np.full(frames, half),
                angle=np.full(frames, rng.uniform(0, 2 * np.pi)), alpha=np.ones(frames))


def _main_object(motion, rng, frames, size):
    """The object whose change over time is the class (the pair's forward direction)."""
    obj = _random_object(rng, frames, size, half_range=(7.0, 11.0))
    ramp = np.linspace(0.0, 1.0, frames)
    obj["x"] = obj["x"][0] + rng.uniform(-0.3, 0.3) * np.arange(frames)  # slow nuisance drift
    obj["y"] = obj["y"][0] + rng.uniform(-0.3, 0.3) * np.arange(frames)
    if motion in ("horizontal", "vertical"):
        axis, distance = ("x" if motion == "horizontal" else "y"), rng.uniform(0.35, 0.55) * size
        start = rng.uniform(MARGIN + obj["half"][0], MARGIN + size - obj["half"][0] - distance)
        obj[axis] = start + distance * ramp
    elif motion == "rotation":  # increasing angle with y pointing down is clockwise on screen
        obj["angle"] = obj["angle"][0] + np.radians(rng.uniform(8.0, 15.0)) * np.arange(frames)
    elif motion == "scale":
        first = rng.uniform(5.0, 6.5) * size / 64
        obj["half"] = first * rng.uniform(1.8, 2.4) ** ramp
    elif motion == "opacity":
        begin, end = rng.uniform(0.0, 0.25), rng.uniform(0.75, 1.0)
        obj["alpha"] = np.clip((ramp - begin) / (end - begin), 0.0, 1.0)
    limit = (MARGIN + obj["half"], MARGIN + size - obj["half"])
    obj["x"], obj["y"] = np.clip(obj["x"], *limit), np.clip(obj["y"], *limit)
    return obj


def _film(rng, background, objects, frames, size, occluder=None):
    """Draws ``objects`` back to front on ``background`` [S+2M, S+2M, 3], then the stationary
    ``occluder`` (cover [S+2M, S+2M, 1], colour [3]) over them, with camera shake and pixel
    noise: uint8 [frames, size, size, 3]."""
    canvas_size = size + 2 * MARGIN
    grid = np.mgrid[0:canvas_size, 0:canvas_size].astype(np.float64) + 0.5
    shake = rng.integers(-1, 2, (frames, 2))
    clip = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        canvas = background.copy()
        for obj in objects:
            _draw(canvas, grid, obj["shape"], obj["colour"], obj["x"][t], obj["y"][t],
                  obj["half"][t], obj["angle"][t], obj["alpha"][t])
        if occluder is not None:
            cover, colour = occluder
            canvas = canvas * (1.0 - cover) + cover * colour
        top, left = MARGIN + shake[t, 0], MARGIN + shake[t, 1]
        view = canvas[top:top + size, left:left + size] + rng.normal(0.0, 0.02, (size, size, 3))
        clip[t] = np.clip(view * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return clip


def render_clip(motion: str, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """One clip of ``motion`` in its forward direction: uint8 [frames, size, size, 3]."""
    background = _background(rng, size + 2 * MARGIN)
    objects = [_random_object(rng, frames, size) for _ in range(rng.integers(1, 3))]
    objects.insert(int(rng.integers(len(objects) + 1)), _main_object(motion, rng, frames, size))
    return _film(rng, background, objects, frames, size)


# The hard variant: twelve pairs of subtler or combined motions (speed x direction, speeding
# up, two objects meeting or passing, going behind a bar, swinging at a rising frequency,
# hopping, slow rotation), smaller main objects, more distractors, occluding bars.
HARD_CLASS_NAMES = (
    "moving right slowly", "moving left slowly", "moving right quickly", "moving left quickly",
    "moving down slowly", "moving up slowly", "moving down quickly", "moving up quickly",
    "speeding up to the right", "slowing down to the left",
    "slowing down to the right", "speeding up to the left",
    "two objects meeting", "two objects parting",
    "passing in front to the right", "passing in front to the left",
    "going behind something", "coming out from behind something",
    "swinging faster", "swinging slower", "hopping to the right", "hopping to the left",
    "rotating clockwise", "rotating anticlockwise")
# A horizontal flip swaps right and left, clockwise and anticlockwise.
HARD_FLIP_LABEL_MAP = {0: 1, 1: 0, 2: 3, 3: 2, 8: 11, 11: 8, 9: 10, 10: 9, 14: 15, 15: 14,
                       20: 21, 21: 20, 22: 23, 23: 22}
SLOW, QUICK, SPEEDING = (0.12, 0.22), (0.4, 0.55), (0.35, 0.5)  # distance per clip / frame side
PROFILES = {"steady": lambda r: r, "speeding up": lambda r: r ** 2,
            "slowing down": lambda r: 1.0 - (1.0 - r) ** 2}  # position over time in [0, 1]
OCCLUDER_RATE = 0.5  # share of clips (other than going behind) with a narrow bar in front
ACTOR_HALF = (5.0, 8.0)  # half-size range of a moving object in a 64-pixel frame (distractors: 3-6)


def _actor(rng, frames, size):
    """A moving object of the hard variant, about the size of its distractors."""
    return _random_object(rng, frames, size, half_range=ACTOR_HALF)


def _bounds(obj, size):
    """The lowest and highest centre coordinate that keep ``obj`` in view."""
    return MARGIN + obj["half"][0], MARGIN + size - obj["half"][0]


def _axes(rng):
    """A random axis of motion and the other one."""
    return ("x", "y") if rng.random() < 0.5 else ("y", "x")


def _translation(axis, distance, profile, rng, frames, size):
    """One object moving forward along ``axis`` by ``distance`` (of the frame side)."""
    obj = _actor(rng, frames, size)
    low, high = _bounds(obj, size)
    other = "y" if axis == "x" else "x"
    travel = rng.uniform(*distance) * size
    obj[axis] = rng.uniform(low, high - travel) + travel * PROFILES[profile](np.linspace(0, 1, frames))
    obj[other] = np.clip(obj[other][0] + rng.uniform(-0.15, 0.15) * np.arange(frames), low, high)
    return [obj], None


def _meeting(rng, frames, size):
    """Two objects close in along one axis and stay in contact from a random moment on."""
    pair = [_actor(rng, frames, size), _actor(rng, frames, size)]
    axis, other = _axes(rng)
    halves = [obj["half"][0] for obj in pair]
    contact, gap = sum(halves), rng.uniform(0.2, 0.3) * size
    reach = (contact + gap) / 2 + max(halves)  # from the centre to the outer edges at the start
    centre = rng.uniform(MARGIN + reach, MARGIN + size - reach)
    closed = np.clip(np.linspace(0, 1, frames) / rng.uniform(0.55, 0.8), 0, 1)
    spread = (contact + gap * (1.0 - closed)) / 2
    line = rng.uniform(MARGIN + max(halves), MARGIN + size - max(halves))
    for obj, sign in zip(pair, (-1, 1)):
        obj[axis] = centre + sign * spread
        obj[other] = np.full(frames, line + sign * rng.uniform(0, 0.15) * min(halves))
    return pair, None


def _passing(rng, frames, size):
    """Two objects cross horizontally in opposite directions; the one in front moves right."""
    front, back = _actor(rng, frames, size), _actor(rng, frames, size)
    cross = MARGIN + rng.uniform(0.4, 0.6) * size
    since = np.linspace(0, 1, frames) - rng.uniform(0.35, 0.65)  # time since they cross
    largest = ACTOR_HALF[1] * size / 64
    line = rng.uniform(MARGIN + largest, MARGIN + size - largest)
    for obj, sign in ((front, 1), (back, -1)):
        obj["x"] = np.clip(cross + sign * rng.uniform(0.35, 0.5) * size * since, *_bounds(obj, size))
        obj["y"] = np.full(frames, line + rng.uniform(-0.2, 0.2) * obj["half"][0])
    return [back, front], None


def _bar(rng, axis, centre, half_width, size):
    """A stationary opaque bar across the view, ``half_width`` thick along ``axis``, in a muted
    colour: (cover [C, C, 1] in [0, 1], colour [3]) on the canvas of side C."""
    coord = np.arange(size + 2 * MARGIN) + 0.5
    edge = np.clip(0.5 - (np.abs(coord - centre) - half_width), 0.0, 1.0)
    cover = np.outer(np.ones_like(edge), edge) if axis == "x" else np.outer(edge, np.ones_like(edge))
    return cover[..., None], rng.uniform(0.15, 0.85) + rng.uniform(-0.05, 0.05, 3)


def _going_behind(rng, frames, size):
    """An object moves behind a wide bar across its path and stays hidden there."""
    obj = _actor(rng, frames, size)
    axis, other = _axes(rng)
    low, high = _bounds(obj, size)
    travel, forward = rng.uniform(0.3, 0.45) * size, rng.random() < 0.5
    end = rng.uniform(low + travel, high) if forward else rng.uniform(low, high - travel)
    remaining = 1.0 - np.clip(np.linspace(0, 1, frames) / rng.uniform(0.6, 0.85), 0, 1)
    obj[axis] = end + (-travel if forward else travel) * remaining
    obj[other] = np.full(frames, obj[other][0])
    # 1.5 half-sizes: the corners of a turned square stay hidden too
    return [obj], _bar(rng, axis, end, 1.5 * obj["half"][0] + 1.0, size)


def _swinging_faster(rng, frames, size):
    """An object swings along one axis, its frequency rising from 0.3-0.6 to 1.8-2.4 cycles
    per clip."""
    obj = _actor(rng, frames, size)
    axis, other = _axes(rng)
    low, high = _bounds(obj, size)
    amplitude = rng.uniform(0.1, 0.16) * size
    start, end = rng.uniform(0.3, 0.6), rng.uniform(1.8, 2.4)
    time = np.linspace(0, 1, frames)
    phase = rng.uniform(0, 2 * np.pi) + 2 * np.pi * (start * time + (end - start) * time ** 2 / 2)
    obj[axis] = rng.uniform(low + amplitude, high - amplitude) + amplitude * np.sin(phase)
    obj[other] = np.full(frames, obj[other][0])
    return [obj], None


def _hopping(rng, frames, size):
    """An object moves right in two or three hops."""
    obj = _actor(rng, frames, size)
    low, high = _bounds(obj, size)
    travel, height = rng.uniform(*SPEEDING) * size, rng.uniform(0.1, 0.16) * size
    time = np.linspace(0, 1, frames)
    obj["x"] = rng.uniform(low, high - travel) + travel * time
    obj["y"] = rng.uniform(low + height, high) - height * np.abs(np.sin(np.pi * rng.integers(2, 4) * time))
    return [obj], None


def _rotating(rng, frames, size):
    """An object turns clockwise by 4-8 degrees a frame, drifting slowly."""
    obj = _actor(rng, frames, size)
    low, high = _bounds(obj, size)
    obj["angle"] = obj["angle"][0] + np.radians(rng.uniform(4.0, 8.0)) * np.arange(frames)
    for key in ("x", "y"):
        obj[key] = np.clip(obj[key][0] + rng.uniform(-0.3, 0.3) * np.arange(frames), low, high)
    return [obj], None


# One per pair of HARD_CLASS_NAMES, in order: (rng, frames, size) -> (objects, occluder or None).
HARD_MOTIONS = {
    "slow horizontal": partial(_translation, "x", SLOW, "steady"),
    "quick horizontal": partial(_translation, "x", QUICK, "steady"),
    "slow vertical": partial(_translation, "y", SLOW, "steady"),
    "quick vertical": partial(_translation, "y", QUICK, "steady"),
    "speeding up": partial(_translation, "x", SPEEDING, "speeding up"),
    "slowing down": partial(_translation, "x", SPEEDING, "slowing down"),
    "meeting": _meeting,
    "passing": _passing,
    "going behind": _going_behind,
    "swinging faster": _swinging_faster,
    "hopping": _hopping,
    "rotation": _rotating,
}


def render_hard_clip(motion: str, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """One clip of the hard variant's ``motion`` (a key of ``HARD_MOTIONS``), forward: uint8
    [frames, size, size, 3]. One to three distractors; a narrow bar in front of everything in
    half of the clips that have no bar of their own."""
    background = _background(rng, size + 2 * MARGIN)
    distractors = [_random_object(rng, frames, size) for _ in range(rng.integers(1, 4))]
    actors, occluder = HARD_MOTIONS[motion](rng, frames, size)
    if occluder is None and rng.random() < OCCLUDER_RATE:
        axis, _ = _axes(rng)
        occluder = _bar(rng, axis, MARGIN + rng.uniform(0, size), rng.uniform(1.0, 2.5) * size / 64, size)
    at = int(rng.integers(len(distractors) + 1))
    return _film(rng, background, distractors[:at] + actors + distractors[at:], frames, size, occluder)


def write_mp4(path: str, frames: np.ndarray, fps: int = FPS) -> None:
    """Encodes uint8 [T, H, W, 3] RGB as intra-only H.264 yuv420p at a constant quantiser."""
    options = {"qp": "18", "preset": "medium", "x264-params": "keyint=1:min-keyint=1:scenecut=0"}
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps, options=options)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # one thread: byte-identical files per seed
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())


class Variant(NamedTuple):
    """One variant of the benchmark: pair ``p`` is classes ``2p`` (rendered) and ``2p + 1``."""
    motions: Tuple[str, ...]  # one per pair, the argument of ``render``
    class_names: Tuple[str, ...]
    flip_label_map: Dict[int, int]
    render: Callable  # (motion, rng, frames, size) -> uint8 [frames, size, size, 3]
    videos_per_class: int  # default training clips per class
    held_out: Dict[str, float]  # val and test clips per class, as a share of train's

    @property
    def pairs(self):
        return tuple((2 * p, 2 * p + 1) for p in range(len(self.motions)))


VARIANTS = {
    "easy": Variant(MOTIONS, CLASS_NAMES, FLIP_LABEL_MAP, render_clip, 32, {"val": 0.25, "test": 0.25}),
    # a larger test split: 24 classes of few clips each
    "hard": Variant(tuple(HARD_MOTIONS), HARD_CLASS_NAMES, HARD_FLIP_LABEL_MAP, render_hard_clip, 24,
                    {"val": 0.25, "test": 0.5}),
}


def split_sizes(videos_per_class: int, held_out=VARIANTS["easy"].held_out) -> dict:
    """Clips per class in each split: val and test get their ``held_out`` share of train (at
    least 1)."""
    return {"train": videos_per_class, **{split: max(int(videos_per_class * share), 1)
                                          for split, share in held_out.items()}}


def _write_split(out_dir, split, count, seed, frames, size, variant):
    """Renders ``count`` clips per pair member; returns list lines ``path label``."""
    os.makedirs(os.path.join(out_dir, "videos", split), exist_ok=True)
    lines = []
    for pair, (forward, backward) in enumerate(variant.pairs):
        for index in range(count):
            # One generator per clip: a clip does not depend on how many others exist.
            rng = np.random.default_rng([seed, SPLITS.index(split), pair, index])
            clip = variant.render(variant.motions[pair], rng, frames, size)
            for label, video in ((forward, clip), (backward, clip[::-1])):
                rel = f"videos/{split}/{variant.class_names[label].replace(' ', '_')}_{index:04d}.mp4"
                write_mp4(os.path.join(out_dir, rel), np.ascontiguousarray(video))
                lines.append(f"{rel} {label}")
    return lines


def _write_text(path: str, lines) -> str:
    with open(path, "w") as f:
        f.write("".join(f"{line}\n" for line in lines))
    return path


def _write_json(path: str, obj) -> str:
    write_json(path, obj, indent=1)
    return path


def make_synthetic(out_dir: str, seed: int = 0, videos_per_class: Optional[int] = None, frames: int = 16,
                   size: int = 64, splits=SPLITS, variant: str = "easy", overwrite: bool = False) -> dict:
    """Writes the benchmark's ``variant`` (a key of ``VARIANTS``) under ``out_dir``; returns
    {name: path} of what it wrote. ``videos_per_class`` defaults to the variant's.

    Keys: root, the ``splits`` written (train, val, test), classes, pairs, flip_label_map, meta.
    A clip depends only on (seed, split, its class pair, its index), so writing fewer
    ``splits`` gives those splits exactly as the whole benchmark has them.
    A benchmark already in ``out_dir`` raises BenchmarkExists unless ``overwrite``, which deletes
    it first (:func:`remove_benchmark`): writing over it would leave its old videos behind.
    """
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {sorted(VARIANTS)}, got {variant!r}")
    spec = VARIANTS[variant]
    videos_per_class = spec.videos_per_class if videos_per_class is None else videos_per_class
    if not set(splits) <= set(SPLITS):
        raise ValueError(f"splits must be among {SPLITS}, got {list(splits)}")
    if videos_per_class < 1 or frames < 2 or size < 32:
        raise ValueError(f"need videos_per_class >= 1, frames >= 2, size >= 32; got "
                         f"{videos_per_class}, {frames}, {size}")
    remove_benchmark(out_dir, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    paths = {"root": out_dir}
    counts = split_sizes(videos_per_class, spec.held_out)
    for split in splits:
        lines = _write_split(out_dir, split, counts[split], seed, frames, size, spec)
        paths[split] = _write_text(os.path.join(out_dir, f"{split}.txt"), lines)
    paths["classes"] = _write_text(os.path.join(out_dir, "classes.txt"), spec.class_names)
    pairs = {"pairs": [list(p) for p in spec.pairs], "temporal_only": list(range(len(spec.class_names))),
             "note": "each clip of a pair's second class is a clip of its first, reversed"}
    paths["pairs"] = _write_json(os.path.join(out_dir, "pairs.json"), pairs)
    flip_map = {str(k): v for k, v in spec.flip_label_map.items()}
    paths["flip_label_map"] = _write_json(os.path.join(out_dir, "flip_label_map.json"), flip_map)
    meta = {"seed": seed, "videos_per_class": counts, "frames": frames, "size": size,
            "fps": FPS}
    if variant != "easy":  # the easy variant's files stay byte-identical to earlier releases'
        meta["variant"] = variant
    paths["meta"] = _write_json(os.path.join(out_dir, "meta.json"), meta)
    return paths


def temporal_pair_accuracy(scores, labels, pairs=None) -> float:
    """Fraction of clips whose true class outscores its time-reversed partner.

    ``scores`` [N, num_classes] (logits or probabilities), ``labels`` [N]; ``pairs`` default
    to classes (0, 1), (2, 3), ... as in every variant. A frame-independent model scores a
    clip and its reversal alike: 0.5 in expectation. Ties count one half.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
    if pairs is None:
        pairs = [(a, a + 1) for a in range(0, scores.shape[1] - 1, 2)]
    partner = np.arange(scores.shape[1])
    for a, b in pairs:
        partner[a], partner[b] = b, a
    rows = np.arange(len(labels))
    true, other = scores[rows, labels], scores[rows, partner[labels]]
    return float(np.mean((true > other) + 0.5 * (true == other)))


class BenchmarkExists(FileExistsError):
    """``make_synthetic`` into a folder that already holds a benchmark, without ``overwrite``."""


# What make_synthetic writes into its folder.
WRITTEN = ("videos", *(f"{split}.txt" for split in SPLITS), "classes.txt", "pairs.json", "flip_label_map.json",
           "meta.json")


def remove_benchmark(out_dir: str, overwrite: bool) -> None:
    """Deletes what an earlier ``make_synthetic`` wrote into ``out_dir`` when ``overwrite``, else
    raises BenchmarkExists naming the folder and what is there; nothing there: nothing to do."""
    found = [name for name in WRITTEN if os.path.lexists(os.path.join(out_dir, name))]
    if found and not overwrite:
        raise BenchmarkExists(f"{out_dir} already holds a synthetic benchmark ({', '.join(found[:3])}"
                              f"{', ...' if len(found) > 3 else ''}): pass --overwrite to replace it")
    for name in found:
        path = os.path.join(out_dir, name)
        shutil.rmtree(path) if os.path.isdir(path) and not os.path.islink(path) else os.remove(path)
