"""What the command-line tools share: expected failures become one clear line and exit
status 1 instead of a traceback; the process group is always closed."""
import logging
from typing import Callable

from ..checkpoint.schema import CheckpointError
from ..config import ConfigError
from ..datasets.catalog import AnnotationError
from ..datasets.decoding import DecodeError
from ..datasets.loader import TooManyFailedVideos
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
