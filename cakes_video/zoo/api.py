"""The zoo's Python API: ``list_models()``, ``get_weights(name)``, ``get_model(name)``.

Weights are fetched through :mod:`.download` (verified cache, offline mode, mirrors) or read
from the package, converted into this project's model when published in another format,
and loaded strictly: a file whose layout, config or class count does not fit the entry
fails naming both.
"""
import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence

import torch
from fvcore.common.config import CfgNode
from torch import nn

from ..checkpoint.convert import official_cakes_to_project, official_state_dict, read_published, torchvision_to_project
from ..checkpoint.schema import MODEL_CFG_FIELD, CheckpointError, load_checkpoint, load_model_state, save_checkpoint
from ..config import ConfigError, get_cfg, get_config_file
from ..config_loader import load_config
from ..datasets.catalog import read_class_names
from ..datasets.transforms import crop_views
from ..models import build_model
from .download import DownloadError, cache_dir, fetch, mirror, sha256_of, verify
from .manifest import ZooEntry, load_manifest

# MODEL keys that choose how a network runs, not what it is: a checkpoint fits whatever they are.
RUNTIME_MODEL_KEYS = ("CAKES.IMPL", "DROPOUT")


@functools.lru_cache(maxsize=1)
def _manifest() -> Dict[str, ZooEntry]:
    return load_manifest()


def list_models() -> List[str]:
    """Every zoo name, in the manifest's order."""
    return list(_manifest())


def entry(name: str) -> ZooEntry:
    """The manifest entry ``name``; KeyError listing the zoo's names otherwise."""
    if name not in _manifest():
        raise KeyError(f"no zoo model {name!r}; the zoo has: {list_models()}")
    return _manifest()[name]


@dataclass(frozen=True)
class ZooWeights:
    """A zoo model's weights and what goes with them: metadata, config, class names, the
    test-time preprocessing."""

    entry: ZooEntry

    @property
    def meta(self) -> Dict:
        """The manifest entry as a dict (dataset, input, protocol, accuracy, cost, source, licence),
        with ``categories``: the class names, as torchvision's weights give them."""
        return {**dataclasses.asdict(self.entry), "categories": self.class_names()}

    def config(self, overrides: Sequence = ()) -> CfgNode:
        """The model's config with the entry's class names, testing with the entry's protocol,
        then ``overrides``."""
        e = self.entry
        own = ["DATA.CLASS_NAMES", get_config_file(e.classes), *e.config_overrides, *e.test_overrides]
        return load_config(e.config, [*own, *overrides])

    def class_names(self) -> List[str]:
        """Class names in label order."""
        return read_class_names(get_config_file(self.entry.classes))

    def transforms(self) -> Callable:
        """The test-time preprocessing of one clip: uint8 frames ``[T, H, W, 3]`` (as the decoders
        give them) -> float ``[crops, 3, T, crop, crop]``, a batch of the config's test crops
        (short side resized, cropped, normalised as the model was tested; unlike torchvision's,
        which takes ``[T, C, H, W]`` and returns one ``[C, T, crop, crop]``). Which frames make
        the clips is the config's test sampling (``DATA.*``)."""
        cfg = self.config()
        data = cfg.DATA
        return functools.partial(crop_views, scale=data.TEST_SCALE, crop_size=data.TEST_CROP_SIZE,
                                 num_crops=cfg.TEST.NUM_SPATIAL_CROPS, mean=tuple(data.MEAN), std=tuple(data.STD))


def get_weights(name: str) -> ZooWeights:
    """The weights of zoo model ``name`` (nothing is downloaded until they are loaded)."""
    return ZooWeights(entry(name))


def get_model(name: str, pretrained: bool = True, weights_path: Optional[str] = None) -> nn.Module:
    """Zoo model ``name`` in eval mode, with its trained weights unless ``pretrained=False``.

    ``weights_path``: a local copy of the published file (the only way for weights that must
    be downloaded by hand). Raises DownloadError (file unavailable), CheckpointError (a file
    that does not fit the entry, naming both).
    """
    weights = get_weights(name)
    model = build_model(weights.config())
    if pretrained:
        state, source = state_dict(weights, weights_path)
        load_model_state(model, state, source=source)
    return model.eval()


def state_dict(weights: ZooWeights, weights_path: Optional[str] = None):
    """``(state dict in this project's key names, the file it came from)``, checked against the entry."""
    e = weights.entry
    path = weights_path or _weights_file(e)
    state = WEIGHT_READERS[e.weights["format"]](e, path)
    _check_head(e, state, path, len(weights.class_names()))
    return state, path


def checkpoint_file(name: str, weights_path: Optional[str] = None) -> str:
    """A project checkpoint of zoo model ``name`` (what TEST.CHECKPOINT_FILE takes): the packaged
    file itself, or the published file (verified) converted once into
    ``<cache>/converted/<name>-<its sha256>.pyth`` and reused while that source is the same."""
    weights = get_weights(name)
    if weights.entry.packaged_weights and not weights_path:
        verify(weights.entry.packaged_weights, weights.entry.weights["sha256"])  # the loader reads it after
        return weights.entry.packaged_weights
    source = weights_path or _weights_file(weights.entry)
    converted = os.path.join(cache_dir(), "converted", f"{name}-{sha256_of(source)[:16]}.pyth")
    if not os.path.isfile(converted):  # written atomically, from a verified source
        state, _ = state_dict(weights, source)
        try:
            save_checkpoint(converted, state, cfg=weights.config().dump(), converted_from=source)
        except OSError as e:
            raise DownloadError(f"cannot write {converted}: {e}; set CAKES_VIDEO_CACHE to a writable folder") from e
    return converted


