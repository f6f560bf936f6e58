"""The DATA choices this package owns, checked against the code that implements them."""
from ..config import check, check_choice
from .decoding import DECODERS
from .registry import DATASET_REGISTRY
from .sampling import PROTOCOLS
from .transforms import CROP_POSITIONS
from .video_dataset import CLIP_SAMPLERS


def check_data_config(cfg) -> None:
    """ConfigError naming the key for a dataset format, decoder, sampling, test protocol or
    number of test crops that does not exist, or a combination that cannot run."""
    data = cfg.DATA
    registered = sorted(name for name, _ in DATASET_REGISTRY)
    check(data.DATASET in DATASET_REGISTRY, "DATA.DATASET",
          f"unknown dataset format {data.DATASET!r}; registered: {registered}")
    check_choice(cfg, "DATA.DECODER", DECODERS)
    check_choice(cfg, "DATA.SAMPLING", CLIP_SAMPLERS)
    check_choice(cfg, "DATA.TEST_PROTOCOL", PROTOCOLS)
    check_choice(cfg, "TEST.NUM_SPATIAL_CROPS", CROP_POSITIONS)
    check(data.DATASET != "frame_list" or data.DECODER == "frames", "DATA.DECODER",
          f"DATA.DATASET 'frame_list' lists frame folders: needs 'frames', got {data.DECODER!r}")
    check((data.SAMPLING == "tsn") == (data.TEST_PROTOCOL == "tsn"), "DATA.TEST_PROTOCOL",
          f"{data.TEST_PROTOCOL!r} does not test what DATA.SAMPLING {data.SAMPLING!r} trains: "
          "TSN segments go with the 'tsn' protocol, dense clips with the others")
