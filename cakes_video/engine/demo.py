"""The `make demo` job: synthetic benchmark -> train a small CAKES ResNet -> multi-view test ->
predict one video -> OUTPUT_DIR/results.json and a printed summary."""
import logging
import os
import time
from typing import Dict, Optional, Sequence

from ..config import resolve_config_path
from ..config_loader import load_config
from ..datasets.catalog import class_names_of, read_video_list
from ..datasets.synthetic import make_synthetic
from ..utils.io import write_json
from .monitor import setup_logging
from .predict import load_trained_model, predict_video
from .setup import train
from .testing import run_test

logger = logging.getLogger(__name__)
# The synthetic clips the demo configs are written for (frames, side in pixels).
SYNTHETIC_FRAMES, SYNTHETIC_SIZE = 16, 64
SYNTHETIC_VIDEOS_PER_CLASS = 96  # training clips per class (val and test get a quarter as many)
DEFAULT_CONFIG = "demo/cakes_r10_synthetic"  # a packaged config (cakes_video/configs/)


def ensure_synthetic(data_dir: str, seed: int, videos_per_class: Optional[int], frames: int, size: int,
                     variant: str = "easy") -> str:
    """Writes the synthetic benchmark's ``variant`` into ``data_dir`` unless a complete one is there
    (``videos_per_class`` None: the variant's default)."""
    done = all(os.path.isfile(os.path.join(data_dir, f)) for f in ("train.txt", "val.txt", "test.txt", "meta.json"))
    if done:
        logger.info("using the synthetic benchmark already in %s", data_dir)
    else:
        logger.info("writing the synthetic benchmark to %s ...", data_dir)
        # an incomplete one is the remains of an interrupted demo: replace it
        make_synthetic(data_dir, seed=seed, videos_per_class=videos_per_class, frames=frames, size=size,
                       variant=variant, overwrite=True)
    return data_dir


def data_overrides(output_dir: str, data_dir: str) -> list:
    """KEY VALUE pairs pointing a config at the benchmark in ``data_dir``."""
    join = lambda name: os.path.join(data_dir, name)  # noqa: E731
    return ["OUTPUT_DIR", output_dir, "DATA.ROOT", data_dir, "DATA.TRAIN_LIST", join("train.txt"),
            "DATA.VAL_LIST", join("val.txt"), "DATA.TEST_LIST", join("test.txt"),
            "DATA.CLASS_NAMES", join("classes.txt"), "DATA.FLIP_LABEL_MAP", join("flip_label_map.json")]


def run_demo(output_dir: str, config: str = DEFAULT_CONFIG, overrides: Sequence[str] = (), seed: int = 0,
             videos_per_class: int = SYNTHETIC_VIDEOS_PER_CLASS, frames: int = SYNTHETIC_FRAMES,
             size: int = SYNTHETIC_SIZE) -> Dict:
    """Runs the whole demo; returns the results dict also written to ``output_dir/results.json``."""
    start = time.time()
    setup_logging(output_dir)
    data_dir = ensure_synthetic(os.path.join(output_dir, "data"), seed, videos_per_class, frames, size)
    cfg = load_config(config, data_overrides(output_dir, data_dir) + list(overrides))
    train(cfg)
    results = run_test(cfg)
    record = read_video_list(cfg.DATA.TEST_LIST, data_dir, cfg.DATA.SEPARATOR)[0]
    names = class_names_of(cfg)
    ranked = predict_video(load_trained_model(cfg), cfg, record.path, names)
    results["demo"] = {"config": config, "config_file": resolve_config_path(config),
                       "results_path": os.path.join(output_dir, "results.json"), "chance_top1": 100.0 / len(names),
                       "seconds": round(time.time() - start, 1),
                       "prediction": {"video": os.path.relpath(record.path, data_dir), "label": names[record.label],
                                      "top5": [{"class": n, "score": s} for n, s in ranked]}}
    write_json(os.path.join(output_dir, "results.json"), results)
    print(summary(results))
    return results


def summary(results: Dict) -> str:
    """The demo's printed report."""
    p, d = results["protocol"], results["demo"]
    pred = d["prediction"]
    lines = [
        f"CAKES ResNet-{results['model']['depth']} on the synthetic benchmark ({results['num_classes']} classes, "
        f"chance {d['chance_top1']:.0f}%)",
        f"  top-1 {results['top1']:.1f}%  top-5 {results['top5']:.1f}%  mean class acc "
        f"{results['mean_class_acc']:.1f}%  on {results['num_videos']} test videos ({results['num_failed']} failed)",
        f"  params {results['params'] / 1e6:.2f} M, {results['gflops_per_view']:.3f} GFLOPs per view",
        f"  protocol: {p['num_ensemble_views']} clip(s) x {p['num_spatial_crops']} crop(s) of {p['num_frames']}x"
        f"{p['crop_size']}x{p['crop_size']} ({p['temporal_protocol']}), aggregation {p['aggregation']}",
        f"  {pred['video']} (true: {pred['label']}): "
        + ", ".join(f"{t['class']} {t['score']:.2f}" for t in pred["top5"][:3]),
        f"  results: {d['results_path']}, {d['seconds']:.0f} s in all",
    ]
    return "\n".join(lines)
