"""YAML loading with ``_BASE_`` inheritance and ``KEY VALUE`` command-line overrides.

One convention for every tool: ``--cfg FILE`` then any number of ``KEY VALUE`` pairs,
applied in order after the file, e.g.::

    tools/train_net.py --cfg model_zoo/configs/r3d_18.yaml SOLVER.BASE_LR 0.05 TRAIN.BATCH_SIZE 16
"""
import argparse
import os
from typing import Optional, Sequence

import yaml
from fvcore.common.config import CfgNode

from .defaults import get_cfg
from .validate import ConfigError, validate_cfg


def load_config(path: Optional[str] = None, overrides: Sequence[str] = ()) -> CfgNode:
    """Defaults, then the YAML file at ``path`` (with its ``_BASE_`` chain), then overrides.

    Raises:
        ConfigError: naming the file or key when anything does not fit; nothing has run yet.
    """
    cfg = get_cfg()
    if path:
        if not os.path.isfile(path):
            raise ConfigError(f"config file not found: {path}")
        _check_mapping(path)
        try:
            cfg.merge_from_file(path)
        except (KeyError, ValueError, TypeError) as e:
            raise ConfigError(f"{path}: {_reason(e)}") from e
    if len(overrides) % 2:
        raise ConfigError(f"overrides must be KEY VALUE pairs, got an odd list: {list(overrides)}")
    try:
        cfg.merge_from_list(list(overrides))
    except (KeyError, ValueError, TypeError, AssertionError) as e:
        raise ConfigError(f"command-line override: {_reason(e)}") from e
    validate_cfg(cfg)
    cfg.freeze()
    return cfg


def _check_mapping(path: str) -> None:
    """fvcore fails obscurely on an empty file or a YAML list; say what is wrong instead."""
    try:
        with open(path) as f:
            data = yaml.safe_load(f)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config file must be a mapping of KEY: value, got {type(data).__name__}")


def _reason(e: Exception) -> str:
    return e.args[0] if e.args and isinstance(e.args[0], str) else repr(e)


def add_config_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the shared ``--cfg FILE`` and trailing ``KEY VALUE`` arguments to a tool's parser."""
    parser.add_argument("--cfg", dest="cfg_file", required=True, help="YAML config file")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[],
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.BASE_LR 0.1")
    return parser


def parse_args(description: str, argv: Optional[Sequence[str]] = None):
    """Parses ``--cfg FILE [KEY VALUE ...]``; returns ``(args, cfg)`` with cfg validated."""
    parser = add_config_args(argparse.ArgumentParser(description=description))
    args = parser.parse_args(argv)
    return args, load_config(args.cfg_file, args.opts)
