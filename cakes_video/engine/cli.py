"""What the command-line tools share: ``--cfg FILE [KEY VALUE ...]`` parsing, and expected
failures as one clear line and exit status 1 instead of a traceback; the process group is
always closed."""
import argparse
import logging
from typing import Callable, Optional, Sequence

from ..checkpoint.schema import CheckpointError
from ..config import ConfigError, add_config_args
from ..config_loader import load_config
from ..datasets.catalog import AnnotationError
from ..datasets.decoding import DecodeError
from ..datasets.failures import TooManyFailedVideos
from ..utils.distributed import shutdown_distributed
from .hooks import NonFiniteLossError

logger = logging.getLogger(__name__)


def expected_errors() -> tuple:
    """Errors caused by the config, the data or the weights (not bugs): reported without traceback."""
    return ConfigError, CheckpointError, AnnotationError, DecodeError, TooManyFailedVideos, NonFiniteLossError


def run_tool(main: Callable) -> int:
    """Runs ``main()``; returns the exit status: main's own when it returns an int, else 0;
    1 on an expected error."""
    try:
        status = main()
        return status if isinstance(status, int) else 0
    except expected_errors() as e:
        logging.getLogger("cakes_video").error("%s: %s", type(e).__name__, e)
        return 1
    finally:
        shutdown_distributed()


def parse_args(description: str, argv: Optional[Sequence[str]] = None):
    """Parses ``--cfg FILE [KEY VALUE ...]``; returns ``(args, cfg)`` with cfg loaded and checked."""
    parser = add_config_args(argparse.ArgumentParser(description=description))
    args = parser.parse_args(argv)
    return args, load_config(args.cfg_file, args.opts)
