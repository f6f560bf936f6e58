"""YAML merging with ``_BASE_`` inheritance and ``KEY VALUE`` command-line overrides.

Every tool takes ``--cfg FILE`` then any number of ``KEY VALUE`` pairs, applied in order after
the file (``cakes_video.engine.cli``); FILE is a path, or the name of a config that ships in
the package (:mod:`.files`).
:func:`merge_config` checks keys, types and ranges; the complete check, which also asks the
owners of every choice, is ``cakes_video.config_loader.load_config``.
"""
import logging
import os
from typing import Optional, Sequence, Tuple

import yaml
from fvcore.common.config import BASE_KEY, CfgNode

from .defaults import RENAMED_KEYS, check_ranges, get_cfg
from .files import find_config_file
from .validate import ConfigError

logger = logging.getLogger(__name__)
MOVED_ZOO_FOLDER = "model_zoo/configs/"  # where the packaged configs lived before they shipped in the package


def resolve_config_path(path: str) -> str:
    """``path`` when it is a file, else the packaged config of that name; ConfigError otherwise."""
    if os.path.isfile(path):
        return path
    packaged = find_config_file(path)
    if packaged is None:
        raise ConfigError(f"config file not found: {path} (nor a packaged config of that name){_moved_hint(path)}")
    return packaged


def _moved_hint(path: str) -> str:
    """For an old ``model_zoo/configs/NAME.yaml`` path, the name that finds that config now."""
    old = path.replace(os.sep, "/")
    name = old.split(MOVED_ZOO_FOLDER, 1)[1] if MOVED_ZOO_FOLDER in old else ""
    if not (name and find_config_file(name)):
        return ""
    return f"; the model zoo configs now ship in the package: use the name {name.removesuffix('.yaml')}"


def merge_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the YAML file at ``path`` (with its ``_BASE_`` chain), then overrides;
    ranges checked (:func:`.defaults.check_ranges`), not frozen.

    Raises:
        ConfigError: naming the file or key when anything does not fit; nothing has run yet.
    """
    cfg = get_cfg()
    if path:
        path = resolve_config_path(path)
        try:
            check_base_chain(path)
        except OSError as e:
            raise ConfigError(f"config file cannot be read: {path} ({e.strerror})") from e
        try:
            data = CfgNode.load_yaml_with_base(path)  # fvcore resolves the _BASE_ chain
            cfg.merge_from_other_cfg(CfgNode(_renamed_keys_updated(data, path)))
        except (KeyError, ValueError, TypeError, AssertionError) as e:
            raise ConfigError(f"{path}: {_reason(e)}") from e
    return check_ranges(merge_overrides(cfg, overrides))


def merge_overrides(cfg: CfgNode, overrides: Sequence[str]) -> CfgNode:
    """``KEY VALUE`` ``overrides`` merged into ``cfg`` (unfrozen first); ConfigError naming the key."""
    cfg.defrost()
    if len(overrides) % 2:
        raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd list: {list(overrides)}")
    try:
        cfg.merge_from_list(list(overrides))
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        raise ConfigError(f"command-line override: {_reason(e)}") from e
    return cfg


def merge_config_text(text: str, source: str) -> CfgNode:
    """Defaults, then a config dumped as YAML text (a checkpoint's ``"cfg"``, named ``source``):
    keys added to the defaults since keep their defaults, renamed keys are read under their new
    names. ConfigError naming ``source`` when it does not fit."""
    cfg = get_cfg()
    try:
        data = yaml.safe_load(text)
        cfg.merge_from_other_cfg(CfgNode(_renamed_keys_updated(data if isinstance(data, dict) else {}, source)))
    except (KeyError, ValueError, TypeError, AssertionError, yaml.YAMLError) as e:
        raise ConfigError(f"{source}: its stored config does not fit this version: {_reason(e)}") from e
    return cfg


def _renamed_keys_updated(data: dict, path: str) -> dict:
    """``data`` (a loaded YAML mapping) with each old key of :data:`RENAMED_KEYS` moved to its new
    name, with a warning; ConfigError when a file sets both."""
    for old, (new, _) in RENAMED_KEYS.items():
        *old_parents, old_leaf = old.split(".")
        parent = _node(data, old_parents)
        if parent is None or old_leaf not in parent:
            continue
        *new_parents, new_leaf = new.split(".")
        target = _node(data, new_parents, create=True)
        if new_leaf in target:
            raise ConfigError(f"{path}: sets both {old} and {new} (its new name); keep {new}")
        target[new_leaf] = parent.pop(old_leaf)
        logger.warning("%s: %s is now %s; read as %s %s (update the file)", path, old, new, new, target[new_leaf])
    return data


def _node(data: dict, keys, create: bool = False):
    """``data[k1][k2]...`` for ``keys``, or None when missing (created empty with ``create``)."""
    for key in keys:
        if key not in data and create:
            data[key] = {}
        data = data.get(key) if isinstance(data, dict) else None
        if data is None:
            return None
    return data


def check_base_chain(path: str, chain: Tuple[str, ...] = ()) -> None:
    """Reads ``path`` and every file its ``_BASE_`` names (a path or a list of them, relative to
    the file naming it, as fvcore resolves them) before fvcore does: fvcore fails on a cycle
    with a RecursionError, on a missing or unreadable base with a traceback, and obscurely on
    an empty file or a YAML list. ConfigError naming the file that names the faulty one."""
    data = _read_mapping(path)
    chain = (*chain, os.path.realpath(path))
    bases = data.get(BASE_KEY, [])
    for entry in bases if isinstance(bases, list) else [bases]:
        base = _base_path(path, str(entry))
        shown = " -> ".join(os.path.basename(p) for p in (*chain, base))
        if os.path.realpath(base) in chain:
            raise ConfigError(f"{path}: _BASE_ {entry} makes a cycle ({shown})")
        if not os.path.exists(base):
            raise ConfigError(f"{path}: _BASE_ {entry} not found ({base})")
        try:
            check_base_chain(base, chain)
        except OSError as e:
            raise ConfigError(f"{path}: _BASE_ {entry} cannot be read ({base}: {e.strerror})") from e


def _base_path(path: str, entry: str) -> str:
    """Where fvcore looks for the base ``entry`` that the file ``path`` names."""
    entry = os.path.expanduser(entry)
    if entry.startswith(("/", "https://", "http://")):
        return entry
    return os.path.join(os.path.dirname(path), entry)


def _read_mapping(path: str) -> dict:
    """The YAML mapping in ``path`` (OSError when it cannot be read)."""
    with open(path) as f:
        try:
            data = yaml.safe_load(f)
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f"{path}:{mark.line + 1}" if mark else path
            raise ConfigError(f"{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of KEY: value, got {type(data).__name__}")
    return data


def _reason(e: Exception) -> str:
    return e.args[0] if e.args and isinstance(e.args[0], str) else repr(e)
