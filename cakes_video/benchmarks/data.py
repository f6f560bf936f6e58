"""Data-pipeline benchmark: decoding, training loader, test views.

Report (a JSON object; times are wall-clock seconds, :mod:`.timing`)::

    data:   {list, root, num_videos, synthetic (bool), threads (torch intra-op threads)}
    decode: {backend: {frames, ours_fps, plain_fps, ratio, skipped}} per backend:
            every frame of every video through ``open_video(...).get_frames`` ("ours")
            against the library's own plain sequential decode (PyAV ``container.decode`` +
            ``frame.to_ndarray("rgb24")``, decord ``VideoReader.get_batch``), both opening
            the file, both with the same decoder threading, both giving RGB uint8 numpy
            ``[N, H, W, 3]``; ratio = ours_fps / plain_fps (target >= 0.8); skipped lists videos
            either side could not decode or that the two decode to different frame counts.
    train:  {workers, batch_size, clips, seconds, clips_per_s}: one epoch of
            ``build_loader(cfg, "train")`` (decode, sample, augment, collate), startup included.
    test:   {clips, crops, views_per_video, videos, decode_once_views_per_s,
            per_view_views_per_s, decode_once_speedup}: the multi-view test dataset reading
            every view of a video from one decode, against opening and decoding per view
            (best of ``repeats`` passes each).
"""
import tempfile
from typing import Dict, Sequence

import av
import numpy as np
import torch

from ..config import get_cfg
from ..config_loader import check_config
from ..datasets.catalog import read_video_list
from ..datasets.decoding import DecodeError, open_video
from ..datasets.loader import build_loader
from ..datasets.registry import build_dataset
from ..datasets.synthetic import make_synthetic
from .timing import best_seconds, timed_call


def _plain_pyav(path: str) -> np.ndarray:
    try:
        with av.open(path, metadata_errors="ignore") as container:  # 3gp: UTF-16 tags
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"  # as the pyav backend (PyAV's default is slice threads only)
            return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(stream)])
    except av.FFmpegError as error:
        raise DecodeError(f"{path}: PyAV: {error}") from error


def _plain_decord(path: str) -> np.ndarray:
    import decord  # optional: imported only when the decord backend is measured

    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0))
        return reader.get_batch(list(range(len(reader)))).asnumpy()
    except decord.DECORDError as error:
        raise DecodeError(f"{path}: decord: {error}") from error


PLAIN_DECODERS = {"pyav": _plain_pyav, "decord": _plain_decord}


def plain_decode(path: str, backend: str) -> np.ndarray:
    """All frames, uint8 ``[N, H, W, 3]``, the way each library decodes a file on its own,
    with the decoder threading ``open_video`` uses (PyAV: frame + slice threads, FFmpeg
    picks the count; decord: its default, num_threads=0). The library's own errors
    become DecodeError."""
    if backend not in PLAIN_DECODERS:
        raise ValueError(f"no plain decoder for backend {backend!r}")
    return PLAIN_DECODERS[backend](path)


def our_decode(path: str, backend: str) -> np.ndarray:
    """All frames, uint8 ``[N, H, W, 3]``, through the library's own decoder (``open_video``)."""
    with open_video(path, backend) as video:
        return video.get_frames(np.arange(video.meta.num_frames))


def decode_throughput(paths: Sequence[str], backend: str, repeats: int = 2) -> Dict:
    """Frames per second of our decoder and of the plain decode over every frame of ``paths``;
    each video's best of ``repeats`` (the machine may be shared), after one warm-up decode."""
    seconds, frames, skipped = {"ours": 0.0, "plain": 0.0}, 0, []
    for path in paths:
        try:
            count = len(our_decode(path, backend))  # warm-up: imports, file cache
            plain_count = len(plain_decode(path, backend))
        except DecodeError as error:
            skipped.append({"path": path, "error": str(error).splitlines()[0][:200]})
            continue
        if plain_count != count:  # the rates must count the same frames
            skipped.append({"path": path, "error": f"frame counts differ: ours {count}, plain {plain_count}"})
            continue
        seconds["ours"] += best_seconds(lambda: our_decode(path, backend), repeats)
        seconds["plain"] += best_seconds(lambda: plain_decode(path, backend), repeats)
        frames += count
    ours, plain = frames / max(seconds["ours"], 1e-9), frames / max(seconds["plain"], 1e-9)
    return {"frames": frames, "ours_fps": round(ours, 1), "plain_fps": round(plain, 1),
            "ratio": round(ours / plain, 3) if frames else None, "skipped": skipped}


