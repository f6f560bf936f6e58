"""Inference on users' videos: the top-k classes of each video, or of each window of a long one.

The model is any callable ``float [N, 3, T, H, W] -> [N, K] logits`` together with its class
names and its config (test protocol, frames, crop, normalisation): :func:`predict_inputs`
runs it, never builds it. :func:`run_predict` builds the PyTorch model (the inference form of
testing, :func:`load_trained_model`) and calls it; an exported model goes through
:func:`predict_inputs` the same way.

Inputs (:func:`find_inputs`): video files; folders, searched recursively for video suffixes
(``transcode.VIDEO_EXTENSIONS``; a folder is one video of JPEG frames with DATA.DECODER
"frames"); list files (suffix in :data:`LIST_SUFFIXES`), one path per line, relative paths
from the list's folder, blank lines and lines starting with "#" skipped.

One result per video (the ``--json`` file is a list of them)::

    {"path", "topk": [{"label", "score"}, ...]}            # the test views of the whole video
    {"path", "error"}                                      # the one-line reason, naming the file
    # with a window: the windows' scores averaged in "topk", and
    {..., "fps", "window_frames", "stride_frames", "windows": [{"start", "end", "topk"}, ...],
     "csv", "timeline"}                                    # start / end in seconds
    # "warning" when the video is shorter than a window, or its test clips repeat frames

Whole videos are read and viewed exactly as the test split reads them
(``multiview.TemporalViews`` / ``SpatialViews``, decoder DATA.DECODER); windows stream
through ``datasets.windows`` (PyAV), each scored as a test video of its own.
"""
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn
from tqdm import tqdm

from ..config import ConfigError, merge_overrides
from ..config_loader import check_config
from ..datasets.catalog import VideoRecord, class_names_of
from ..datasets.decoding import DecodeError
from ..datasets.multiview import spatial_views_from_cfg, temporal_views_from_cfg
from ..datasets.transcode import VIDEO_EXTENSIONS, find_videos
from ..datasets.video_reader import VideoReader, decode_options_from_cfg
from ..datasets.windows import SlidingWindows, Span, sliding_windows_from_cfg
from ..utils.distributed import resolve_device
from ..utils.io import write_json
from ..utils.metrics import aggregate_views
from .export import load_onnx
from .monitor import progress
from .testing import inference_model, trained_model, view_logits
from .plots import plot_timeline
from .reports import write_windows_csv

logger = logging.getLogger(__name__)
Model = Callable[[torch.Tensor], torch.Tensor]  # float [N, 3, T, H, W] -> [N, K] logits
LIST_SUFFIXES = (".txt", ".lst", ".list")
_CONFIG_KEY = re.compile(r"[A-Z][A-Z0-9_]*(\.[A-Z][A-Z0-9_]*)*")
# Exit statuses of tools/predict.py: 0 every video predicted; 1 nothing ran (config, model or
# checkpoint: engine.cli.run_tool); 2 bad flags (argparse); EXIT_SOME_FAILED: at least one input
# failed, every other one predicted and written.
EXIT_SOME_FAILED = 3


@dataclass(frozen=True)
class PredictOptions:
    """How :func:`predict_inputs` runs: ``topk`` classes per video (and window); ``window`` /
    ``stride`` (stride None: the window, no overlap); per-window CSV and PNG into
    ``output_dir``; the results as JSON at ``json_path`` (empty: none); ``device`` ("cpu",
    "cuda", "auto"; empty: the config's DEVICE); a progress bar over videos."""

    topk: int = 5
    window: Optional[Span] = None
    stride: Optional[Span] = None
    output_dir: str = "output/predict"
    json_path: str = ""
    device: str = ""
    progress: bool = True


def load_trained_model(cfg, checkpoint: Optional[str] = None) -> nn.Module:
    """:func:`trained_model`, ready for inference (in inference form with TEST.DEPLOY)."""
    return inference_model(cfg, trained_model(cfg, checkpoint))


