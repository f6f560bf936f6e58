"""The error of a config that cannot run, and the small checks that raise it naming the key.

fvcore already rejects unknown keys and values of the wrong type while merging. The group
modules check ranges with these helpers; the owners of choices (registries, dicts of
builders) check theirs with them too (``cakes_video.config_loader``).
"""
from fvcore.common.config import CfgNode


class ConfigError(ValueError):
    """A config that cannot run. The message names the file or key at fault."""


def check_choice(cfg: CfgNode, key: str, choices) -> None:
    """Raises ConfigError unless ``cfg.<key>`` is one of ``choices``."""
    value = get_key(cfg, key)
    if value not in choices:
        raise ConfigError(f"{key}: {value!r} is not one of {sorted(choices)}")


def check(condition: bool, key: str, message: str) -> None:
    """Raises ``ConfigError("<key>: <message>")`` unless ``condition``."""
    if not condition:
        raise ConfigError(f"{key}: {message}")


def get_key(cfg: CfgNode, key: str):
    """``cfg.<key>`` for a dotted ``key`` such as ``"MODEL.CAKES.IMPL"``."""
    node = cfg
    for part in key.split("."):
        node = node[part]
    return node
