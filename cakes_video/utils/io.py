"""File access through iopath: local paths and http(s) URLs alike, with a local cache for URLs."""
from iopath.common.file_io import HTTPURLHandler, PathManager

path_manager = PathManager()
path_manager.register_handler(HTTPURLHandler())
