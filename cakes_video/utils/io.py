"""File access through iopath: local paths and http(s) URLs alike, with a local cache for URLs;
:func:`replace_atomically`, which checkpoints and every JSON report (:func:`write_json`)
are written through; and :class:`FileLock`, the one file lock (a training run's OUTPUT_DIR,
the zoo's downloads)."""
import datetime
import errno
import fcntl
import json
import os
import socket
import time
from typing import Callable, Dict, Optional, Set

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


def write_text(path: str, text: str) -> None:
    """``text`` at ``path``, written atomically (:func:`replace_atomically`)."""
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            f.write(text)

    replace_atomically(path, write)


def write_json(path: str, obj, indent: int = 2) -> None:
    """``obj`` as JSON, with a final newline, at ``path``, written atomically (:func:`replace_atomically`)."""
    def write(tmp: str) -> None:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=indent)
            f.write("\n")

    replace_atomically(path, write)


class LockHeldError(RuntimeError):
    """Another live process holds the lock; ``holder``: its record (see :class:`FileLock`)."""

    def __init__(self, path: str, holder: Dict):
        super().__init__(f"{path} is held by {describe_holder(holder)}")
        self.path, self.holder = path, holder


def describe_holder(holder: Dict) -> str:
    """``"pid 123 on host h, started 2025-01-02 03:04:05"`` (what a lock file's record says)."""
    if not holder:
        return "a process that left no record"
    return f"pid {holder.get('pid')} on host {holder.get('host')}, started {holder.get('started')}"


class FileLock:
    """An exclusive lock on the file ``path``, which names its holder: ``{"pid", "host",
    "started"}`` as JSON.

    The lock itself is ``flock``: the kernel (or the NFS lock manager) drops it when its holder
    dies, so a lock file left by a killed process is free and is taken over, whatever live
    process its record names (pids are reused); :meth:`acquire` returns that dead holder's
    record so the caller can say so. A forked child (a DataLoader worker) closes its copy of
    the descriptor at once, so the lock dies with the process that took it, not with its last
    worker. Where the filesystem cannot flock, the record alone counts: one naming a live
    process of this host holds. Released locks remove their file. Also a context manager
    (``timeout``).
    """

    def __init__(self, path: str, timeout: float = 0.0):
        self.path, self.timeout = path, timeout
        self._fd: Optional[int] = None

    def acquire(self, timeout: float = 0.0) -> Dict:
        """Takes the lock, retrying for up to ``timeout`` seconds; returns the record of a dead
        holder whose file was left behind ({} when there was none). Raises LockHeldError."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._try_acquire()
            except LockHeldError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)

    def _try_acquire(self) -> Dict:
        os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                locked = _flock(fd)
            except BlockingIOError:
                holder = _read_record(fd)
                os.close(fd)
                raise LockHeldError(self.path, holder) from None
            if _same_file(fd, self.path):
                break
            os.close(fd)  # the holder released (removed) the file between our open and flock
        previous = _read_record(fd)
        if not locked and _alive_elsewhere(previous):
            os.close(fd)
            raise LockHeldError(self.path, previous)
        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": datetime.datetime.now().isoformat(sep=" ", timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        _HELD.add(self)
        return previous

    def release(self) -> None:
        """Removes the file and drops the lock (nothing when not held)."""
        if self._fd is None:
            return
        try:
            if _same_file(self._fd, self.path):
                os.remove(self.path)
        finally:
            os.close(self._fd)
            self._fd = None
            _HELD.discard(self)

    def _forget_in_child(self) -> None:
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> "FileLock":
        self.acquire(self.timeout)
        return self

    def __exit__(self, *exc) -> None:
        self.release()


# The locks this process holds (until released, even when no one references them: their
# descriptors stay open); a forked child closes its copies (os.register_at_fork below).
_HELD: Set[FileLock] = set()
_NO_FLOCK = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL)  # filesystems that cannot flock


def _forget_locks_in_child() -> None:
    for lock in list(_HELD):
        lock._forget_in_child()
    _HELD.clear()


os.register_at_fork(after_in_child=_forget_locks_in_child)


def _flock(fd: int) -> bool:
    """Takes ``fd``'s flock without waiting: True; False where the filesystem cannot flock.
    BlockingIOError when another process holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
        if e.errno not in _NO_FLOCK:  # BlockingIOError (EWOULDBLOCK) included
            raise
        return False
    return True


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _read_record(fd: int) -> Dict:
    try:
        record = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
    except (ValueError, UnicodeDecodeError):
        return {}
    return record if isinstance(record, dict) else {}


def _alive_elsewhere(record: Dict) -> bool:
    """Whether ``record`` names a live process of this host other than this one."""
    pid = record.get("pid")
    if record.get("host") != socket.gethostname() or not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True
