"""cakes_video.zoo.download against an HTTP server on 127.0.0.1 started by each test: success,
cache hits, digest mismatches, transfers cut short, 4xx / 5xx, timeouts, redirects, offline
mode, mirrors, corrupted cache files, interrupted downloads and the progress bar."""
import hashlib
import http.server
import logging
import os
import threading

import pytest

from cakes_video.zoo import download
from cakes_video.zoo.download import ChecksumError, DownloadError, fetch, verify

BODY = b"weights " * 50_000  # 400 kB: several reads of the transfer loop
DIGEST = hashlib.sha256(BODY).hexdigest()
NAME = f"model-{DIGEST[:8]}.pth"
FAST = dict(progress=False, backoff=0.001, timeout=5.0)


def whole(body=BODY):
    """A 200 response with the body and its Content-Length."""
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)
    return respond


def cut_short(body=BODY[:1000], missing=5000):
    """A 200 response that announces ``missing`` more bytes than it sends, then closes."""
    def respond(handler):
        handler.send_response(200)
        handler.send_header("Content-Length", str(len(body) + missing))
        handler.end_headers()
        handler.wfile.write(body)
    return respond


def status(code):
    def respond(handler):
        handler.send_error(code)
    return respond


def redirect(location):
    def respond(handler):
        handler.send_response(302)
        handler.send_header("Location", location)
        handler.send_header("Content-Length", "0")
        handler.end_headers()
    return respond


class Server:
    """An HTTP/1.0 server on 127.0.0.1 (every response closes its connection). ``routes`` maps
    a path to the responses given in turn, the last one repeated; ``requests`` lists the paths
    asked for; ``release`` ends the wait of a stalling response."""

    def __init__(self):
        self.routes, self.requests, self.release = {}, [], threading.Event()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append(self.path)
                responses = server.routes.get(self.path) or [status(404)]
                (responses.pop(0) if len(responses) > 1 else responses[0])(self)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        self.thread.start()

    def url(self, path):
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture
def server():
    s = Server()
    yield s
    s.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty cache folder; no offline mode, mirror or proxy from the environment."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("CAKES_VIDEO_CACHE", str(folder))
    monkeypatch.delenv("CAKES_VIDEO_OFFLINE", raising=False)
    monkeypatch.delenv("CAKES_VIDEO_MIRROR", raising=False)
    monkeypatch.setenv("no_proxy", "*")
    return folder


def cached_files(folder):
    return sorted(os.listdir(folder)) if folder.exists() else []


def test_fetch_downloads_a_verified_file_into_the_cache(server, cache):
    server.routes["/w/model.pth"] = [whole()]
    path = fetch(server.url("/w/model.pth"), NAME, DIGEST, **FAST)
    assert path == str(cache / NAME)
    assert open(path, "rb").read() == BODY
    assert cached_files(cache) == [NAME]
    assert server.requests == ["/w/model.pth"]


def test_a_digest_prefix_is_verified_as_a_prefix(server, cache):
    server.routes["/model.pth"] = [whole()]
    assert open(fetch(server.url("/model.pth"), NAME, DIGEST[:8].upper(), **FAST), "rb").read() == BODY


def test_a_cache_hit_makes_no_second_request(server, cache):
    server.routes["/model.pth"] = [whole()]
    first = fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    assert fetch(server.url("/model.pth"), NAME, DIGEST, **FAST) == first
    assert len(server.requests) == 1


def test_a_digest_mismatch_keeps_nothing_and_is_not_retried(server, cache):
    server.routes["/model.pth"] = [whole(b"something else")]
    wrong = hashlib.sha256(b"something else").hexdigest()
    with pytest.raises(ChecksumError) as raised:
        fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    message = str(raised.value)
    assert DIGEST in message and wrong in message and NAME in message and server.url("/model.pth") in message
    assert (raised.value.expected, raised.value.actual) == (DIGEST, wrong)
    assert cached_files(cache) == []
    assert len(server.requests) == 1


def test_a_transfer_cut_short_keeps_nothing_and_the_retry_succeeds(server, cache):
    server.routes["/model.pth"] = [cut_short(), whole()]
    path = fetch(server.url("/model.pth"), NAME, DIGEST, retries=2, **FAST)
    assert open(path, "rb").read() == BODY
    assert cached_files(cache) == [NAME]
    assert len(server.requests) == 2


def test_transfers_always_cut_short_fail_after_the_retries(server, cache):
    server.routes["/model.pth"] = [cut_short()]
    with pytest.raises(DownloadError, match=r"2 attempt\(s\).*closed after 1000 of 6000 bytes"):
        fetch(server.url("/model.pth"), NAME, DIGEST, retries=1, **FAST)
    assert cached_files(cache) == []
    assert len(server.requests) == 2


