"""DATA and DATA_LOADER groups: where videos are, how they are decoded, sampled and transformed."""
from fvcore.common.config import CfgNode


def add_config(cfg: CfgNode) -> None:
    cfg.DATA = CfgNode()
    cfg.DATA.DATASET = "video_list"  # key in DATASET_REGISTRY
    cfg.DATA.ROOT = ""  # prefix joined to every path in a list
    cfg.DATA.TRAIN_LIST = ""
    cfg.DATA.VAL_LIST = ""
    cfg.DATA.TEST_LIST = ""
    cfg.DATA.CLASS_NAMES = ""  # file with one class name per line, in label order
    cfg.DATA.SEPARATOR = " "
    cfg.DATA.DECODER = "pyav"  # "pyav", "decord", or "frames" (JPEG folders)
    cfg.DATA.FRAME_TEMPLATE = "{:05d}.jpg"
    cfg.DATA.FRAME_START_INDEX = 1
    cfg.DATA.SAMPLING = "dense"  # "dense" (clip of NUM_FRAMES x SAMPLING_RATE) or "tsn"
    cfg.DATA.NUM_FRAMES = 8
    cfg.DATA.SAMPLING_RATE = 8
    cfg.DATA.TARGET_FPS = 30.0
    cfg.DATA.TRAIN_JITTER_SCALES = [256, 320]
    cfg.DATA.TRAIN_CROP_SIZE = 224
    cfg.DATA.TEST_SCALE = 256
    cfg.DATA.TEST_CROP_SIZE = 224
    cfg.DATA.MEAN = [0.485, 0.456, 0.406]
    cfg.DATA.STD = [0.229, 0.224, 0.225]
    cfg.DATA.RANDOM_FLIP = True

    cfg.DATA_LOADER = CfgNode()
    cfg.DATA_LOADER.NUM_WORKERS = 2
    cfg.DATA_LOADER.PIN_MEMORY = True
