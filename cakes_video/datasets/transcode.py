"""Dataset preparation (``datasets/resize_videos.py``, ``datasets/extract_frames.py``):
resized H.264 copies of a tree of videos, or one JPEG frame folder per video.

Reading streams frames through PyAV (one decoded frame in memory at a time, so a long
video is never held whole; ``open_video`` reads by index after a demux pass, which is
not needed here). Every frame is turned upright by its rotation tag (display matrix or
``rotate`` metadata), so a portrait phone video stays portrait, and outputs carry no
rotation tag. Audio is dropped: action recognition reads frames only.

Frame rate: without ``fps`` every decoded frame is kept once, written at the input's
average frame rate (a variable-rate input comes out at its mean rate, frame count
unchanged). With ``fps``, output frame ``k`` shows the input frame on screen at time
``k / fps`` (frames repeated or dropped by their timestamps).

Size: the displayed (upright) short side is scaled to ``short_side`` keeping the aspect
ratio, never enlarged unless ``upscale``; videos get even width and height (yuv420p
needs them), frames any size.

Resumable and atomic: an output exists under its final name only once complete. A video
is written to ``.NAME.partial`` in the same folder and renamed when done; a frame folder
is filled as ``.NAME.partial/`` and renamed into place last. A second run skips every
output that exists. A failed video (corrupt, zero-byte, not a video) is reported by name
with the reason and leaves no output; the others are still processed.
"""
import itertools
import os
import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from multiprocessing import Pool
from pathlib import Path
from typing import Optional

import av
import numpy as np
from av.video.reformatter import VideoReformatter
from PIL import Image
from tqdm import tqdm

from .decoding_base import DecodeError, clockwise, rotate
from .decoding_pyav import open_container
from .streaming import decoded_frames, frame_rate

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov", ".m4v", ".3gp", ".flv", ".mpg", ".mpeg", ".wmv")
EPSILON = 1e-6  # seconds: timestamps closer than this count as equal


@dataclass(frozen=True)
class Job:
    """One input video and its output (a file for "resize", a folder for "frames")."""

    kind: str  # a key of TRANSCODERS
    src: str
    dst: str
    options: dict = field(default_factory=dict)  # keyword arguments of the transcoder


def find_videos(root: str, extensions=VIDEO_EXTENSIONS) -> list:
    """Paths relative to ``root`` of every file under it whose suffix (any case) is one of
    ``extensions``, sorted; hidden files and folders (names starting with ".") are skipped."""
    root = Path(root)
    if not root.is_dir():
        raise DecodeError(f"{root}: no such folder of videos")
    wanted = {ext.lower() for ext in extensions}
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [Path(folder, name).relative_to(root) for name in files
                  if not name.startswith(".") and Path(name).suffix.lower() in wanted]
    return sorted(found)


def scaled_size(width: int, height: int, short_side: Optional[int], upscale: bool = False,
                multiple: int = 1) -> tuple:
    """(width, height) with the short side scaled to ``short_side`` (None: kept), kept when
    already smaller unless ``upscale``, each rounded to a multiple of ``multiple`` (at least it)."""
    scale = 1.0
    if short_side is not None and (upscale or min(width, height) > short_side):
        scale = short_side / min(width, height)
    return tuple(max(multiple, int(round(side * scale / multiple)) * multiple) for side in (width, height))


def _resampled(frames, in_rate: Fraction, fps: Optional[Fraction]):
    """``frames`` unchanged when ``fps`` is None; else output frame k is the input frame on
    screen at ``k / fps`` s from the first frame (a frame without pts sits at index / in_rate)."""
    if fps is None:
        yield from frames
        return
    held, k, start, t = None, 0, None, 0.0
    for i, frame in enumerate(frames):
        t = frame.time if frame.pts is not None else i / float(in_rate)
        start = t if start is None else start
        while held is not None and k / float(fps) < t - start - EPSILON:
            yield held
            k += 1
        held = frame
    end = t - (start or 0.0) + 1 / float(in_rate)  # the last frame shows for one input period
    while held is not None and k / float(fps) < end - EPSILON:
        yield held
        k += 1


