"""Configuration: fvcore CfgNode defaults (one module per group), YAML loading, validation.

Users call :func:`get_cfg` for the defaults or :func:`load_config` for a YAML file
(``_BASE_`` inheritance) with ``KEY VALUE`` overrides; both return a validated node.
"""
from .defaults import get_cfg
from .loading import ConfigError, load_config, parse_args
from .validate import validate_cfg

__all__ = ["ConfigError", "get_cfg", "load_config", "parse_args", "validate_cfg"]