def test_404_is_not_retried(server, cache):
    with pytest.raises(DownloadError, match="HTTP 404") as raised:
        fetch(server.url("/missing.pth"), NAME, DIGEST, retries=3, **FAST)
    assert NAME in str(raised.value) and server.url("/missing.pth") in str(raised.value)
    assert len(server.requests) == 1
    assert cached_files(cache) == []


def test_500_is_retried_a_bounded_number_of_times(server, cache):
    server.routes["/model.pth"] = [status(500)]
    with pytest.raises(DownloadError, match=r"3 attempt\(s\).*HTTP 500") as raised:
        fetch(server.url("/model.pth"), NAME, DIGEST, retries=2, **FAST)
    assert server.url("/model.pth") in str(raised.value)
    assert len(server.requests) == 3
    assert cached_files(cache) == []


def test_a_500_then_a_whole_response_succeeds(server, cache):
    server.routes["/model.pth"] = [status(503), whole()]
    assert open(fetch(server.url("/model.pth"), NAME, DIGEST, **FAST), "rb").read() == BODY
    assert len(server.requests) == 2


def test_a_stalled_server_times_out_and_is_retried(server, cache):
    def stall(handler):
        server.release.wait(timeout=5)
    server.routes["/model.pth"] = [stall]
    with pytest.raises(DownloadError, match=r"2 attempt\(s\).*timed out"):
        fetch(server.url("/model.pth"), NAME, DIGEST, retries=1, progress=False, backoff=0.001, timeout=0.2)
    assert len(server.requests) == 2
    assert cached_files(cache) == []