def view_overrides(views: str = "", protocol: str = "") -> List[str]:
    """``KEY VALUE`` overrides for a test protocol given on the command line: ``views``
    "CLIPSxCROPS" (e.g. "10x3"), ``protocol`` a key of ``sampling.PROTOCOLS``; ValueError
    for a malformed ``views``."""
    out = []
    if views:
        clips, _, crops = views.lower().partition("x")
        if not (clips.isdigit() and crops.isdigit()):
            raise ValueError(f"--views {views!r}: expected CLIPSxCROPS, e.g. 10x3")
        out += ["TEST.NUM_ENSEMBLE_VIEWS", clips, "TEST.NUM_SPATIAL_CROPS", crops]
    if protocol:
        out += ["DATA.TEST_PROTOCOL", protocol]
    return out


def split_overrides(items: Sequence[str]) -> Tuple[List[str], List[str]]:
    """``(inputs, KEY VALUE overrides)`` of a command line's positional items: the overrides
    start at the first item that looks like a config key (``TEST.TOPK``, ``DEVICE``) and is
    no existing file."""
    for i, item in enumerate(items):
        if _CONFIG_KEY.fullmatch(item) and not os.path.exists(item):
            return list(items[:i]), list(items[i:])
    return list(items), []


def find_inputs(inputs: Sequence[str], frame_folders: bool = False) -> List[Tuple[str, str]]:
    """``(path, error)`` per video the inputs name, in order; ``error`` is "" or the one-line
    reason an input gives no video (missing, a folder without videos, an unreadable list)."""
    found = []
    for item in inputs:
        if os.path.isdir(item) and not frame_folders:
            videos = [os.path.join(item, v) for v in map(str, find_videos(item))]
            found += [(v, "") for v in videos] or [(item, f"{item}: no video files ({', '.join(VIDEO_EXTENSIONS)}) "
                                                             "in this folder or below")]
        elif Path(item).suffix.lower() in LIST_SUFFIXES:
            found += _listed(item)
        elif os.path.exists(item):
            found.append((item, ""))
        else:
            found.append((item, f"{item}: no such file or folder"))
    return found


def _listed(path: str) -> List[Tuple[str, str]]:
    try:
        with open(path) as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as err:
        return [(path, f"{path}: cannot read the list ({err})")]
    here = os.path.dirname(path)
    paths = [os.path.join(here, line) for line in lines if line and not line.startswith("#")]
    return [(p, "" if os.path.exists(p) else f"{p}: no such file (listed in {path})") for p in paths] or \
        [(path, f"{path}: the list names no video")]


def video_views(cfg, path: str) -> Tuple[torch.Tensor, str]:
    """The test views of the whole video ``path`` as the test split makes them, float
    ``[V, C, T, H, W]``, and a warning ("" if none). DecodeError naming the file when it
    cannot be read."""
    if not os.path.exists(path):
        raise DecodeError(f"{path}: no such file or folder")
    temporal, spatial = temporal_views_from_cfg(cfg), spatial_views_from_cfg(cfg)
    seen = {}

    def choose(meta):
        seen["meta"] = meta
        return temporal.indices(meta)

    record = VideoRecord(path, 0, os.path.splitext(os.path.basename(path))[0])
    frames, rows = VideoReader(decode_options_from_cfg(cfg)).read_union(record, choose)  # as MultiViewDataset
    meta, repeats = seen["meta"], any(len(set(r.tolist())) < len(r) for r in rows)
    warning = f"{path}: {meta.num_frames} frame(s) at {meta.fps:g} fps: the test clips repeat frames" if repeats else ""
    return spatial.views(frames, rows), warning


def video_scores(model: Model, views: torch.Tensor, aggregation: str, device: torch.device) -> torch.Tensor:
    """Views ``[V, C, T, H, W]`` -> float ``[K]``: TEST.AGGREGATION over the views' logits."""
    return aggregate_views(view_logits(model, views.unsqueeze(0).to(device)), aggregation)[0].cpu()


