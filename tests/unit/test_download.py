"""Bounded downloads against a local HTTP server: a size cap, an overall deadline, and clear refusals."""
from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from ua_helpers import _io
from ua_helpers.inputs import data
from ua_helpers.inputs.data import DatasetError

PAIRS = {"colours": {"pairs": [["The sky is blue.", "The sky is green."], ["Grass is green.", "Grass is red."],
                               ["Snow is white.", "Snow is black."]]}}
DRIP_INTERVAL_S = 0.2
#: The bytes the dripping server has sent so far.
DRIPPED: list[int] = []


class _Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):
        body = json.dumps(PAIRS).encode()
        if self.path == "/ok.json":
            self._head(len(body))
            self.wfile.write(body)
        elif self.path == "/drip.json":  # one byte per interval: each read returns before any socket timeout
            self._head(len(body))
            try:
                for byte in body:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    DRIPPED.append(byte)
                    time.sleep(DRIP_INTERVAL_S)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up and hung up
                pass
        elif self.path == "/announced-huge.json":  # says it is too large, sends little
            self._head(2 * _io.MAX_DOWNLOAD_BYTES)
            self.wfile.write(body)
        elif self.path == "/unannounced-huge.json":  # no Content-Length: the body ends when the server closes
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Connection", "close")
            self.end_headers()
            block = b" " * (1 << 20)
            try:
                for _ in range(_io.MAX_DOWNLOAD_BYTES // len(block) + 8):
                    self.wfile.write(block)
            except (BrokenPipeError, ConnectionResetError):  # the client refused and hung up
                pass
        else:
            self.send_error(404)

    def _head(self, length: int):
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(length))
        self.end_headers()


@pytest.fixture(scope="module")
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    """The local server must be reached directly, whatever proxy the environment names."""
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")


def test_small_dataset_downloads(server):
    pairs = data.load_pairs(f"{server}/ok.json")
    assert pairs.n_pairs == 3 and pairs.name == "ok.json"


def test_dripping_server_hits_the_overall_deadline(server):
    """A byte every 0.2 s never trips a socket timeout; the deadline stops it all the same: the caller is refused
    while the body is still arriving, and the abandoned transfer stops at its next read."""
    body = len(json.dumps(PAIRS))
    deadline = 1.0
    assert body * DRIP_INTERVAL_S > 10 * deadline  # the whole body would take far longer than the deadline
    DRIPPED.clear()
    url = f"{server}/drip.json"
    with pytest.raises(DatasetError, match=r"drip\.json.*deadline of 1 s"):
        data._fetch(url, timeout=deadline)
    sent = len(DRIPPED)
    assert 0 < sent < body  # the transfer had started and was far from done: refused by the deadline, not an error
    for worker in [t for t in threading.enumerate() if t.name == f"download {url}"]:  # none if already stopped
        worker.join(timeout=30)  # a guard against hanging only: the worker stops at its next byte (0.2 s)
        assert not worker.is_alive()


def test_announced_oversize_is_refused_before_reading(server):
    with pytest.raises(DatasetError, match=r"announced-huge\.json.*more than the limit"):
        data.load_pairs(f"{server}/announced-huge.json")


def test_unannounced_oversize_is_refused_while_streaming(server):
    import tracemalloc

    tracemalloc.start()
    try:
        with pytest.raises(DatasetError, match=r"unannounced-huge\.json.*exceeds the limit of 52428800 bytes"):
            data.load_pairs(f"{server}/unannounced-huge.json")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # one growing buffer of at most the cap, plus a chunk and the bytearray's over-allocation (< 1/8 on CPython)
    assert peak < 1.25 * _io.MAX_DOWNLOAD_BYTES + (1 << 20)


def test_unreachable_host_names_the_url():
    with pytest.raises(DatasetError, match=r"could not download http://127\.0\.0\.1:9/x\.json"):
        data._fetch("http://127.0.0.1:9/x.json", timeout=5.0)


def test_download_arguments_are_checked():
    with pytest.raises(ValueError, match="max_bytes"):
        _io.download("http://127.0.0.1/", max_bytes=0)
    with pytest.raises(ValueError, match="deadline_s"):
        _io.download("http://127.0.0.1/", deadline_s=0)


def test_small_cap_applies(server):
    with pytest.raises(_io.DownloadError, match="more than the limit of 10 bytes"):
        _io.download(f"{server}/ok.json", max_bytes=10)


# --------------------------------------------------------------------------- cached downloads are re-checked when read
def test_tampered_cached_ua230_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv(data.UA230_ENV, raising=False)
    cached = tmp_path / "datasets" / f"ua-230-{data.UA230_SHA256[:12]}.json"
    cached.parent.mkdir(parents=True)
    cached.write_text(json.dumps(PAIRS))
    with pytest.raises(DatasetError, match=rf"{cached.name} has sha256 .*expected the pinned {data.UA230_SHA256}"):
        data.load_pairs("ua-230")


def test_published_results_are_read_from_the_package_never_downloaded(monkeypatch):
    import urllib.request

    from ua_helpers import _io
    from ua_helpers.inputs import published
    from ua_helpers.report import results

    def no_network(*args, **kwargs):
        raise AssertionError("the published results were downloaded")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    monkeypatch.setattr(_io, "download", no_network)
    assert results.load_results("published") == published.load(published.PAIR_LEVEL)
    assert results.load_results(results.PUBLISHED_URL)["n_pairs"] == 230


def test_shipped_published_results_that_do_not_match_their_sha256_are_refused(monkeypatch):
    import dataclasses

    from ua_helpers.inputs import published
    from ua_helpers.report import results

    record = published.info(published.PAIR_LEVEL)
    monkeypatch.setitem(published.FILES, published.PAIR_LEVEL, dataclasses.replace(record, sha256="0" * 64))
    with pytest.raises(ValueError, match="installation is damaged"):
        results.load_results("published")
