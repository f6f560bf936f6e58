"""File access through iopath: local paths and http(s) URLs alike, with a local cache for URLs;
and :func:`replace_atomically`, which checkpoints and every JSON report (:func:`write_json`)
are written through."""
import json
import os
from typing import Callable

from iopath.common.file_io import HTTPURLHandler, PathManager

path_manager = PathManager()
path_manager.register_handler(HTTPURLHandler())


def replace_atomically(path: str, write: Callable[[str], None]) -> None:
    """Calls ``write(tmp)`` on a sibling temporary file, then renames it over ``path`` in one
    step: readers see the old file or the new one, never a partial write. When ``write`` fails
    the temporary file is removed and ``path`` keeps its old content."""
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_json(path: str, obj, indent: int = 2) -> None:
    """``obj`` as JSON, with a final newline, at ``path``, written atomically (:func:`replace_atomically`)."""
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)
            f.write("\n")

    replace_atomically(path, write)
