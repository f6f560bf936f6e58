"""Converters from published weights to this project's models: pure state-dict mappings.

- torchvision video models (``r3d_18``, ``mc3_18``, ``r2plus1d_18``): key renames.
- the official CAKES release (github.com/yucornetto/CAKES): prefix strip and key renames.
- ImageNet 2D torchvision ResNets: inflation into any 2D/3D/CAKES variant of the same depth.

Each ``*_config`` function returns the complete, validated config of the converted model;
``convert_*`` write ``OUT_DIR/config.yaml`` and ``OUT_DIR/model.pyth`` and check that the
weights fit the model before writing anything.
"""
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from ..config import ConfigError
from ..config_loader import load_config
from ..models import build_model
from .schema import CheckpointError, load_model_state, save_checkpoint

State = Dict[str, torch.Tensor]
Rules = Sequence[Tuple[str, str]]

# torchvision's video ResNet-18s: stem, per-block conv1/conv2 Sequentials, fc.
_CONV_BN_RULES = [
    (r"^stem\.0\.", "stem.conv."), (r"^stem\.1\.", "stem.bn."),
    (r"^(layer\d\.\d+\.conv[12])\.0\.", r"\1.conv."), (r"^(layer\d\.\d+\.conv[12])\.1\.", r"\1.bn."),
]
_R2PLUS1D_RULES = [
    (r"^stem\.0\.", "stem.conv_s."), (r"^stem\.1\.", "stem.bn_s."),
    (r"^stem\.3\.", "stem.conv_t."), (r"^stem\.4\.", "stem.bn."),
    (r"^(layer\d\.\d+\.conv[12])\.0\.0\.", r"\1.conv_s."), (r"^(layer\d\.\d+\.conv[12])\.0\.1\.", r"\1.bn_s."),
    (r"^(layer\d\.\d+\.conv[12])\.0\.3\.", r"\1.conv_t."), (r"^(layer\d\.\d+\.conv[12])\.1\.", r"\1.bn."),
]
_SHARED_RULES = [(r"^(layer\d\.\d+\.downsample\.[01]\.)", r"\1"), (r"^fc\.", "head.fc.")]
TORCHVISION_RULES = {
    "r3d_18": _CONV_BN_RULES + _SHARED_RULES,
    "mc3_18": _CONV_BN_RULES + _SHARED_RULES,
    "r2plus1d_18": _R2PLUS1D_RULES + _SHARED_RULES,
}
# The official CAKES release: ResNet-50 bottlenecks whose middle conv is "convT"; trained and
# tested on Something-Something V1 (JPEG frame folders) with TSN sampling.
OFFICIAL_PREFIXES = (("module.base_model.", ""), ("module.new_fc.", "head.fc."))
OFFICIAL_RULES = [
    (r"^conv1\.", "stem.conv."), (r"^bn1\.", "stem.bn."),
    (r"^(layer\d\.\d+)\.convT\.convs\.(\d+)\.0\.", r"\1.conv2.convs.\2."),
    (r"^(layer\d\.\d+)\.convT\.out\.0\.", r"\1.conv2.bn."),
    (r"^(layer\d\.\d+\.(?:conv1|bn1|conv3|bn3|downsample\.[01])\.)", r"\1"),
    (r"^(head\.fc\.)", r"\1"),
]
# The packaged config of the released network, CAKES^P_{1,2,3D} (ResNet-50, Something-Something V1
# frame folders, TSN sampling); another channel config swaps only MODEL.CAKES.CONV_CONFIG.
OFFICIAL_CONFIG = "cakes123d_p_r50_ssv1"


def rename_keys(state: State, rules: Rules, source: str) -> State:
    """Renames every key by the first rule (regex, replacement) that matches; no match is an error."""
    out, unknown = {}, []
    for key, value in state.items():
        for pattern, repl in rules:
            if re.match(pattern, key):
                out[re.sub(pattern, repl, key, count=1)] = value
                break
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"{source}: {len(unknown)} keys of no known layer: " + ", ".join(unknown[:20]))
    return out


def torchvision_to_project(state: State, arch: str) -> State:
    """A torchvision ``r3d_18`` / ``mc3_18`` / ``r2plus1d_18`` state dict in our key names."""
    if arch not in TORCHVISION_RULES:
        raise ValueError(f"unknown torchvision arch {arch!r}; expected one of {sorted(TORCHVISION_RULES)}")
    return rename_keys(state, TORCHVISION_RULES[arch], f"torchvision {arch}")


def official_cakes_to_project(state: State) -> State:
    """An official CAKES ``state_dict`` (``module.base_model.*``, ``module.new_fc.*``) in our key names."""
    stripped, foreign = {}, []
    for key, value in state.items():
        prefix = next((p for p in OFFICIAL_PREFIXES if key.startswith(p[0])), None)
        if prefix is None:
            foreign.append(key)
        else:
            stripped[prefix[1] + key[len(prefix[0]):]] = value
    if foreign:
        raise CheckpointError(f"official CAKES checkpoint: keys without the module.base_model. / module.new_fc. "
                              f"prefix: {', '.join(foreign[:20])}")
    return rename_keys(stripped, OFFICIAL_RULES, "official CAKES checkpoint")


