"""The MODEL choices this package owns, checked against the code that implements them: the
architecture registry, then per architecture (:data:`ARCH_CHECKS`) its depths, stems, op codes,
heads, CAKES implementations and channel configs."""
from ..config import ConfigError, check, check_choice
from .cakes import CAKES_IMPLS
from .heads import HEADS
from .registry import MODEL_REGISTRY
from .resnet3d import BLOCKS_PER_STAGE, MIXED_OPS, STEMS, cakes_layer_widths
from .subkernels import kernel_shape, resolve_channel_config
from .temporal_ops import P3D_VARIANTS, TEMPORAL_OPS


def check_model_config(cfg) -> None:
    """ConfigError naming the key for an architecture that is not registered, then the checks of
    that architecture (:data:`ARCH_CHECKS`)."""
    arch = cfg.MODEL.ARCH
    registered = sorted(name for name, _ in MODEL_REGISTRY)
    check(arch in MODEL_REGISTRY, "MODEL.ARCH", f"unknown model {arch!r}; registered: {registered}")
    if arch in ARCH_CHECKS:
        ARCH_CHECKS[arch](cfg)


def check_resnet3d_config(cfg) -> None:
    """The choices :func:`~.resnet3d.resnet3d` reads: depth, stem, op codes, head, CAKES layer and
    channel config (one that does not fit the network is named)."""
    m = cfg.MODEL
    check_choice(cfg, "MODEL.DEPTH", BLOCKS_PER_STAGE)
    check_choice(cfg, "MODEL.STEM", STEMS)
    check_choice(cfg, "MODEL.TEMPORAL_OP", list(TEMPORAL_OPS) + list(MIXED_OPS))
    check_choice(cfg, "MODEL.HEAD", HEADS)
    check_choice(cfg, "MODEL.CAKES.IMPL", CAKES_IMPLS)
    for op in m.STAGE_TEMPORAL_OPS:
        check(op in TEMPORAL_OPS, "MODEL.STAGE_TEMPORAL_OPS",
              f"unknown op code {op!r}; expected one of {list(TEMPORAL_OPS)}")
    check(all(v in P3D_VARIANTS for v in m.P3D_VARIANTS), "MODEL.P3D_VARIANTS",
          f"needs a non-empty list of {sorted(P3D_VARIANTS)}, got {list(m.P3D_VARIANTS)}")
    if "cakes" in (list(m.STAGE_TEMPORAL_OPS) or [m.TEMPORAL_OP]):
        _check_channel_config(cfg)


def _check_channel_config(cfg) -> None:
    for name in cfg.MODEL.CAKES.SUBKERNELS:
        try:
            kernel_shape(name)
        except ValueError as e:
            raise ConfigError(f"MODEL.CAKES.SUBKERNELS: {e}") from e
    try:
        resolve_channel_config(cfg.MODEL.CAKES.CONV_CONFIG, cakes_layer_widths(cfg.MODEL.DEPTH, cfg.MODEL.BASE_WIDTH),
                               cfg.MODEL.CAKES.SUBKERNELS)
    except ValueError as e:
        raise ConfigError(f"MODEL.CAKES.CONV_CONFIG: {e}") from e


# MODEL.ARCH -> the checks of the keys that architecture reads; a new architecture adds its own.
ARCH_CHECKS = {"resnet3d": check_resnet3d_config}