ZOO_PREFIX = "zoo:"  # TRAIN.CHECKPOINT_FILE / TEST.CHECKPOINT_FILE "zoo:NAME": that zoo model's weights


def resolve_checkpoint(spec: str, key: str) -> str:
    """The checkpoint file that config key ``key`` (e.g. TRAIN.CHECKPOINT_FILE) names with ``spec``:
    ``"zoo:NAME"`` is zoo model NAME's (:func:`checkpoint_file`: fetched, verified, converted
    once); anything else is a path. An unknown NAME is a ConfigError naming ``key``."""
    if not spec.startswith(ZOO_PREFIX):
        return spec
    name = spec[len(ZOO_PREFIX):]
    if name not in _manifest():
        raise ConfigError(f"{key}: no zoo model {name!r}; the zoo has: {list_models()}")
    return checkpoint_file(name)


def _weights_file(e: ZooEntry) -> str:
    w = e.weights
    if e.packaged_weights:
        return e.packaged_weights
    if w.get("manual_download"):
        cached = os.path.join(cache_dir(), w["file_name"])
        if not os.path.isfile(cached) and mirror():  # a mirror serves it; no digest: its layout is checked
            return fetch(w["url"], w["file_name"], w.get("sha256"))
        if not os.path.isfile(cached):
            raise DownloadError(f"zoo model {e.name!r}: {cached} not found. {w['manual_download']}")
        return cached
    return fetch(w["url"], w["file_name"], w["sha256"])


def _read_torchvision(e: ZooEntry, path: str) -> Dict[str, torch.Tensor]:
    return torchvision_to_project(read_published(path), e.weights["arch"])


def _read_official(e: ZooEntry, path: str) -> Dict[str, torch.Tensor]:
    return official_cakes_to_project(official_state_dict(read_published(path), path))


def _read_project(e: ZooEntry, path: str) -> Dict[str, torch.Tensor]:
    if e.weights.get("sha256") and path == e.packaged_weights:
        verify(path, e.weights["sha256"])
    ckpt = load_checkpoint(path)
    _check_config(e, ckpt, path)
    return ckpt["model"]


# weights.format -> reader(entry, local file) -> state dict in this project's key names.
WEIGHT_READERS = {"torchvision": _read_torchvision, "official-cakes": _read_official, "project": _read_project}


def _check_config(e: ZooEntry, ckpt: Dict, path: str) -> None:
    """CheckpointError, naming every differing key with both values, when the MODEL config the
    checkpoint was built with differs from the entry's (:data:`RUNTIME_MODEL_KEYS` aside); a file
    that records no config is checked by its layout alone."""
    recorded = ckpt.get(MODEL_CFG_FIELD) or (ckpt.get("cfg") and CfgNode.load_cfg(ckpt["cfg"]).MODEL.dump())
    if not recorded:
        return
    theirs, ours = _flat(CfgNode.load_cfg(recorded)), _flat(get_weights(e.name).config().MODEL)
    defaults = _flat(get_cfg().MODEL)  # a key newer than the file: the file was built with its default
    differ = [f"MODEL.{k}: {theirs.get(k, defaults[k])!r} in the file, {v!r} in the entry" for k, v in ours.items()
              if k not in RUNTIME_MODEL_KEYS and theirs.get(k, defaults[k]) != v]
    if differ:
        raise CheckpointError(f"{path} does not fit zoo model {e.name!r} (config {e.config}): " + "; ".join(differ))


def _flat(node: Dict, prefix: str = "") -> Dict:
    """``{"CAKES.IMPL": ..., "DEPTH": ...}`` of a (nested) config node; lists as lists."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = list(value) if isinstance(value, (list, tuple)) else value
    return flat


def _check_head(e: ZooEntry, state: Dict[str, torch.Tensor], path: str, num_classes: int) -> None:
    """CheckpointError when the classifier's classes differ from the entry's class names."""
    head = state.get("head.fc.weight")
    if head is not None and head.shape[0] != num_classes:
        raise CheckpointError(f"{path} has a head of {head.shape[0]} classes; zoo model {e.name!r} has "
                              f"{num_classes} ({e.classes})")


def prefetch(names: Sequence[str]) -> Dict[str, str]:
    """Fetches and verifies the weights of each zoo model (for a machine that goes offline later),
    loading each into its model (layout and classes checked); returns name -> the local file,
    ``"manual: ..."`` for weights that must be downloaded by hand and are not cached yet, or
    ``"error: ..."``."""
    found = {}
    for name in names:
        try:
            path = _weights_file(entry(name))
            get_model(name, weights_path=path)  # layout, classes and config checked by loading
            found[name] = path
        except DownloadError as e:
            manual = name in _manifest() and entry(name).weights.get("manual_download")
            found[name] = f"manual: {e}" if manual else f"error: {e}"
        except (CheckpointError, KeyError) as e:
            found[name] = f"error: {e}"
    return found
