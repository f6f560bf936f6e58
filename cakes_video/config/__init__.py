"""Configuration: fvcore CfgNode defaults (one module per group), YAML merging, range checks,
and the configs that ship in the package. Imports nothing else from cakes_video.

Users call ``cakes_video.load_config(path_or_name, overrides)``: this package merges and
checks ranges, then every owner of a choice checks it (``cakes_video.config_loader``).
"""
from .defaults import check_ranges, get_cfg
from .files import CONFIG_DIR, config_names, find_config_file, get_config_file
from .loading import merge_config, merge_config_text, merge_overrides, resolve_config_path
from .validate import ConfigError, check, check_choice

__all__ = ["CONFIG_DIR", "ConfigError", "check", "check_choice", "check_ranges", "config_names",
           "find_config_file", "get_cfg", "get_config_file", "merge_config", "merge_config_text", "merge_overrides",
           "resolve_config_path"]
