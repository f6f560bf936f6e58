"""The configs that ship inside the package (``cakes_video/configs/``), found by name.

Names are paths relative to that folder, with or without ``.yaml``: ``"r3d_18"``,
``"demo/cakes_r10_synthetic.yaml"``, ``"channel_configs/cakes_18_block16"``.
"""
import os
from typing import List, Optional

CONFIG_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")


def find_config_file(name: str) -> Optional[str]:
    """The packaged file ``name`` refers to, or None."""
    for candidate in (name, name + ".yaml"):
        path = os.path.normpath(os.path.join(CONFIG_DIR, candidate))
        if path.startswith(CONFIG_DIR + os.sep) and os.path.isfile(path):
            return path
    return None


def get_config_file(name: str) -> str:
    """The path of the packaged config ``name``; ValueError listing the packaged names otherwise."""
    path = find_config_file(name)
    if path is None:
        raise ValueError(f"no packaged config {name!r}; packaged: {config_names()}")
    return path


def config_names() -> List[str]:
    """Every packaged YAML file, as a name for :func:`get_config_file` (without ``.yaml``)."""
    names = []
    for folder, _, files in os.walk(CONFIG_DIR):
        for f in files:
            if f.endswith(".yaml"):
                names.append(os.path.relpath(os.path.join(folder, f), CONFIG_DIR)[:-len(".yaml")])
    return sorted(n.replace(os.sep, "/") for n in names)