def train_throughput(cfg) -> Dict:
    """Clips per second of one training epoch through ``build_loader`` (batches ``[B, C, T, H, W]``)."""
    clips, seconds = timed_call(lambda: sum(len(batch["index"]) for batch in build_loader(cfg, "train")))
    return {"workers": cfg.DATA_LOADER.NUM_WORKERS, "batch_size": cfg.TRAIN.BATCH_SIZE, "clips": clips,
            "seconds": round(seconds, 3), "clips_per_s": round(clips / seconds, 1)}


def multiview_throughput(cfg, max_videos: int, repeats: int = 2) -> Dict:
    """Views per second of the multi-view test dataset (items ``[V, C, T, S, S]``, V views),
    decode-once against per-view (each mode's best of ``repeats`` passes over the videos, after
    a warm-up item)."""
    dataset = build_dataset(cfg, "test")
    videos = min(max_videos, len(dataset))
    best = {True: float("inf"), False: float("inf")}

    def one_pass() -> int:
        return sum(len(dataset[i]["video"]) for i in range(videos))

    for _ in range(repeats):
        for decode_once in (True, False):
            dataset.decode_once = decode_once
            dataset[0]  # warm-up: first-call costs (imports, allocator) would count against one mode
            views, seconds = timed_call(one_pass)
            best[decode_once] = min(best[decode_once], seconds)
    rates = {mode: views / seconds for mode, seconds in best.items()}
    return {"clips": cfg.TEST.NUM_ENSEMBLE_VIEWS, "crops": cfg.TEST.NUM_SPATIAL_CROPS,
            "views_per_video": dataset.num_views, "videos": videos,
            "decode_once_views_per_s": round(rates[True], 1), "per_view_views_per_s": round(rates[False], 1),
            "decode_once_speedup": round(rates[True] / rates[False], 2)}


def benchmark_cfg(list_path: str, root: str, workers: int, clips: int, crops: int, small: bool,
                  batch_size: int = 8):
    """The config the benchmark loads with: every split reads ``list_path``; ``small`` sizes
    transforms for the 64x64 synthetic clips (16 frames at 30 fps; 8-frame clips at rate 1,
    so the 10 test clips differ: 8 x 2 would make them all the whole video)."""
    cfg = get_cfg()
    cfg.TRAIN.BATCH_SIZE = batch_size
    cfg.DATA.ROOT = root
    cfg.DATA.TRAIN_LIST = cfg.DATA.VAL_LIST = cfg.DATA.TEST_LIST = list_path
    cfg.DATA_LOADER.NUM_WORKERS = workers
    cfg.TEST.NUM_ENSEMBLE_VIEWS, cfg.TEST.NUM_SPATIAL_CROPS = clips, crops
    if small:
        cfg.DATA.NUM_FRAMES, cfg.DATA.SAMPLING_RATE = 8, 1
        cfg.DATA.TRAIN_JITTER_SCALES, cfg.DATA.TRAIN_CROP_SIZE = [64, 80], 56
        cfg.DATA.TEST_SCALE, cfg.DATA.TEST_CROP_SIZE = 64, 56
    return check_config(cfg)


def run(list_path: str, root: str, backends: Sequence[str], workers: int, clips: int, crops: int,
        max_test_videos: int, small: bool, repeats: int = 2) -> Dict:
    """Every measurement of the module docstring on the videos of ``list_path``."""
    paths = [record.path for record in read_video_list(list_path, root)]
    # A list shorter than a batch still gives one (the train loader drops partial batches).
    cfg = benchmark_cfg(list_path, root, workers, clips, crops, small, max(1, min(8, len(paths))))
    return {
        "data": {"list": list_path, "root": root, "num_videos": len(paths), "synthetic": small,
                 "threads": torch.get_num_threads()},
        "decode": {backend: decode_throughput(paths, backend, repeats) for backend in backends},
        "train": train_throughput(cfg),
        "test": multiview_throughput(cfg, max_test_videos, repeats),
    }


def run_on_synthetic(backends: Sequence[str], workers: int, clips: int, crops: int, max_test_videos: int,
                     videos_per_class: int, repeats: int = 2) -> Dict:
    """:func:`run` on a fresh synthetic set (``videos_per_class`` videos per class, 64x64, 16
    frames) in a temporary folder, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="cakes_bench_") as tmp:
        synthetic = make_synthetic(tmp, seed=0, videos_per_class=videos_per_class)
        return run(synthetic["train"], synthetic["root"], backends, workers, clips, crops, max_test_videos,
                   small=True, repeats=repeats)
