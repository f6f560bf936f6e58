"""Shared fixtures: the real-video folder, a factory for index-encoding test videos, and
caplog capture of the "cakes_video" logger."""
import logging
from pathlib import Path

import pytest

import video_factory

from cakes_video.engine.monitor import HANDLER_NAME

REPO = Path(__file__).resolve().parents[1]
SHARED_VIDEO_DIRS = (REPO.parent / "shared" / "videos", Path("/work/shared/videos"))


@pytest.fixture(scope="session")
def shared_videos() -> Path:
    """The folder of real test videos (see its MANIFEST.tsv); skips the test when absent."""
    for folder in SHARED_VIDEO_DIRS:
        if (folder / "MANIFEST.tsv").is_file():
            return folder
    pytest.skip("real test videos not found (shared/videos next to the repository)")


@pytest.fixture(scope="session")
def make_index_video():
    """``make_index_video(path, codec, container, num_frames, fps, size, pts_ms, rotation, codec_options, first)``.

    Writes a small video whose frame i shows i (read back with
    ``video_factory.frame_index(rgb)``) and returns its Path; see tests/video_factory.py.
    """
    return video_factory.make_index_video


@pytest.fixture(autouse=True)
def capture_cakes_video_logs(caplog, monkeypatch):
    """Lets caplog see "cakes_video" records: setup_logging stops them from propagating to the
    root logger, where caplog listens, so its handler goes on that logger itself. Propagation
    is off from the start, as after setup_logging, so no record is captured twice."""
    log = logging.getLogger("cakes_video")
    monkeypatch.setattr(log, "propagate", False)
    log.addHandler(caplog.handler)
    yield
    log.removeHandler(caplog.handler)


@pytest.fixture(autouse=True)
def no_stale_log_handlers():
    """A tool's setup_logging leaves its handlers (stderr, OUTPUT_DIR/log.txt) behind; the next
    test starts without them, and the log file is closed."""
    yield
    log = logging.getLogger("cakes_video")
    for handler in [h for h in log.handlers if h.get_name() == HANDLER_NAME]:
        log.removeHandler(handler)
        handler.close()
