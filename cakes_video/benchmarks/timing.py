"""The one timing core of every benchmark: timed calls, warm-up, interleaved runs, clocks, summaries.

A *step* is a zero-argument callable (one inference forward, one train step, one decode...).
Every timed call goes through :func:`timed_call`: ``sync()`` before and after (a no-op on the
CPU, ``torch.cuda.synchronize`` on a GPU, so the span covers the queued kernels), the span read
on a *clock* (:data:`TIMERS`: ``"wall"`` = ``time.perf_counter``, ``"cpu"`` = this process's CPU
time, ``time.process_time``). On top of it:

- :func:`first_call_seconds`: the wall time of each step's first call (compiles, autotuning);
- :func:`interleaved_times`: warm-up rounds, then ``runs`` rounds calling each step once, the
  first step rotating from round to round, so load drift on a shared machine hits all alike;
- :func:`best_seconds`: the best of ``repeats`` calls of one step;
- :func:`median_ms` / :func:`best_ms`: the summaries reported (median, best of N);
- hook clocks for spans inside a forward (:class:`WallClock`; :class:`CudaEventClock` on a GPU,
  read once the pass is over; :func:`clock_for` picks one);
- the settings a run holds for its duration (:func:`intra_op_threads`, :func:`cudnn_autotune`);
- :func:`aligned`: the text tables every benchmark prints.
"""
import contextlib
import statistics
import time
from typing import Any, Callable, Dict, Iterator, List, Sequence, Tuple

import torch

Step = Callable[[], Any]
Sync = Callable[[], None]
Clock = Callable[[], float]
TIMERS: Dict[str, Clock] = {"wall": time.perf_counter, "cpu": time.process_time}


def no_sync() -> None:
    """The ``sync`` of CPU work: nothing is queued, a call is over when it returns."""


def sync_for(device: str) -> Sync:
    """``torch.cuda.synchronize(device)`` on a CUDA device, else :func:`no_sync`."""
    if torch.device(device).type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return no_sync


def timed_call(step: Step, sync: Sync = no_sync, clock: Clock = time.perf_counter) -> Tuple[Any, float]:
    """``(step's result, seconds of clock around the call)``, with ``sync()`` before and after."""
    sync()
    start = clock()
    result = step()
    sync()
    return result, clock() - start


def first_call_seconds(steps: Dict[str, Step], sync: Sync = no_sync) -> Dict[str, float]:
    """Wall seconds of one call of each step, in order: the first warm-up round (a compiled model compiles in it)."""
    return {name: timed_call(step, sync)[1] for name, step in steps.items()}


def interleaved_times(steps: Dict[str, Step], runs: int, warmup: int, sync: Sync = no_sync,
                      clock: Clock = time.perf_counter) -> Dict[str, List[float]]:
    """Seconds (of ``clock``) of each step per run, after ``warmup`` untimed rounds; every run
    calls each step once, the first rotating."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: Dict[str, List[float]] = {name: [] for name in names}
    for r in range(runs):
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(timed_call(steps[name], sync, clock)[1])
    return times


def best_seconds(step: Step, repeats: int, sync: Sync = no_sync, clock: Clock = time.perf_counter) -> float:
    """The shortest of ``repeats`` timed calls of ``step`` (inf when ``repeats`` is 0)."""
    return min((timed_call(step, sync, clock)[1] for _ in range(repeats)), default=float("inf"))


def median_ms(seconds: Sequence[float]) -> float:
    """The median of ``seconds``, in ms."""
    return statistics.median(seconds) * 1e3


def best_ms(seconds: Sequence[float]) -> float:
    """The shortest of ``seconds``, in ms."""
    return min(seconds) * 1e3


class WallClock:
    """Marks that read ``time.perf_counter()`` after ``sync()``: the CPU's clock."""

    def __init__(self, sync: Sync):
        self._sync = sync

    def mark(self) -> float:
        self._sync()
        return time.perf_counter()

    def settle(self) -> None:
        """Nothing to wait for: a mark is final when taken."""

    @staticmethod
    def seconds(start: float, end: float) -> float:
        return end - start


class CudaEventClock:
    """Marks that are CUDA events recorded on the current stream, without a sync: the GPU's
    queue stays full as in the timed runs, so a span is GPU time, not launch time plus a drained
    queue. ``settle()`` waits once, after a pass, before spans are read."""

    def __init__(self, device: str):
        self._device = device

    def mark(self) -> "torch.cuda.Event":
        event = torch.cuda.Event(enable_timing=True)
        event.record(torch.cuda.current_stream(self._device))  # the stream the model's kernels run on
        return event

    def settle(self) -> None:
        torch.cuda.synchronize(self._device)

    @staticmethod
    def seconds(start: "torch.cuda.Event", end: "torch.cuda.Event") -> float:
        return start.elapsed_time(end) / 1e3


def clock_for(device: str, sync: Sync):
    """:class:`CudaEventClock` on a CUDA device, else :class:`WallClock`."""
    return CudaEventClock(device) if torch.device(device).type == "cuda" else WallClock(sync)


@contextlib.contextmanager
def intra_op_threads(threads: int) -> Iterator[int]:
    """torch's intra-op thread count set to ``threads`` inside the block (0 keeps the current
    count); yields the count in force, and on exit puts back the caller's."""
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(previous)


@contextlib.contextmanager
def cudnn_autotune(on: bool) -> Iterator[None]:
    """With ``on``, cuDNN times each convolution's algorithms at its first call (a warm-up call)
    and keeps the fastest, for every call in the block; the setting is restored after."""
    previous = torch.backends.cudnn.benchmark
    torch.backends.cudnn.benchmark = on or previous
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark = previous


def aligned(rows: Sequence[Sequence[str]]) -> str:
    """Rows of cells as text: first column left-aligned, the others right-aligned, two spaces apart."""
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths)))
                     for row in rows)
