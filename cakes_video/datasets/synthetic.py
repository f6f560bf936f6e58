"""The built-in synthetic benchmark: classes that only temporal modelling can tell apart.

Ten classes in five time-reversed pairs (moving right/left, down/up, rotating
clockwise/anticlockwise, growing/shrinking, appearing/disappearing). Every clip of the
second class of a pair is the exact time reversal of a clip rendered for the first, and both
land in the same split, so the two classes have the same multiset of frames: a
frame-independent model (C2D with temporal averaging) is at chance within every pair, and
at most 50% overall. Nuisances make the model find the object that carries the class: a
smooth grey textured background, per-frame pixel noise, one-pixel camera shake, one or two
smaller distractor shapes on a random walk, and random shape, colour, size, position and slow
drift for the main object.

Videos are H.264 (yuv420p, intra-only at a constant quantiser, so each frame is coded on its
own and a clip and its reversal decode to the same frames) mp4 files, deterministic from the
seed. ``make_synthetic(out_dir, seed)`` writes::

    videos/{split}/{class}_{index}.mp4   train.txt val.txt test.txt ("relative/path label")
    classes.txt  pairs.json  flip_label_map.json  meta.json

``flip_label_map.json`` maps moving right <-> left and clockwise <-> anticlockwise: a
horizontal flip turns one into the other, so training with flips must remap those labels.
"""
import os
import shutil

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


def render_clip(motion: str, rng: np.random.Generator, frames: int, size: int) -> np.ndarray:
    """One clip of ``motion`` in its forward direction: uint8 [frames, size, size, 3]."""
    canvas_size = size + 2 * MARGIN
    grid = np.mgrid[0:canvas_size, 0:canvas_size].astype(np.float64) + 0.5
    background = _background(rng, canvas_size)
    objects = [_random_object(rng, frames, size) for _ in range(rng.integers(1, 3))]
    objects.insert(int(rng.integers(len(objects) + 1)), _main_object(motion, rng, frames, size))
    shake = rng.integers(-1, 2, (frames, 2))
    clip = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        canvas = background.copy()
        for obj in objects:
            _draw(canvas, grid, obj["shape"], obj["colour"], obj["x"][t], obj["y"][t],
                  obj["half"][t], obj["angle"][t], obj["alpha"][t])
        top, left = MARGIN + shake[t, 0], MARGIN + shake[t, 1]
        view = canvas[top:top + size, left:left + size] + rng.normal(0.0, 0.02, (size, size, 3))
        clip[t] = np.clip(view * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return clip


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


def split_sizes(videos_per_class: int) -> dict:
    """Clips per class in each split: val and test get a quarter of train (at least 1)."""
    held_out = max(videos_per_class // 4, 1)
    return {"train": videos_per_class, "val": held_out, "test": held_out}


def _write_split(out_dir, split, count, seed, frames, size):
    """Renders ``count`` clips per pair member; returns list lines ``path label``."""
    os.makedirs(os.path.join(out_dir, "videos", split), exist_ok=True)
    lines = []
    for pair, (forward, backward) in enumerate(PAIRS):
        for index in range(count):
            # One generator per clip: a clip does not depend on how many others exist.
            rng = np.random.default_rng([seed, SPLITS.index(split), pair, index])
            clip = render_clip(MOTIONS[pair], rng, frames, size)
            for label, video in ((forward, clip), (backward, clip[::-1])):
                rel = f"videos/{split}/{CLASS_NAMES[label].replace(' ', '_')}_{index:04d}.mp4"
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


def make_synthetic(out_dir: str, seed: int = 0, videos_per_class: int = 32, frames: int = 16,
                   size: int = 64, splits=SPLITS, overwrite: bool = False) -> dict:
    """Writes the benchmark under ``out_dir``; returns {name: path} of what it wrote.

    Keys: root, the ``splits`` written (train, val, test), classes, pairs, flip_label_map, meta.
    A clip depends only on (seed, split, its class pair, its index), so writing fewer
    ``splits`` gives those splits exactly as the whole benchmark has them.
    A benchmark already in ``out_dir`` raises BenchmarkExists unless ``overwrite``, which deletes
    it first (:func:`remove_benchmark`): writing over it would leave its old videos behind.
    """
    if not set(splits) <= set(SPLITS):
        raise ValueError(f"splits must be among {SPLITS}, got {list(splits)}")
    if videos_per_class < 1 or frames < 2 or size < 32:
        raise ValueError(f"need videos_per_class >= 1, frames >= 2, size >= 32; got "
                         f"{videos_per_class}, {frames}, {size}")
    remove_benchmark(out_dir, overwrite)
    os.makedirs(out_dir, exist_ok=True)
    paths = {"root": out_dir}
    counts = split_sizes(videos_per_class)
    for split in splits:
        lines = _write_split(out_dir, split, counts[split], seed, frames, size)
        paths[split] = _write_text(os.path.join(out_dir, f"{split}.txt"), lines)
    paths["classes"] = _write_text(os.path.join(out_dir, "classes.txt"), CLASS_NAMES)
    pairs = {"pairs": [list(p) for p in PAIRS], "temporal_only": list(range(len(CLASS_NAMES))),
             "note": "each clip of a pair's second class is a clip of its first, reversed"}
    paths["pairs"] = _write_json(os.path.join(out_dir, "pairs.json"), pairs)
    flip_map = {str(k): v for k, v in FLIP_LABEL_MAP.items()}
    paths["flip_label_map"] = _write_json(os.path.join(out_dir, "flip_label_map.json"), flip_map)
    meta = {"seed": seed, "videos_per_class": counts, "frames": frames, "size": size,
            "fps": FPS}
    paths["meta"] = _write_json(os.path.join(out_dir, "meta.json"), meta)
    return paths


def temporal_pair_accuracy(scores, labels, pairs=PAIRS) -> float:
    """Fraction of clips whose true class outscores its time-reversed partner.

    ``scores`` [N, num_classes] (logits or probabilities), ``labels`` [N]. A
    frame-independent model scores a clip and its reversal alike: 0.5 in expectation.
    Ties count one half.
    """
    scores, labels = np.asarray(scores, dtype=np.float64), np.asarray(labels)
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
