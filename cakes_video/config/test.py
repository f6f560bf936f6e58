"""TEST group: multi-view testing protocol, aggregation, reports."""
from fvcore.common.config import CfgNode

from .validate import check


def add_config(cfg: CfgNode) -> None:
    cfg.TEST = CfgNode()
    cfg.TEST.ENABLE = True
    cfg.TEST.BATCH_SIZE = 8  # videos per batch, global over all processes
    cfg.TEST.NUM_ENSEMBLE_VIEWS = 10  # temporal clips per video
    cfg.TEST.NUM_SPATIAL_CROPS = 3  # spatial crops per clip: 1 (centre) or 3 (datasets.transforms.CROP_POSITIONS)
    # How view scores become one video score (utils.metrics.AGGREGATIONS): "mean_softmax",
    # "sum_softmax", "mean_logits", "max" (max over views of the softmax).
    cfg.TEST.AGGREGATION = "mean_softmax"
    # Weights to test. Empty: OUTPUT_DIR/checkpoints/best.pyth, else the newest epoch checkpoint;
    # with none of these testing refuses to run (never random weights).
    cfg.TEST.CHECKPOINT_FILE = ""
    cfg.TEST.TOPK = 5  # class predictions written per video in predictions.csv
    cfg.TEST.CONFUSION_PNG = True  # also draw the confusion matrix as a PNG heatmap
    # Test and predict with the inference form (models/inference.py): every BatchNorm folded into its
    # conv, channels-last-3d. Same scores up to float rounding; faster on the CPU. CAKES layers
    # keep the convs of MODEL.CAKES.IMPL ("efficient" fills oneDNN's channel blocks).
    cfg.TEST.DEPLOY = False
    cfg.TEST.FUSE = False  # with DEPLOY: each conv also fuses its ReLU / residual add (one oneDNN call on the CPU)
    cfg.TEST.PROGRESS_BAR = True  # a tqdm bar over the test batches on rank 0


def check_ranges(cfg: CfgNode) -> None:
    """Ranges; TEST.AGGREGATION is checked against utils.metrics.AGGREGATIONS by the loader."""
    t = cfg.TEST
    check(t.BATCH_SIZE >= 1, "TEST.BATCH_SIZE", "must be >= 1")
    check(t.NUM_ENSEMBLE_VIEWS >= 1, "TEST.NUM_ENSEMBLE_VIEWS", "must be >= 1")
    check(t.TOPK >= 1, "TEST.TOPK", "must be >= 1")
    check(t.DEPLOY or not t.FUSE, "TEST.FUSE", "fuses the convs of the deployed model: set TEST.DEPLOY True too")