def torchvision_config(arch: str):
    """The validated config of our model equal to torchvision's ``arch``: the packaged config of
    that name (400 classes, clip head, torchvision's input and normalisation)."""
    if arch not in TORCHVISION_RULES:
        raise ValueError(f"unknown torchvision arch {arch!r}; expected one of {sorted(TORCHVISION_RULES)}")
    return load_config(arch)


def official_cakes_config(conv_config: str, num_classes: int = 174, frames: int = 8):
    """The validated config of the official CAKES ResNet-50 with channel config ``conv_config``:
    the packaged config of the released network with these three settings."""
    return load_config(OFFICIAL_CONFIG, ["MODEL.CAKES.CONV_CONFIG", conv_config, "MODEL.NUM_CLASSES", num_classes,
                                         "DATA.NUM_FRAMES", frames])


def read_published(path: str, trust_pickle: bool = False) -> dict:
    """Loads a published ``.pth`` onto the CPU (``weights_only`` unless ``trust_pickle``)."""
    try:
        return torch.load(path, map_location="cpu", weights_only=not trust_pickle)
    except FileNotFoundError as e:
        raise CheckpointError(f"checkpoint not found: {path}") from e
    except Exception as e:
        hint = "" if trust_pickle else " (if you trust the file, retry with --trust-pickle)"
        raise CheckpointError(f"cannot read {path}: {e}{hint}") from e


def official_state_dict(ckpt: dict, source: str) -> State:
    """The ``state_dict`` of an official CAKES checkpoint dict (``epoch``, ``arch``, ``state_dict``, ...)."""
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("state_dict"), dict):
        raise CheckpointError(f"{source} is not an official CAKES checkpoint (a dict with 'state_dict')")
    return ckpt["state_dict"]


def write_converted(out_dir: str, cfg, state: State, source: str, allow_missing=None,
                    model: Optional[nn.Module] = None) -> Tuple[str, str]:
    """Checks ``state`` fits ``cfg``'s model, then writes ``config.yaml`` and ``model.pyth``; returns both paths.

    ``allow_missing``: key prefixes the checkpoint leaves out on purpose (the head of inflated weights).
    ``model``: ``cfg``'s model when the caller has built it already (it gets ``state`` loaded);
    else it is built here.
    """
    if model is None:
        model = build_model(cfg)
    load_model_state(model, state, source=source, allow_missing=allow_missing)
    os.makedirs(out_dir, exist_ok=True)
    cfg_path, ckpt_path = os.path.join(out_dir, "config.yaml"), os.path.join(out_dir, "model.pyth")
    with open(cfg_path, "w") as f:
        f.write(cfg.dump())
    save_checkpoint(ckpt_path, state, cfg=cfg.dump())
    return cfg_path, ckpt_path


def convert_torchvision(in_path: str, out_dir: str, arch: str, trust_pickle: bool = False) -> Tuple[str, str]:
    """Converts a published torchvision video-model state dict file; returns (config, checkpoint) paths."""
    state = torchvision_to_project(read_published(in_path, trust_pickle), arch)
    return write_converted(out_dir, torchvision_config(arch), state, in_path)


def convert_official_cakes(in_path: str, out_dir: str, conv_config: str, num_classes: int = 174,
                           frames: int = 8, trust_pickle: bool = False) -> Tuple[str, str]:
    """Converts an official CAKES checkpoint file; returns (config, checkpoint) paths."""
    state = official_cakes_to_project(official_state_dict(read_published(in_path, trust_pickle), in_path))
    return write_converted(out_dir, official_cakes_config(conv_config, num_classes, frames), state, in_path)


# Our key -> the 2D torchvision ResNet key it is inflated from (first match wins).
INFLATION_RULES = [
    (r"^stem\.conv\.", "conv1."), (r"^stem\.bn\.", "bn1."),
    (r"^(layer\d\.\d+)\.(conv[12])\.(?:conv|conv_s|conv_t|convs\.\d+)\.", r"\1.\2."),
    (r"^(layer\d\.\d+)\.conv([12])\.(?:bn|bn_s)\.", r"\1.bn\2."),
    (r"^(layer\d\.\d+\.(?:conv[13]|bn[13]|downsample\.[01])\.)", r"\1"),
]
NOT_INFLATED = ("head.",)  # the classifier: its classes differ from ImageNet's


