"""DATA and DATA_LOADER groups: where videos are, how they are decoded, sampled and transformed."""
from fvcore.common.config import CfgNode

from .validate import check


def add_config(cfg: CfgNode) -> None:
    cfg.DATA = CfgNode()
    # Key in DATASET_REGISTRY: "video_list" (path label), "frame_list" (folder num_frames label),
    # "folder_per_class" (split folder/class/video), "ssv2_json" (Something-Something V2 JSON).
    cfg.DATA.DATASET = "video_list"
    cfg.DATA.ROOT = ""  # prefix joined to every path in a list
    # Per split: the list file (video_list, frame_list), the split JSON (ssv2_json) or the
    # split folder (folder_per_class); relative paths of folders are joined to DATA.ROOT.
    cfg.DATA.TRAIN_LIST = ""
    cfg.DATA.VAL_LIST = ""
    cfg.DATA.TEST_LIST = ""
    # File with one class name per line in label order, or a JSON {name: index} (the SSv2
    # labels file; required for ssv2_json). Empty: names are derived (labels or folder names).
    cfg.DATA.CLASS_NAMES = ""
    # Between fields of a list line (" ": any run of spaces / tabs); split from the right.
    cfg.DATA.SEPARATOR = " "
    cfg.DATA.SSV2_SUFFIX = ".webm"  # ssv2_json: appended to each id ("" for frame folders)
    # folder_per_class: file name endings that count as videos (case-insensitive)
    cfg.DATA.VIDEO_EXTENSIONS = [".mp4", ".avi", ".mkv", ".webm", ".mov"]
    cfg.DATA.DECODER = "pyav"  # "pyav", "decord", or "frames" (JPEG folders)
    cfg.DATA.FRAME_TEMPLATE = "{:05d}.jpg"
    cfg.DATA.FRAME_START_INDEX = 1
    cfg.DATA.FRAME_FPS = 30.0  # "frames": the rate folders were extracted at (SSv1: 12)
    cfg.DATA.SAMPLING = "dense"  # "dense" (clip of NUM_FRAMES x SAMPLING_RATE) or "tsn"
    cfg.DATA.NUM_FRAMES = 8  # frames per clip (the number of segments for "tsn")
    cfg.DATA.SAMPLING_RATE = 8
    cfg.DATA.TARGET_FPS = 30.0  # dense sampling runs on this frame rate; <= 0: the video's own
    # Temporal test views: "pyslowfast", "mmaction2", "tsn" or "dense" (sampling.PROTOCOLS);
    # the number of views is TEST.NUM_ENSEMBLE_VIEWS x TEST.NUM_SPATIAL_CROPS.
    cfg.DATA.TEST_PROTOCOL = "pyslowfast"
    cfg.DATA.TRAIN_JITTER_SCALES = [256, 320]
    cfg.DATA.TRAIN_CROP_SIZE = 224
    cfg.DATA.TEST_SCALE = 256
    cfg.DATA.TEST_CROP_SIZE = 224
    cfg.DATA.MEAN = [0.485, 0.456, 0.406]
    cfg.DATA.STD = [0.229, 0.224, 0.225]
    cfg.DATA.RANDOM_FLIP = True
    # JSON {label: label} of classes a horizontal flip swaps (left <-> right); "" for none.
    cfg.DATA.FLIP_LABEL_MAP = ""
    cfg.DATA.MULTISCALE_CROP = False  # training crop: TSN multi-scale crop instead of random crop
    # Training: a video that fails to decode is replaced by up to this many other random
    # videos before the item raises (val/test never retry: the video is reported and dropped).
    cfg.DATA.MAX_RETRIES = 10
    # The training loop raises when more than this fraction of an epoch's videos fail.
    cfg.DATA.MAX_FAILED_FRACTION = 0.01
    # Keep every decoded video (all frames, uint8) in memory so later epochs skip decoding.
    # Only for small datasets: each worker process holds its own copy.
    cfg.DATA.CACHE_DECODED = False

    cfg.DATA_LOADER = CfgNode()
    cfg.DATA_LOADER.NUM_WORKERS = 2
    cfg.DATA_LOADER.PIN_MEMORY = True  # used only when the model runs on CUDA


def check_ranges(cfg: CfgNode) -> None:
    """Ranges and sizes; the dataset format, decoder, sampling and protocol names are checked by
    the datasets package (``cakes_video.datasets.config_checks``), which owns them."""
    check(cfg.DATA.SEPARATOR != "", "DATA.SEPARATOR", "must not be empty")
    for key in ("NUM_FRAMES", "SAMPLING_RATE", "TRAIN_CROP_SIZE", "TEST_SCALE", "TEST_CROP_SIZE"):
        check(cfg.DATA[key] > 0, f"DATA.{key}", f"must be positive, got {cfg.DATA[key]}")
    scales = cfg.DATA.TRAIN_JITTER_SCALES
    check(len(scales) == 2 and 0 < scales[0] <= scales[1], "DATA.TRAIN_JITTER_SCALES",
          f"needs [min, max] with 0 < min <= max, got {list(scales)}")
    check(cfg.DATA.TRAIN_CROP_SIZE <= scales[0], "DATA.TRAIN_CROP_SIZE",
          f"{cfg.DATA.TRAIN_CROP_SIZE} is larger than the smallest jitter scale {scales[0]}")
    check(cfg.DATA.TEST_CROP_SIZE <= cfg.DATA.TEST_SCALE, "DATA.TEST_CROP_SIZE",
          f"{cfg.DATA.TEST_CROP_SIZE} is larger than DATA.TEST_SCALE {cfg.DATA.TEST_SCALE}")
    check(len(cfg.DATA.MEAN) == 3, "DATA.MEAN", "needs 3 entries (RGB)")
    check(len(cfg.DATA.STD) == 3 and min(cfg.DATA.STD) > 0, "DATA.STD", "needs 3 positive entries (RGB)")
    check(cfg.DATA.FRAME_FPS > 0, "DATA.FRAME_FPS", "must be positive")
    check(cfg.DATA.MAX_RETRIES >= 0, "DATA.MAX_RETRIES", "must be >= 0")
    check(0.0 <= cfg.DATA.MAX_FAILED_FRACTION <= 1.0, "DATA.MAX_FAILED_FRACTION", "must be in [0, 1]")
    check(cfg.DATA_LOADER.NUM_WORKERS >= 0, "DATA_LOADER.NUM_WORKERS", "must be >= 0")
