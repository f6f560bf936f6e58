"""Peak memory of a windowed prediction, each in a fresh process: does it grow with the video?

``measure_predict_memory(video, ...)`` runs ``engine.predict.run_predict`` with ``--window`` /
``--stride`` on one video in a new Python process and reads that process's peak resident set
size (``getrusage`` ``ru_maxrss``) when it is done, and the peak it had reached once the model was
loaded, before the video was opened. ``write_test_video`` makes the long videos it is
measured on (H.264, a bar sweeping across a gradient), which are never committed.

Report of one measurement (a dict; MiB are 2**20 bytes)::

    {video, seconds, frames, model, window, stride, windows, peak_rss_mib,
     peak_rss_before_video_mib, wall_seconds}
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from fractions import Fraction
from typing import Dict, List, Sequence

import av
import numpy as np

from ..datasets.windows import Span
from ..engine.cli import config_of
from ..datasets.catalog import class_names_of
from ..engine.predict import PredictOptions, load_trained_model, predict_inputs

DEFAULT_MODEL = "synthetic_cakes_r10_w32"  # shipped with the package: no download


def write_test_video(path: str, seconds: float, fps: int = 25, size=(128, 96)) -> str:
    """``seconds`` of H.264 video at ``fps``, ``size`` (width, height): a bright bar sweeping
    over a gradient, one frame in memory at a time. Returns ``path``."""
    width, height = size
    base = np.tile(np.linspace(0, 160, width, dtype=np.uint8)[None, :, None], (height, 1, 3))
    with av.open(path, "w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps, options={"preset": "ultrafast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.codec_context.time_base = Fraction(1, fps)
        for i in range(int(round(seconds * fps))):
            frame = base.copy()
            x = (i * 3) % width
            frame[:, x:x + 8] = 255
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = i, Fraction(1, fps)
            out.mux(stream.encode(picture.reformat(format="yuv420p")))
        out.mux(stream.encode(None))
    return path


def measure_predict_memory(video: str, model: str = DEFAULT_MODEL, window: str = "2", stride: str = "1",
                           overrides: Sequence[str] = ()) -> Dict:
    """One windowed prediction of ``video`` with the zoo model ``model`` in a fresh process; its report."""
    request = {"video": video, "model": model, "window": window, "stride": stride, "overrides": list(overrides)}
    code = "import sys; from cakes_video.benchmarks.predict_memory import child; child(sys.argv[1])"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, json.dumps(request)], capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"the prediction of {video} failed (status {done.returncode}): {done.stderr.strip()[-2000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    with av.open(video) as container:
        stream = container.streams.video[0]
        frames, seconds = stream.frames, float(stream.duration * stream.time_base)
    return {"video": video, "seconds": seconds, "frames": frames, "model": model, "window": window,
            "stride": stride, **report, "wall_seconds": round(wall, 1)}


def child(request_json: str) -> None:
    """The measured process: load the model, note the peak so far, predict, print the report."""
    request = json.loads(request_json)
    cfg = config_of(argparse.Namespace(model=request["model"], cfg_file=None, opts=request["overrides"]))
    model = load_trained_model(cfg)
    before = _peak_rss_mib()
    with tempfile.TemporaryDirectory() as out:
        options = PredictOptions(window=Span.parse(request["window"]), stride=Span.parse(request["stride"]),
                                 output_dir=out, progress=False)
        (result,) = predict_inputs(model, class_names_of(cfg), cfg, [request["video"]], options)
    if "error" in result:
        raise SystemExit(result["error"])
    print(json.dumps({"windows": len(result["windows"]), "peak_rss_mib": _peak_rss_mib(),
                      "peak_rss_before_video_mib": before}))


def _peak_rss_mib() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def benchmark_predict_memory(seconds: Sequence[float] = (60, 1200), video_dir: str = "", model: str = DEFAULT_MODEL,
                             window: str = "2", stride: str = "1", overrides: Sequence[str] = ()) -> List[Dict]:
    """Writes a video of each length in ``seconds`` (into ``video_dir``, reused when there;
    else a temporary folder) and measures each; the reports in order."""
    with tempfile.TemporaryDirectory() as scratch:
        folder = video_dir or scratch
        os.makedirs(folder, exist_ok=True)
        reports = []
        for length in seconds:
            path = os.path.join(folder, f"sweep_{length:g}s.mp4")
            if not os.path.isfile(path):
                write_test_video(path, length)
            reports.append(measure_predict_memory(path, model, window, stride, overrides))
        return reports