def _display_size(frame) -> tuple:
    """(width, height) of ``frame`` as displayed, after its rotation."""
    turned = clockwise(frame.rotation) % 180 == 90
    return (frame.height, frame.width) if turned else (frame.width, frame.height)


class _Upright:
    """Converts av.VideoFrames to upright uint8 [H, W, 3] RGB of the displayed ``size``
    (width, height), with one swscale context for all of them."""

    def __init__(self, size: tuple):
        self.size = size
        self._reformatter = VideoReformatter()

    def __call__(self, frame) -> np.ndarray:
        turn = clockwise(frame.rotation)
        width, height = self.size if turn % 180 == 0 else self.size[::-1]
        rgb = self._reformatter.reformat(frame, width=width, height=height, format="rgb24",
                                         interpolation="AREA").to_ndarray()
        return rotate(rgb, turn)


def _upright_frames(src: str, short_side, upscale: bool, multiple: int, fps):
    """Opens ``src``; returns (frame rate, upright converter, iterator of av.VideoFrames at
    that rate, the container to close). DecodeError when it cannot be read."""
    container, stream = open_container(src)
    try:
        in_rate = frame_rate(stream, src)
        frames = decoded_frames(container, stream, src)
        first = next(frames)
    except BaseException:
        container.close()
        raise
    rate = in_rate if fps is None else Fraction(fps).limit_denominator(1001)
    size = scaled_size(*_display_size(first), short_side, upscale, multiple)
    every = itertools.chain([first], frames)
    return rate, _Upright(size), _resampled(every, in_rate, None if fps is None else rate), container


def _partial(dst: Path) -> Path:
    return dst.with_name(f".{dst.name}.partial")


def resize_video(src: str, dst: str, short_side: Optional[int] = None, fps=None, upscale: bool = False,
                 crf: int = 23, preset: str = "medium", threads: int = 0) -> None:
    """Writes ``src`` to ``dst`` as H.264 (libx264, yuv420p, no audio, no rotation tag) in
    MP4: upright, short side ``short_side`` (even sizes), ``fps`` frames per second (None:
    the input's). ``threads``: encoder threads (0: FFmpeg's choice). Atomic (see the module)."""
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = _partial(dst)
    rate, upright, frames, container = _upright_frames(src, short_side, upscale, 2, fps)
    try:
        with container, av.open(str(tmp), "w", format="mp4") as output:
            stream = _h264_stream(output, rate, upright.size, crf, preset, threads)
            for k, frame in enumerate(frames):
                picture = av.VideoFrame.from_ndarray(upright(frame), format="rgb24").reformat(format="yuv420p")
                picture.pts, picture.time_base = k, 1 / rate
                output.mux(stream.encode(picture))
            output.mux(stream.encode(None))
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _h264_stream(output, rate: Fraction, size: tuple, crf: int, preset: str, threads: int):
    stream = output.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": preset})
    stream.width, stream.height = size
    stream.pix_fmt = "yuv420p"
    stream.codec_context.time_base = 1 / rate
    stream.codec_context.thread_count = threads
    return stream


def extract_frames(src: str, dst: str, template: str = "{:05d}.jpg", start_index: int = 1,
                   short_side: Optional[int] = None, fps=None, upscale: bool = False, quality: int = 95) -> None:
    """Writes the upright frames of ``src`` into the folder ``dst`` as
    ``template.format(start_index + k)`` (JPEG ``quality`` for .jpg), short side
    ``short_side`` (None: the input's size), ``fps`` frames per second (None: every frame).
    Atomic (see the module)."""
    dst = Path(dst)
    tmp = _partial(dst)
    shutil.rmtree(tmp, ignore_errors=True)  # left by a killed run
    _, upright, frames, container = _upright_frames(src, short_side, upscale, 1, fps)
    try:
        with container:
            tmp.mkdir(parents=True)
            for k, frame in enumerate(frames):
                Image.fromarray(upright(frame)).save(tmp / template.format(start_index + k), quality=quality)
        os.rename(tmp, dst)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


TRANSCODERS = {"resize": resize_video, "frames": extract_frames}
OUTPUT_SUFFIX = {"resize": ".mp4", "frames": ""}


