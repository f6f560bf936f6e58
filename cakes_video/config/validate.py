"""Semantic validation of a merged config, run before any work starts.

fvcore already rejects unknown keys and values of the wrong type while merging; this
checks what only the project knows (op codes, channel counts, divisibility). Each group
module (``defaults.GROUPS``) defines ``validate(cfg)``; every error names the offending key.
"""
from fvcore.common.config import CfgNode


class ConfigError(ValueError):
    """A config that cannot run. The message names the file or key at fault."""


def check_choice(cfg: CfgNode, key: str, choices) -> None:
    """Raises ConfigError unless ``cfg.<key>`` is one of ``choices``."""
    value = _get(cfg, key)
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {sorted(choices)}")


def check(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _get(cfg: CfgNode, key: str):
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node


def validate_cfg(cfg: CfgNode) -> CfgNode:
    """Runs every group's ``validate``; returns ``cfg`` unchanged or raises ConfigError."""
    from .defaults import GROUPS  # the group modules import this one: a top-level import would cycle

    for group in GROUPS:
        group.validate(cfg)
    return cfg
