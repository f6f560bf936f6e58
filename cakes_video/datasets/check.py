"""Dataset check (``tools/check_dataset.py``): can every video of a list be opened and decoded?

A video passes when it opens, its first and last frames decode, and (for files) its
content is not clearly shorter than the container header claims (a truncated download
often keeps a header that promises the whole clip). Each result is a dict with ``path``,
``ok``, ``error`` (None or the DecodeError message), ``num_frames``, ``fps``, ``width``,
``height`` (displayed size, after rotation; None when the video does not open).
"""
from multiprocessing import Pool

from tqdm import tqdm

from ..utils.io import write_json
from .catalog import annotation_lines, join_root
from .decoding import DecodeError, open_video
from .decoding_base import truncation
from .decoding_pyav import header_duration


def read_list(list_path: str, root: str = "") -> list:
    """Paths of a video list: one per line, optionally followed by an integer label (whitespace
    separated); blank lines and ``#`` comments are skipped; relative paths join ``root``.
    A missing list raises AnnotationError naming it."""
    return [join_root(root, _without_label(text)) for _, text in annotation_lines(list_path)]


def _without_label(line: str) -> str:
    """``line`` less a trailing integer label; a last word that is no integer is part of the path."""
    parts = line.rsplit(None, 1)
    return parts[0] if len(parts) == 2 and _is_int(parts[1]) else line


def _is_int(text: str) -> bool:
    return text.lstrip("+-").isdigit()


def check_video(path: str, backend: str = "pyav", **options) -> dict:
    """Opens ``path``, decodes its first and last frames, compares content and header."""
    result = {"path": path, "ok": False, "error": None, "num_frames": None, "fps": None,
              "width": None, "height": None}
    try:
        with open_video(path, backend, **options) as video:
            meta = video.meta
            result.update(num_frames=meta.num_frames, fps=meta.fps, width=meta.width, height=meta.height)
            video.get_frames([0, meta.num_frames - 1])
        if backend != "frames":
            _check_not_truncated(path, meta)
    except DecodeError as err:
        result["error"] = str(err)
        return result
    result["ok"] = True
    return result


def _check_not_truncated(path: str, meta) -> None:
    short = truncation(meta, header_duration(path))  # decord's meta does not carry the claim: ask PyAV
    if short:
        raise DecodeError(f"{path}: truncated: {short}")


def _check_one(job) -> dict:
    path, backend, options = job
    return check_video(path, backend, **options)


def check_videos(paths: list, backend: str = "pyav", workers: int = 1, progress: bool = True,
                 **options) -> list:
    """check_video on every path, in order, with a tqdm progress bar; ``workers`` processes."""
    jobs = [(path, backend, options) for path in paths]
    bar = dict(total=len(jobs), desc="checking", unit="video", disable=not progress)
    if workers <= 1:
        return [_check_one(job) for job in tqdm(jobs, **bar)]
    with Pool(workers) as pool:
        return list(tqdm(pool.imap(_check_one, jobs, chunksize=4), **bar))


def summary(results: list) -> str:
    failed = sum(not r["ok"] for r in results)
    return f"{len(results) - failed} ok, {failed} failed"


def write_report(results: list, json_path: str, backend: str) -> None:
    """Writes {"backend", "summary": {"ok", "failed"}, "videos": [result, ...]}."""
    failed = sum(not r["ok"] for r in results)
    report = {"backend": backend, "summary": {"ok": len(results) - failed, "failed": failed},
              "videos": results}
    write_json(json_path, report, indent=1)
