"""What a run reports: the text log, metrics as JSON lines, TensorBoard (when installed),
and tqdm progress bars. Only rank 0 writes or draws; other ranks get silent stand-ins."""
import json
import logging
import math
import os
import sys
from typing import Dict, Iterable, Optional

from tqdm import tqdm

from ..utils.distributed import is_main

LOGGER_NAME = "cakes_video"
HANDLER_NAME = "cakes_video.setup_logging"  # marks the handlers setup_logging owns
logger = logging.getLogger(__name__)


def setup_logging(output_dir: Optional[str] = None) -> logging.Logger:
    """Logs INFO to stderr (rank 0; warnings only elsewhere) and to OUTPUT_DIR/log.txt on rank 0.

    Records stop at the "cakes_video" logger: with the root logger configured too, every line
    would print twice. Calling it again replaces only the handlers it added before, so a
    handler someone else attached (e.g. pytest's caplog) keeps working.
    """
    log = logging.getLogger(LOGGER_NAME)
    log.setLevel(logging.INFO if is_main() else logging.WARNING)
    log.propagate = False
    for h in [h for h in log.handlers if h.get_name() == HANDLER_NAME]:
        log.removeHandler(h)
        h.close()
    fmt = logging.Formatter("[%(asctime)s %(name)s %(levelname)s] %(message)s", "%H:%M:%S")
    handlers = [StderrHandler()]
    if output_dir and is_main():
        os.makedirs(output_dir, exist_ok=True)
        handlers.append(logging.FileHandler(os.path.join(output_dir, "log.txt")))
    for h in handlers:
        h.set_name(HANDLER_NAME)
        h.setFormatter(fmt)
        log.addHandler(h)
    return log


class StderrHandler(logging.StreamHandler):
    """A StreamHandler on whatever ``sys.stderr`` is when a record is written, not the one at set-up:
    a caller that swaps stderr (a notebook, a test's capture) and closes the old one must not
    leave the logger writing to a closed stream."""

    def __init__(self):
        super().__init__(sys.stderr)

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _value):
        pass  # always the current sys.stderr


class MetricWriter:
    """Appends one JSON object per line to ``OUTPUT_DIR/metrics.jsonl``; mirrors numbers to
    TensorBoard when ``tensorboard`` is importable and enabled. A no-op off rank 0."""

    def __init__(self, output_dir: str, tensorboard: bool = True):
        self.path = os.path.join(output_dir, "metrics.jsonl")
        self.enabled = is_main()
        self.tb = _tensorboard(os.path.join(output_dir, "tensorboard")) if (tensorboard and self.enabled) else None
        if self.enabled:
            os.makedirs(output_dir, exist_ok=True)

    def write(self, kind: str, step: int, values: Dict) -> None:
        """One record ``{"type": kind, "step": step, **values}``; non-finite floats become null."""
        if not self.enabled:
            return
        record = {"type": kind, "step": step, **{k: _jsonable(v) for k, v in values.items()}}
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")
        if self.tb is not None:
            for k, v in values.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool):
                    self.tb.add_scalar(f"{kind}/{k}", v, step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _jsonable(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


def _tensorboard(log_dir: str):
    try:  # a lazy import, not to dodge a cycle: tensorboard is an optional dependency
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(log_dir)


class MetricsFileError(ValueError):
    """A metrics.jsonl that is missing or not one JSON record per line."""


def read_metrics(output_dir: str, kind: Optional[str] = None) -> list:
    """The records of ``OUTPUT_DIR/metrics.jsonl`` (of one ``kind`` when given), in file order.

    An unfinished last line (no newline: the run was killed mid-write) is skipped with a
    warning; a missing file or any other line that is not a JSON record with a ``type`` raises
    MetricsFileError naming the file and line.
    """
    path = os.path.join(output_dir, "metrics.jsonl")
    try:
        with open(path) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        raise MetricsFileError(f"{path}: not found (is {output_dir} the OUTPUT_DIR of a training run?)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise MetricsFileError(f"{path}: cannot read it: {e}") from None
    records = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):  # no newline after it: cut off mid-write
                logger.warning("%s: line %d is unfinished; skipped", path, number)
                continue
            raise MetricsFileError(f"{path}: line {number} is not JSON: {line[:80]!r}") from None
        if not isinstance(record, dict) or "type" not in record:
            raise MetricsFileError(f"{path}: line {number} is not a metrics record (an object with a \"type\")")
        records.append(record)
    return [r for r in records if kind is None or r["type"] == kind]


def progress(iterable: Iterable, desc: str, total: Optional[int] = None, enabled: bool = True):
    """A tqdm bar on rank 0 (stderr), the bare iterable elsewhere or when disabled."""
    if not (enabled and is_main()):
        return iterable
    return tqdm(iterable, desc=desc, total=total, dynamic_ncols=True, leave=False, file=sys.stderr)