def test_a_redirect_to_a_local_file_is_refused(server, cache, tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(BODY)
    for scheme_url in (secret.as_uri(), "ftp://127.0.0.1/model.pth"):
        server.routes["/model.pth"] = [redirect(scheme_url)]
        with pytest.raises(DownloadError, match="not allowed|refused"):
            fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    assert cached_files(cache) == []


def test_a_redirect_to_http_is_followed(server, cache):
    server.routes["/old.pth"] = [redirect("/new.pth")]
    server.routes["/new.pth"] = [whole()]
    assert open(fetch(server.url("/old.pth"), NAME, DIGEST, **FAST), "rb").read() == BODY
    assert server.requests == ["/old.pth", "/new.pth"]


@pytest.mark.parametrize("url", ["file:///etc/hostname", "ftp://127.0.0.1/model.pth", "model.pth"])
def test_only_http_and_https_urls_are_fetched(cache, url):
    with pytest.raises(ValueError, match="only http:// and https://"):
        fetch(url, NAME, DIGEST, **FAST)
    assert cached_files(cache) == []


@pytest.mark.parametrize("file_name", ["../model.pth", "sub/model.pth", "", ".."])
def test_a_file_name_with_a_folder_is_refused(cache, file_name):
    with pytest.raises(ValueError, match="bare file name"):
        fetch("http://127.0.0.1:1/model.pth", file_name, DIGEST, **FAST)


def test_offline_mode_uses_the_cached_file(server, cache, monkeypatch):
    server.routes["/model.pth"] = [whole()]
    path = fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    monkeypatch.setenv("CAKES_VIDEO_OFFLINE", "1")
    assert fetch(server.url("/model.pth"), NAME, DIGEST, **FAST) == path
    assert len(server.requests) == 1


def test_offline_mode_names_a_missing_file_and_how_to_get_it(server, cache, monkeypatch):
    monkeypatch.setenv("CAKES_VIDEO_OFFLINE", "1")
    with pytest.raises(DownloadError) as raised:
        fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    message = str(raised.value)
    for part in (NAME, str(cache), server.url("/model.pth"), "tools/download_weights.py", "CAKES_VIDEO_OFFLINE"):
        assert part in message
    assert server.requests == []
    assert cached_files(cache) == []


def test_the_mirror_serves_the_file_name(server, cache, monkeypatch):
    server.routes[f"/mirror/{NAME}"] = [whole()]
    monkeypatch.setenv("CAKES_VIDEO_MIRROR", server.url("/mirror"))  # the trailing "/" is added
    path = fetch("https://publisher.invalid/weights/model.pth", NAME, DIGEST, **FAST)
    assert open(path, "rb").read() == BODY
    assert server.requests == [f"/mirror/{NAME}"]


def test_a_mirror_file_is_verified(server, cache, monkeypatch):
    server.routes[f"/mirror/{NAME}"] = [whole(b"not the weights")]
    monkeypatch.setenv("CAKES_VIDEO_MIRROR", server.url("/mirror/"))
    with pytest.raises(ChecksumError, match="/mirror/"):
        fetch("https://publisher.invalid/weights/model.pth", NAME, DIGEST, **FAST)
    assert cached_files(cache) == []


def test_a_mirror_that_is_not_http_is_refused(cache, monkeypatch):
    monkeypatch.setenv("CAKES_VIDEO_MIRROR", "file:///srv/weights/")
    with pytest.raises(ValueError, match="CAKES_VIDEO_MIRROR"):
        fetch("https://publisher.invalid/model.pth", NAME, DIGEST, **FAST)


def test_a_corrupted_cached_file_is_refused_and_fetched_again(server, cache, caplog):
    server.routes["/model.pth"] = [whole()]
    path = fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    with open(path, "r+b") as f:
        f.write(b"X")
    with caplog.at_level(logging.WARNING, logger="cakes_video"):
        assert fetch(server.url("/model.pth"), NAME, DIGEST, **FAST) == path
    assert open(path, "rb").read() == BODY
    assert len(server.requests) == 2
    assert any("refusing the cached" in r.getMessage() and NAME in r.getMessage() for r in caplog.records)


def test_offline_a_corrupted_cached_file_is_named(server, cache, monkeypatch):
    cache.mkdir()
    (cache / NAME).write_bytes(b"damaged")
    monkeypatch.setenv("CAKES_VIDEO_OFFLINE", "1")
    with pytest.raises(DownloadError, match=f"{NAME} is corrupt in the cache") as raised:
        fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    assert DIGEST in str(raised.value)
    assert server.requests == []
    assert cached_files(cache) == []


def test_an_interrupted_download_leaves_nothing(server, cache, monkeypatch):
    class InterruptedBar(download.tqdm):
        def update(self, n=1):
            raise KeyboardInterrupt

    server.routes["/model.pth"] = [whole()]
    monkeypatch.setattr(download, "tqdm", InterruptedBar)
    with pytest.raises(KeyboardInterrupt):
        fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    assert cached_files(cache) == []


def test_the_progress_bar_is_drawn_on_stderr_unless_disabled(server, cache, capsys):
    server.routes["/model.pth"] = [whole()]
    fetch(server.url("/model.pth"), NAME, DIGEST, **{**FAST, "progress": True})
    assert NAME in capsys.readouterr().err
    os.remove(cache / NAME)
    fetch(server.url("/model.pth"), NAME, DIGEST, **FAST)
    assert capsys.readouterr().err == ""


def test_verify_checks_full_digests_and_prefixes(tmp_path):
    path = tmp_path / NAME
    path.write_bytes(BODY)
    verify(str(path), DIGEST)
    verify(str(path), DIGEST[:8])
    with pytest.raises(ChecksumError, match=f"{DIGEST}.*expected 00000000... \\(a prefix\\)"):
        verify(str(path), "00000000")
    with pytest.raises(ValueError, match="at least 8"):
        verify(str(path), DIGEST[:7])
    with pytest.raises(ValueError, match="hex digits"):
        verify(str(path), "z" * 64)


def test_cache_dir_honours_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("CAKES_VIDEO_CACHE", str(tmp_path / "mine"))
    assert download.cache_dir() == str(tmp_path / "mine")
    monkeypatch.delenv("CAKES_VIDEO_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert download.cache_dir() == str(tmp_path / "xdg" / "cakes_video")
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert download.cache_dir() == str(tmp_path / "home" / ".cache" / "cakes_video")


def test_offline_and_mirror_read_the_environment(monkeypatch):
    monkeypatch.delenv("CAKES_VIDEO_OFFLINE", raising=False)
    monkeypatch.delenv("CAKES_VIDEO_MIRROR", raising=False)
    assert not download.offline() and download.mirror() is None
    for value, expected in (("1", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv("CAKES_VIDEO_OFFLINE", value)
        assert download.offline() is expected
    monkeypatch.setenv("CAKES_VIDEO_OFFLINE", "sometimes")
    with pytest.raises(ValueError, match="CAKES_VIDEO_OFFLINE"):
        download.offline()
    monkeypatch.setenv("CAKES_VIDEO_MIRROR", "http://127.0.0.1:8000/zoo")
    assert download.mirror() == "http://127.0.0.1:8000/zoo/"


def test_invalid_retry_settings_are_refused(cache):
    with pytest.raises(ValueError, match="retries >= 0"):
        fetch("http://127.0.0.1:1/model.pth", NAME, DIGEST, retries=-1, progress=False)