def top_classes(scores: torch.Tensor, class_names: Sequence[str], k: int) -> List[Tuple[str, float]]:
    """``[(class name, score), ...]`` of the ``k`` best of ``scores`` [K], best first."""
    top = scores.topk(min(k, scores.numel()))
    return [(class_names[i], float(s)) for s, i in zip(top.values.tolist(), top.indices.tolist())]


def predict_video(model: Model, cfg, path: str, class_names: List[str], topk: int = 5,
                  device: torch.device = torch.device("cpu")) -> List[Tuple[str, float]]:
    """Top-k ``(class name, score)`` of the whole video file ``path``."""
    views, _ = video_views(cfg, path)
    return top_classes(video_scores(model, views, cfg.TEST.AGGREGATION, device), class_names, topk)


def run_predict(cfg, inputs: Sequence[str], checkpoint: str = "", options: PredictOptions = PredictOptions()) -> List[Dict]:
    """What tools/predict.py does with a PyTorch model: the weights are loaded (a missing
    checkpoint fails here, naming it, before any video is read), then :func:`predict_inputs`."""
    device = resolve_device(options.device or cfg.DEVICE)
    model = load_trained_model(cfg, checkpoint).to(device)
    return predict_inputs(model, class_names_of(cfg), cfg, inputs, options)


def run_predict_exported(path: str, inputs: Sequence[str], overrides: Sequence[str] = (),
                         options: PredictOptions = PredictOptions()) -> List[Dict]:
    """What tools/predict.py --onnx does: the exported file's model (ONNX Runtime, CPU), class
    names and config (``overrides`` merged over it: another protocol, say), then
    :func:`predict_inputs`. A file that is not an export of this project fails naming it."""
    model = load_onnx(path)
    cfg = check_config(merge_overrides(model.cfg.clone(), overrides))
    cfg.freeze()
    check_exported_input(cfg, model)
    return predict_inputs(model, model.class_names, cfg, inputs, options)


def check_exported_input(cfg, model) -> None:
    """ConfigError naming the key and the file when ``cfg`` (an export's config with overrides)
    changes what the exported model was made for: its frames, crop size or normalisation."""
    fixed = {"DATA.NUM_FRAMES": (cfg.DATA.NUM_FRAMES, model.num_frames),
             "DATA.TEST_CROP_SIZE": (cfg.DATA.TEST_CROP_SIZE, model.crop_size),
             "DATA.MEAN": (list(cfg.DATA.MEAN), list(model.mean)), "DATA.STD": (list(cfg.DATA.STD), list(model.std))}
    for key, (asked, exported) in fixed.items():
        if asked != exported:
            raise ConfigError(f"{key}: {model.path} was exported for {exported!r}, not {asked!r}")


def predict_inputs(model: Model, class_names: Sequence[str], cfg, inputs: Sequence[str],
                   options: PredictOptions = PredictOptions()) -> List[Dict]:
    """Predicts every video ``inputs`` name (:func:`find_inputs`) with ``model``; prints each
    one's top-k (or its failure, one line naming it) and goes on; returns the results (see the
    module docstring), also written to ``options.json_path`` even when the run is interrupted."""
    if options.window is None and options.stride is not None:
        raise ConfigError("--stride needs --window")
    if options.window is not None and cfg.DATA.DECODER == "frames":
        raise ConfigError("DATA.DECODER: --window streams video files with PyAV; frame folders are not supported")
    device = resolve_device(options.device or cfg.DEVICE)
    windows = None if options.window is None else \
        sliding_windows_from_cfg(cfg, options.window, options.stride or options.window)
    found = find_inputs(inputs, frame_folders=cfg.DATA.DECODER == "frames")
    names = _output_names([path for path, _ in found])
    results = []
    try:
        for (path, error), name in progress(list(zip(found, names)), "predict", len(found), options.progress):
            if error:
                result = {"path": path, "error": error}
            elif windows is None:
                result = _predict_whole(model, class_names, cfg, path, options.topk, device)
            else:
                result = _predict_windows(model, class_names, cfg, path, windows, options, device, name)
            results.append(result)
            _report(result)
    finally:
        if options.json_path:
            write_json(options.json_path, results)
    failed = sum("error" in r for r in results)
    tqdm.write(f"predicted {len(results) - failed} of {len(results)} videos ({failed} failed)"
               + (f"; results in {options.json_path}" if options.json_path else ""))
    return results


