"""Verified downloads of zoo files into a local cache.

:func:`fetch` returns the path of ``cache_dir()/file_name`` after checking its sha256, whether
the file was already cached or has just been downloaded: a cached file that no longer matches
is deleted and fetched again. A download is written to a temporary sibling and renamed only
once its digest matches, so the final name never holds a partial or wrong file. Transient
failures (connection errors, timeouts, HTTP 5xx, a body shorter than its Content-Length) are
retried with exponential backoff; HTTP 4xx and a digest mismatch are not.

Environment: ``CAKES_VIDEO_CACHE`` (the cache folder), ``CAKES_VIDEO_OFFLINE=1`` (the cache
only, no network), ``CAKES_VIDEO_MIRROR=http://host:port/path/`` (every file is fetched as
the mirror followed by its file name, and verified the same way).

The transfer itself goes through urllib, not iopath's ``download`` (or ``HTTPURLHandler``,
which calls it): that helper calls ``urllib.request.urlretrieve``, which takes no timeout (a
stalled server would hang for ever unless the process-wide socket default were changed) and
goes through the global opener, which follows redirects to ``ftp://``; it returns any file
already at its target unverified, and its fixed ``.tmp`` name is shared by processes that
fetch the same file; ``HTTPURLHandler`` caches by URL in its own folder, which leaves no room
for a mirror or an offline mode. Here each request has its own timeout and follows redirects
to http and https only; ``utils.io.FileLock`` serialises processes that fetch one file.
"""
import contextlib
import hashlib
import http.client
import logging
import os
import re
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import BinaryIO, Optional

from tqdm import tqdm

from ..utils.io import FileLock, replace_atomically

logger = logging.getLogger(__name__)

CACHE_ENV = "CAKES_VIDEO_CACHE"
LOCK_TIMEOUT = 3600.0  # seconds a process waits for another one's download of the same file
OFFLINE_ENV = "CAKES_VIDEO_OFFLINE"
MIRROR_ENV = "CAKES_VIDEO_MIRROR"
SCHEMES = ("http", "https")
MIN_DIGEST_PREFIX = 8  # publishers put 8 hex digits in file names (r3d_18-b3b3357e.pth)
_FLAG_VALUES = {"": False, "0": False, "false": False, "no": False, "off": False,
                "1": True, "true": True, "yes": True, "on": True}
_CHUNK_BYTES = 1 << 20
_USER_AGENT = "cakes-video"


class DownloadError(RuntimeError):
    """A zoo file that could not be fetched or verified; the message names the file, the URL
    and what to do."""


class ChecksumError(DownloadError):
    """A file whose sha256 is not the expected one; ``expected`` is the full digest or the
    prefix that was asked for, ``actual`` the file's full digest."""

    def __init__(self, message: str, expected: str, actual: str):
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class _Transient(Exception):
    """A failed attempt worth repeating; its message is the cause."""