def inflate_tensor(w2d: torch.Tensor, shape: Sequence[int], out_offset: int = 0) -> torch.Tensor:
    """One 2D tensor inflated to ``shape`` by the official rules.

    Conv ``[O, I, kh, kw]`` -> ``[O', I', kt, kh', kw']``: a kernel of the same spatial size gets a time
    axis of ``kt`` copies divided by ``kt`` (kt = 1: unchanged); a 1x1 spatial target (kx1x1) takes
    the 2D kernel summed over H and W, likewise repeated. Output channels are sliced from
    ``out_offset`` (the group of a CAKES sub-kernel), input channels from 0 (a narrower input).
    1-D tensors (BN) are sliced the same way; scalars are copied.
    """
    if w2d.dim() == 4:
        kt, kh, kw = shape[2:]
        if (kh, kw) == (1, 1) and w2d.shape[2:] != (1, 1):
            w2d = w2d.sum(dim=(2, 3), keepdim=True)
        if tuple(w2d.shape[2:]) == (kh, kw):
            w2d = w2d.unsqueeze(2).repeat(1, 1, kt, 1, 1) / kt
        w2d = w2d[out_offset:out_offset + shape[0], :shape[1]]
    elif w2d.dim() == 1:
        w2d = w2d[out_offset:out_offset + shape[0]]
    if tuple(w2d.shape) != tuple(shape):
        raise ValueError(f"cannot inflate a 2D tensor into shape {tuple(shape)}")
    return w2d.clone()


def _group_offset(model: nn.Module, key: str) -> int:
    """Output-channel offset of CAKES sub-kernel group ``convs.i`` in its layer (0 for other keys)."""
    match = re.search(r"^(.*)\.convs\.(\d+)\.", key)
    if not match:
        return 0
    return model.get_submodule(match.group(1)).group_offsets[int(match.group(2))]


def inflate_2d_state(state2d: State, model: nn.Module) -> Tuple[State, List[str]]:
    """Inflates a torchvision ImageNet ResNet state dict into ``model``'s keys.

    Returns ``(state, not_inflated)``: ``not_inflated`` lists the model keys deliberately left out
    (the head, ``head.fc.*``). Raises CheckpointError naming every key that has no 2D source or
    whose shape cannot be inflated (e.g. R(2+1)D midplanes), and every 2D key left unused (a depth
    mismatch), so weights never load partially.
    """
    own = model.state_dict()
    state, not_inflated, errors, used = {}, [], [], {"fc.weight", "fc.bias"}
    for key, target in own.items():
        if key.startswith(NOT_INFLATED):
            not_inflated.append(key)
            continue
        rule = next(((p, r) for p, r in INFLATION_RULES if re.match(p, key)), None)
        source = re.sub(rule[0], rule[1], key, count=1) if rule else None
        if source not in state2d:
            errors.append(f"{key}: no 2D source" + (f" ({source})" if source else ""))
            continue
        used.add(source)
        try:
            state[key] = inflate_tensor(state2d[source], target.shape, _group_offset(model, key))
        except ValueError as e:
            errors.append(f"{key} from {source} {tuple(state2d[source].shape)}: {e}")
    errors += [f"2D key {k} fits no layer (another depth?)" for k in state2d if k not in used]
    if errors:
        raise CheckpointError(f"cannot inflate into {type(model).__name__} ({len(errors)} keys): "
                              + "; ".join(errors[:10]) + (" ..." if len(errors) > 10 else ""))
    return state, not_inflated


def convert_imagenet_2d(in_path: str, out_dir: str, cfg, trust_pickle: bool = False) -> Tuple[str, str]:
    """Inflates a torchvision 2D ResNet state dict file into the model of ``cfg`` (a config, or a
    config file or packaged name); the checkpoint has no ``head.*``."""
    cfg = load_config(cfg) if isinstance(cfg, str) else cfg
    model = build_model(cfg)
    state, _ = inflate_2d_state(read_published(in_path, trust_pickle), model)
    return write_converted(out_dir, cfg, state, in_path, allow_missing=list(NOT_INFLATED), model=model)


# The published formats (tools/convert_checkpoint.py --source) -> converter.
CONVERTERS = {"torchvision": convert_torchvision, "official-cakes": convert_official_cakes,
              "imagenet-2d": convert_imagenet_2d}
# Each converter's options after (in_path, out_dir); the first is required.
CONVERTER_OPTIONS = {"torchvision": ("arch",), "official-cakes": ("conv_config", "num_classes", "frames"),
                     "imagenet-2d": ("cfg",)}


def convert_published(source: str, in_path: str, out_dir: str, trust_pickle: bool = False,
                      **options) -> Tuple[str, str]:
    """Converts ``in_path`` in the published format ``source`` (a key of :data:`CONVERTERS`, with
    its :data:`CONVERTER_OPTIONS`); returns (config, checkpoint) paths.

    Raises CheckpointError naming the file for weights or names that fit no model, ConfigError
    for a config that cannot run.
    """
    if source not in CONVERTERS:
        raise ValueError(f"unknown source {source!r}; expected one of {sorted(CONVERTERS)}")
    try:
        return CONVERTERS[source](in_path, out_dir, trust_pickle=trust_pickle, **options)
    except ConfigError:  # a ValueError too, and already an expected error
        raise
    except ValueError as e:  # weights or names that fit no model: an expected error, not a bug
        raise CheckpointError(f"cannot convert {in_path}: {e}") from e