def plan_jobs(in_dir: str, out_dir: str, kind: str, extensions=VIDEO_EXTENSIONS, **options) -> list:
    """One Job per video under ``in_dir``; its output is at the same relative path under
    ``out_dir``, the suffix replaced (".mp4" for "resize", none for a "frames" folder)."""
    return [Job(kind, str(Path(in_dir, rel)), str(Path(out_dir, rel).with_suffix(OUTPUT_SUFFIX[kind])), options)
            for rel in find_videos(in_dir, extensions)]


def _result(job: Job, status: str, error: Optional[str] = None) -> dict:
    return {"src": job.src, "dst": job.dst, "status": status, "error": error}


def run_job(job: Job) -> dict:
    """Runs ``job``; returns {"src", "dst", "status": "processed" | "failed", "error": None or
    the reason, naming the file}."""
    try:
        TRANSCODERS[job.kind](job.src, job.dst, **job.options)
    except (DecodeError, av.FFmpegError, OSError) as err:
        message = str(err)
        return _result(job, "failed", message if job.src in message else f"{job.src}: {message}")
    return _result(job, "processed")


def default_workers() -> int:
    """The CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_jobs(jobs: list, workers: int = 1, progress: bool = True) -> list:
    """Runs every job over ``workers`` processes with a tqdm bar on stderr; returns one result
    dict per job, in order (see run_job): outputs that exist are "skipped", a second job with
    the output of an earlier one "failed"."""
    results, pending, owners = {}, [], {}
    for i, job in enumerate(jobs):
        if job.dst in owners:
            results[i] = _result(job, "failed", f"{job.src}: same output {job.dst} as {owners[job.dst]}")
        elif os.path.exists(job.dst):
            results[i] = _result(job, "skipped")
        else:
            pending.append(i)
        owners.setdefault(job.dst, job.src)
    todo = [jobs[i] for i in pending]
    bar = dict(total=len(todo), desc=jobs[0].kind if jobs else "", unit="video", disable=not progress)
    if workers <= 1 or len(todo) <= 1:
        done = [run_job(job) for job in tqdm(todo, **bar)]
    else:
        with Pool(min(workers, len(todo))) as pool:
            done = list(tqdm(pool.imap(run_job, todo), **bar))
    results.update(zip(pending, done))
    return [results[i] for i in range(len(jobs))]


def transcode_tree(in_dir: str, out_dir: str, kind: str, workers: Optional[int] = None, progress: bool = True,
                   extensions=VIDEO_EXTENSIONS, **options) -> list:
    """plan_jobs + run_jobs over ``workers`` processes (None: default_workers()); each worker
    encodes single-threaded when there are several."""
    workers = default_workers() if workers is None else workers
    if kind == "resize":
        options.setdefault("threads", 0 if workers <= 1 else 1)
    return run_jobs(plan_jobs(in_dir, out_dir, kind, extensions, **options), workers, progress)


def report(results: list) -> str:
    """A "FAILED reason" line per failed video, then "N processed, N skipped, N failed"."""
    counts = {status: sum(r["status"] == status for r in results) for status in ("processed", "skipped", "failed")}
    lines = [f"FAILED {r['error']}" for r in results if r["status"] == "failed"]
    return "\n".join(lines + [", ".join(f"{n} {status}" for status, n in counts.items())])


def add_tree_arguments(parser, output: str, short_side_required: bool) -> None:
    """The arguments both dataset tools take: IN_DIR, OUT_DIR (``output``: what it receives),
    --short-side, --upscale, --fps, --workers."""
    parser.add_argument("in_dir", help="folder of videos (searched recursively)")
    parser.add_argument("out_dir", help=f"folder for the {output}")
    parser.add_argument("--short-side", type=int, required=short_side_required,
                        help="pixels of the displayed short side" + ("" if short_side_required else " (default: kept)"))
    parser.add_argument("--upscale", action="store_true", help="also enlarge videos smaller than --short-side")
    parser.add_argument("--fps", type=Fraction, help="output frame rate, e.g. 25 or 30000/1001 (default: the input's)")
    parser.add_argument("--workers", type=int, help="processes in parallel (default: the usable CPU cores)")


def exit_status(results: list) -> int:
    """Prints :func:`report`; 1 when any video failed, else 0."""
    print(report(results))
    return int(any(r["status"] == "failed" for r in results))