def cache_dir() -> str:
    """The folder of downloaded files: ``$CAKES_VIDEO_CACHE``, else ``cakes_video`` under
    ``$XDG_CACHE_HOME``, else ``~/.cache/cakes_video``. Not created here."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return os.path.expanduser(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "cakes_video")


def offline() -> bool:
    """Whether ``CAKES_VIDEO_OFFLINE`` is set to 1 (or true / yes / on): files come from the
    cache only. Raises ValueError on a value that is neither on nor off."""
    value = os.environ.get(OFFLINE_ENV, "").strip().lower()
    if value not in _FLAG_VALUES:
        raise ValueError(f"{OFFLINE_ENV}={os.environ[OFFLINE_ENV]!r}: expected 1 (cache only) or 0")
    return _FLAG_VALUES[value]


def mirror() -> Optional[str]:
    """``$CAKES_VIDEO_MIRROR`` ending in one "/" (a file is fetched as mirror + file name), or
    None when unset. Raises ValueError when it is not an http or https URL."""
    value = os.environ.get(MIRROR_ENV, "").strip()
    if not value:
        return None
    _check_url(value, f"{MIRROR_ENV}={value!r}")
    return value.rstrip("/") + "/"


def verify(path: str, sha256: str) -> None:
    """Raises ChecksumError unless the sha256 of ``path`` is ``sha256``: the full 64-digit hex
    digest, or a prefix of at least 8 digits (the one a publisher puts in the file name),
    checked as a prefix. Raises ValueError when ``sha256`` is not such a digest."""
    expected = _expected_digest(sha256)
    actual = sha256_of(path)
    if not actual.startswith(expected):
        raise ChecksumError(
            f"{path}: sha256 {actual} does not match the expected {_describe(expected)}; the "
            "file is damaged or not the one expected (a downloaded file: delete it and fetch it again; "
            "a file inside the package: reinstall cakes-video)", expected, actual)


def fetch(url: str, file_name: str, sha256: Optional[str], *, progress: bool = True, retries: int = 3,
          backoff: float = 1.0, timeout: float = 60.0) -> str:
    """The path of a verified copy of ``file_name`` in :func:`cache_dir`, downloaded from
    ``url`` (or from the mirror, see :func:`mirror`) unless a cached copy matches ``sha256``
    (a full digest or a prefix, as for :func:`verify`; None where no digest is published: the
    file is then kept as downloaded, and the caller checks it).

    ``retries``: attempts after the first one on transient failures, waiting ``backoff``
    seconds, then twice as long each time. ``timeout``: seconds to connect or to wait for the
    next data. ``progress``: a tqdm bar on stderr. Raises DownloadError (ChecksumError for a
    digest mismatch) naming the file and the URL; in offline mode, when the file is not cached.
    Raises ValueError on an argument no download could satisfy (a URL that is not http or
    https, a file name with a folder in it, a malformed digest).
    """
    expected = _expected_digest(sha256)
    _check_file_name(file_name)
    _check_retry_settings(retries, backoff, timeout)
    source = _source_url(url, file_name)
    folder = cache_dir()
    path = os.path.join(folder, file_name)
    problem = _cache_problem(path, expected)
    if problem is None:
        return path
    if offline():
        raise DownloadError(_offline_message(file_name, folder, source, problem))
    try:
        # processes fetching one file (torchrun ranks) download it once
        with FileLock(_lock_path(path), timeout=LOCK_TIMEOUT):
            if _cache_problem(path, expected) is not None:
                _download_with_retries(source, path, expected, progress, retries, backoff, timeout)
                logger.info("downloaded %s from %s into %s", file_name, source, folder)
    except OSError as e:
        raise DownloadError(f"cannot write {file_name} into the cache folder {folder}: {e}; set {CACHE_ENV} "
                            "to a writable folder") from e
    return path


def _lock_path(path: str) -> str:
    """Where the lock of cache file ``path`` lives: outside the cache, which holds only verified files."""
    key = hashlib.sha256(os.path.abspath(path).encode()).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), "cakes_video_locks", f"{os.path.basename(path)}-{key}.lock")


def _expected_digest(sha256: Optional[str]) -> str:
    """``sha256`` in lower case; ValueError unless it is 8 to 64 hex digits. None (nothing is
    published) gives the empty prefix, which every file matches: the caller checks the file."""
    if sha256 is None:
        return ""
    digest = sha256.strip().lower()
    if not re.fullmatch(f"[0-9a-f]{{{MIN_DIGEST_PREFIX},64}}", digest):
        raise ValueError(f"sha256 {sha256!r}: expected the 64 hex digits of a digest or a prefix "
                         f"of at least {MIN_DIGEST_PREFIX} of them")
    return digest


def _describe(expected: str) -> str:
    if not expected:
        return "(no published digest)"
    return expected if len(expected) == 64 else f"{expected}... (a prefix)"


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _check_file_name(file_name: str) -> None:
    """A bare file name: anything else would put the file outside the cache folder."""
    if file_name in ("", ".", "..") or "/" in file_name or os.sep in file_name:
        raise ValueError(f"file name {file_name!r}: expected a bare file name, without folders")


def _check_retry_settings(retries: int, backoff: float, timeout: float) -> None:
    if retries < 0 or backoff < 0 or timeout <= 0:
        raise ValueError(f"retries={retries}, backoff={backoff}, timeout={timeout}: expected "
                         "retries >= 0, backoff >= 0 and timeout > 0")


def _check_url(url: str, what: str) -> None:
    """ValueError unless ``url`` is an http or https URL with a host: other schemes (file://,
    ftp://) would read something the zoo never means to."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme.lower() not in SCHEMES or not parts.netloc:
        raise ValueError(f"{what}: only http:// and https:// URLs are fetched")


def _source_url(url: str, file_name: str) -> str:
    """The URL a file is fetched from: the mirror's when one is set, ``url`` otherwise."""
    base = mirror()
    source = base + urllib.parse.quote(file_name) if base else url
    _check_url(source, f"URL {source!r} of {file_name}")
    return source


def _cache_problem(path: str, expected: str) -> Optional[str]:
    """None when ``path`` is a verified copy; otherwise why not, for the messages. A copy that
    no longer matches is refused, logged and deleted."""
    if not os.path.isfile(path):
        return "not in the cache"
    try:
        verify(path, expected)
    except ChecksumError as e:
        logger.warning("refusing the cached %s: its sha256 %s does not match the expected %s; "
                       "deleting it", path, e.actual, _describe(expected))
        with contextlib.suppress(FileNotFoundError):  # another process may have removed it first
            os.remove(path)
        return f"corrupt in the cache (sha256 {e.actual}, expected {_describe(expected)}; deleted)"
    return None


def _offline_message(file_name: str, folder: str, source: str, problem: str) -> str:
    return (f"{file_name} is {problem} ({folder}), and {OFFLINE_ENV}=1 forbids downloading it "
            f"from {source}. On a machine with network access, run tools/download_weights.py "
            f"with the model's zoo name (or download {source} yourself), then copy {file_name} "
            f"into {folder}; or unset {OFFLINE_ENV} to download it here.")


def _download_with_retries(url: str, path: str, expected: str, progress: bool, retries: int,
                           backoff: float, timeout: float) -> None:
    file_name = os.path.basename(path)
    attempts = retries + 1
    for attempt in range(1, attempts + 1):
        try:
            _download_once(url, path, expected, progress, timeout)
            return
        except _Transient as e:
            if attempt == attempts:
                raise DownloadError(
                    f"could not download {file_name} from {url}: {attempts} attempt(s) failed, "
                    f"the last with: {e}. Nothing was written to {os.path.dirname(path)}. Try "
                    f"again later, set {MIRROR_ENV} to a mirror that holds {file_name}, or copy "
                    f"the file into {os.path.dirname(path)}.") from e
            delay = backoff * 2 ** (attempt - 1)
            logger.warning("downloading %s from %s failed (attempt %d of %d: %s); retrying in %.2f s",
                           file_name, url, attempt, attempts, e, delay)
            time.sleep(delay)


def _download_once(url: str, path: str, expected: str, progress: bool, timeout: float) -> None:
    """One attempt: the body goes to a temporary sibling of ``path`` that is renamed over it only
    when its digest matches; on any failure (KeyboardInterrupt included) it is removed.
    Raises _Transient on a failure worth retrying, DownloadError otherwise."""
    file_name = os.path.basename(path)

    def write_verified(tmp: str) -> None:
        with open(tmp, "wb") as out:
            actual = _transfer(url, out, file_name, progress, timeout)
        if not actual.startswith(expected):
            raise ChecksumError(
                f"{file_name} downloaded from {url} has sha256 {actual}, not the expected "
                f"{_describe(expected)}; nothing was kept in {os.path.dirname(path)}. The server "
                "holds another file under that name: if the publisher replaced it, the zoo "
                "manifest's sha256 needs updating; otherwise try another mirror.", expected, actual)

    try:
        replace_atomically(path, write_verified)
    except urllib.error.HTTPError as e:
        if e.code >= 500:
            raise _Transient(f"HTTP {e.code} {e.reason}") from e
        raise DownloadError(
            f"could not download {file_name} from {url}: HTTP {e.code} {e.reason} (not retried). "
            f"The server does not give this file: check the URL, set {MIRROR_ENV} to a mirror "
            f"that holds {file_name}, or copy the file into {os.path.dirname(path)}.") from e
    except (urllib.error.URLError, http.client.HTTPException, ConnectionError, TimeoutError) as e:
        raise _Transient(f"{type(e).__name__}: {e}") from e


def _transfer(url: str, out: BinaryIO, file_name: str, progress: bool, timeout: float) -> str:
    """Writes the body at ``url`` to the open binary file ``out`` and returns its sha256.
    Raises _Transient when the body is shorter than its Content-Length (http.client returns
    a short body without complaint)."""
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    # Built per call so that proxy settings in the environment are read when fetching.
    opener = urllib.request.build_opener(_HttpRedirectsOnly)
    digest, received = hashlib.sha256(), 0
    with opener.open(request, timeout=timeout) as response:
        size = _content_length(response)
        with tqdm(total=size, desc=file_name, unit="B", unit_scale=True, unit_divisor=1024,
                  file=sys.stderr, disable=not progress, leave=False) as bar:
            while chunk := response.read(_CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
    if size is not None and received < size:
        raise _Transient(f"the connection closed after {received} of {size} bytes")
    return digest.hexdigest()


def _content_length(response: http.client.HTTPResponse) -> Optional[int]:
    value = response.headers.get("Content-Length")
    return int(value) if value and value.isdigit() else None


class _HttpRedirectsOnly(urllib.request.HTTPRedirectHandler):
    """Follows redirects to http and https URLs only (urllib's default also follows ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme.lower() not in SCHEMES:
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl} refused: only http "
                                         "and https are followed", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)