def exit_status(results: Sequence[Dict]) -> int:
    """0 when every input was predicted, else :data:`EXIT_SOME_FAILED`."""
    return EXIT_SOME_FAILED if any("error" in r for r in results) or not results else 0


def _ranked(scores: torch.Tensor, class_names: Sequence[str], k: int) -> List[Dict]:
    return [{"label": name, "score": score} for name, score in top_classes(scores, class_names, k)]


def _predict_whole(model: Model, class_names, cfg, path: str, topk: int, device) -> Dict:
    try:
        views, warning = video_views(cfg, path)
    except DecodeError as error:
        return {"path": path, "error": str(error)}
    result = {"path": path, "topk": _ranked(video_scores(model, views, cfg.TEST.AGGREGATION, device), class_names, topk)}
    return {**result, "warning": warning} if warning else result


def _predict_windows(model: Model, class_names, cfg, path: str, windows: SlidingWindows, options: PredictOptions,
                     device, name: str) -> Dict:
    """Scores every window as it streams in; a decode failure keeps the windows before it."""
    result, scores, rows = {"path": path}, [], []
    try:
        for window in windows.read(path):
            score = video_scores(model, window.views, cfg.TEST.AGGREGATION, device)
            scores.append(score)
            rows.append({"start": window.start_seconds, "end": window.end_seconds,
                         "topk": _ranked(score, class_names, options.topk)})
            if len(rows) == 1:
                result.update(fps=window.fps, window_frames=windows.length.frames(window.fps),
                              stride_frames=windows.stride.frames(window.fps))
            if window.whole_video:
                result["warning"] = (f"{path}: {window.stop} frame(s), {window.end_seconds:g} s, is shorter than "
                                     f"the {windows.length} window: one window over the whole video")
    except DecodeError as error:
        result["error"] = str(error)
    if not scores:
        return result
    table, spans = torch.stack(scores), [(row["start"], row["end"]) for row in rows]  # [windows, K]
    stem = os.path.join(options.output_dir, name)
    write_windows_csv(f"{stem}.csv", spans, table, class_names, options.topk)
    plot_timeline(f"{stem}.png", spans, table, class_names, options.topk, path)
    return {**result, "topk": _ranked(table.mean(dim=0), class_names, options.topk), "windows": rows,
            "csv": f"{stem}.csv", "timeline": f"{stem}.png"}


def _output_names(paths: Sequence[str]) -> List[str]:
    """A distinct file stem per video for its CSV and PNG: its own, "-2", "-3"... on a repeat."""
    names, taken = [], set()
    for path in paths:
        stem = name = Path(path).stem or "video"
        repeat = 1
        while name in taken:
            repeat += 1
            name = f"{stem}-{repeat}"
        names.append(name)
        taken.add(name)
    return names


def _report(result: Dict) -> None:
    """The result's lines on stdout, through tqdm so the bar stays whole."""
    if "warning" in result:
        logger.warning("%s", result["warning"])
    if "error" in result:
        tqdm.write(f"FAILED {result['error']}")
    if "topk" not in result:
        return
    where = f" ({len(result['windows'])} windows -> {result['csv']}, {result['timeline']})" if "windows" in result else ""
    lines = [f"{result['path']}{where}:"] + \
        [f"  {rank}. {t['label']}  {t['score']:.3f}" for rank, t in enumerate(result["topk"], start=1)]
    tqdm.write("\n".join(lines))
