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
    """Calls ``write(tmp)`` on a sibling temporary file, flushes it to disk, then renames it over
    ``path`` in one step: readers (and a machine that crashed) see the old file or the new one,
    never a partial or empty write. When ``write`` fails the temporary file is removed and
    ``path`` keeps its old content. Creates ``path``'s folder when missing."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        write(tmp)
        with open(tmp, "rb") as f:  # on disk before the rename: a crash never leaves a renamed, empty file
            os.fsync(f.fileno())
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
