"""What the command-line tools share: ``--cfg FILE | --model NAME [KEY VALUE ...]`` parsing (flags may
come before, between or after the overrides), and expected failures (a bad flag included) as one
clear line and exit status 1 instead of a traceback; the process group is always closed."""
import argparse
import logging
import re
from typing import Callable, Optional, Sequence

from ..checkpoint.schema import CheckpointError
from ..config import ConfigError
from ..config_loader import load_config
from ..datasets.catalog import AnnotationError
from ..datasets.decoding import DecodeError
from ..datasets.failures import DecodeRetriesExhausted, TooManyFailedVideos
from ..datasets.synthetic import BenchmarkExists
from ..utils.distributed import launch_rank, shutdown_distributed
from ..zoo import DownloadError, checkpoint_file, get_weights
from .export import ExportError
from .hooks import NonFiniteLossError
from .monitor import MetricsFileError

logger = logging.getLogger(__name__)


def expected_errors() -> tuple:
    """Errors caused by the config, the data or the weights (not bugs): reported without traceback."""
    return (ConfigError, CheckpointError, AnnotationError, DecodeError, TooManyFailedVideos, DecodeRetriesExhausted,
            NonFiniteLossError, DownloadError, BenchmarkExists, ExportError, MetricsFileError)


def run_tool(main: Callable) -> int:
    """Runs ``main()``; returns the exit status: main's own when it returns an int, else 0;
    1 on an expected error, which global rank 0 alone reports: under torchrun every rank meets
    it (the same config, or rank 0's check broadcast: ``on_main``); the others exit quietly."""
    try:
        status = main()
        return status if isinstance(status, int) else 0
    except expected_errors() as e:
        if launch_rank() == 0:
            logging.getLogger("cakes_video").error("%s: %s", type(e).__name__, one_line(str(e)))
        return 1
    finally:
        shutdown_distributed()


def one_line(message: str) -> str:
    """``message`` on one line. An error a DataLoader worker raised comes back as "Caught X in
    DataLoader worker process N." and the worker's traceback: its last line is the message."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if len(lines) > 1 and "Original Traceback" in message:
        return re.sub(r"^[\w.]+: ", "", lines[-1])
    return " ".join(lines)


class UsageError(ConfigError):
    """A tool's command line that cannot be parsed (unknown or malformed flag)."""


class ToolParser(argparse.ArgumentParser):
    """The tools' argument parser: flags may follow the ``KEY VALUE`` overrides (intermixed
    parsing), and a bad flag raises UsageError (``run_tool``: one line, exit status 1) instead
    of printing the usage and exiting with status 2."""

    def parse_args(self, args=None, namespace=None):
        return self.parse_intermixed_args(args, namespace)

    def error(self, message: str):
        raise UsageError(f"{self.prog}: {message} (see --help)")


def positive_int(text: str) -> int:
    """argparse type of a flag that counts something: an int >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def add_model_args(parser: argparse.ArgumentParser, onnx: bool = False) -> argparse.ArgumentParser:
    """Adds the shared ``--cfg FILE | --model NAME`` choice (``args.cfg_file``, ``args.model``),
    with ``onnx`` a third one, ``--onnx FILE`` (``args.onnx``): an exported model."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--cfg", dest="cfg_file", help="YAML config file, or the name of a packaged config (r3d_18)")
    source.add_argument("--model", help="a zoo model (cakes_video.list_models()): its config, protocol and weights")
    if onnx:
        source.add_argument("--onnx", help="a model exported by tools/export_net.py, run by ONNX Runtime")
    return parser


def add_config_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Adds the shared ``--cfg FILE | --model NAME`` and ``KEY VALUE`` arguments; with a
    :class:`ToolParser`, other flags may come after the overrides too."""
    add_model_args(parser)
    parser.add_argument("opts", nargs="*", default=[], metavar="KEY VALUE",
                        help="config overrides as KEY VALUE pairs, e.g. SOLVER.BASE_LR 0.1")
    return parser


def config_of(args: argparse.Namespace, weights_key: str = "TEST.CHECKPOINT_FILE"):
    """The checked config ``args`` name: ``--cfg`` with its overrides, or the ``--model`` zoo
    entry's (its weights, fetched and verified, under ``weights_key``) with them."""
    if args.model is None:
        return load_config(args.cfg_file, args.opts)
    try:
        weights = get_weights(args.model)
        if weights_key in args.opts[0::2]:  # the user's own weights: the zoo's are not needed
            return weights.config(args.opts)
        return weights.config([weights_key, checkpoint_file(args.model), *args.opts])
    except (KeyError, ValueError) as e:  # an unknown name, a bad CAKES_VIDEO_* setting
        if isinstance(e, ConfigError):
            raise
        raise ConfigError(f"--model {args.model}: {e.args[0] if e.args else e}") from e


def parse_args(description: str, argv: Optional[Sequence[str]] = None, weights_key: str = "TEST.CHECKPOINT_FILE"):
    """Parses ``--cfg FILE | --model NAME [KEY VALUE ...]``; returns ``(args, cfg)`` with cfg
    loaded and checked (a zoo model's weights under ``weights_key``)."""
    parser = add_config_args(ToolParser(description=description))
    args = parser.parse_args(argv)
    return args, config_of(args, weights_key)
