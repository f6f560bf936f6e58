"""A supernet from a config: MODEL.* as for resnet3d, the SEARCH group for the rest."""
from typing import List

from ..config import check, check_choice
from ..models import build_model
from ..models.resnet3d import ResNet3D
from ..models.subkernels import SUBKERNELS, in_vocabulary_order
from .init import INITS, SLICE_RULES, slice_sum
from .supernet import MODES, contiguous_selection, inherit_weights, make_supernet, supernet_from_3d


def check_supernet_config(cfg) -> None:
    """The supernet's choices (SEARCH.MODE, INIT, SLICE_RULE, CANDIDATES, the architecture);
    raises ConfigError naming the key."""
    check_choice(cfg, "SEARCH.MODE", MODES)
    check_choice(cfg, "SEARCH.INIT", INITS)
    check_choice(cfg, "SEARCH.SLICE_RULE", SLICE_RULES)
    unknown = [s for s in cfg.SEARCH.CANDIDATES if s not in SUBKERNELS]
    check(not unknown, "SEARCH.CANDIDATES", f"unknown sub-kernels {unknown}; expected some of {list(SUBKERNELS)}")
    check(cfg.MODEL.ARCH == "resnet3d", "MODEL.ARCH",
          f"the search builds supernets of 'resnet3d', got {cfg.MODEL.ARCH!r}")
    check(cfg.SEARCH.INIT == "scratch" or bool(cfg.SEARCH.INIT_CHECKPOINT), "SEARCH.INIT_CHECKPOINT",
          f"SEARCH.INIT {cfg.SEARCH.INIT!r} needs a weights file")
    check(not cfg.TRAIN.CHECKPOINT_FILE, "TRAIN.CHECKPOINT_FILE",
          "a supernet does not fine-tune from a network's checkpoint: start it from one with "
          "SEARCH.INIT checkpoint (or imagenet) and SEARCH.INIT_CHECKPOINT")


def candidates_of(cfg) -> List[str]:
    """SEARCH.CANDIDATES in vocabulary order (the candidate-major channel layout follows it)."""
    return in_vocabulary_order(cfg.SEARCH.CANDIDATES)


def plain_3d_network(cfg) -> ResNet3D:
    """``cfg``'s ResNet3D with a "3d" op in every block: what a supernet is made from, what ImageNet
    weights are inflated into and what a trained 3D checkpoint fits."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.TEMPORAL_OP, cfg.MODEL.STAGE_TEMPORAL_OPS = "3d", []
    return build_model(cfg)


def supernet_shape(cfg) -> ResNet3D:
    """The supernet of ``cfg`` with the network's own random init, whatever SEARCH.INIT says: what
    a trained supernet's weights are loaded into."""
    return make_supernet(plain_3d_network(cfg), candidates_of(cfg), MODES[cfg.SEARCH.MODE].channel_dropout)


def build_supernet(cfg) -> ResNet3D:
    """The supernet of ``cfg`` (checked first), initialised by SEARCH.INIT: scratch (the network's
    own random init), or the weights of SEARCH.INIT_CHECKPOINT sliced into the candidates
    (ImageNet inflation is sliced by "sum", which gives the official rules; a trained 3D model by
    SEARCH.SLICE_RULE)."""
    check_supernet_config(cfg)
    s = cfg.SEARCH
    plain, dropout, load = plain_3d_network(cfg), MODES[s.MODE].channel_dropout, INITS[s.INIT]
    if load is None:
        return supernet_shape(cfg)
    load(plain, s.INIT_CHECKPOINT)
    rule = slice_sum if s.INIT == "imagenet" else SLICE_RULES[s.SLICE_RULE]
    return supernet_from_3d(plain, candidates_of(cfg), dropout, rule, source=s.INIT_CHECKPOINT)


def shrunk_network(cfg, derived: ResNet3D) -> ResNet3D:
    """``derived`` (a CAKES network of ``cfg``'s ResNet3D) with the trained 3D model of
    SEARCH.INIT_CHECKPOINT sliced into it without a search: each output channel keeps the
    sub-kernel sliced (SEARCH.SLICE_RULE) from its own 3D kernel (:func:`contiguous_selection`).
    The supernet is sliced in performance mode whatever SEARCH.MODE says: there one candidate per
    channel computes unscaled, so its kept channels are the derived network exactly."""
    sliced = cfg.clone()
    sliced.defrost()
    sliced.SEARCH.MODE = "performance"
    return inherit_weights(build_supernet(sliced), derived, contiguous_selection(derived))
