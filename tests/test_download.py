"""The downloader against a local HTTP server: resume, hashes, bad servers, bad files, the CLI."""

import hashlib
import json
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from speechforensics.avhubert.checkpoint import load_checkpoint
from speechforensics.avhubert.download import cache_dir, download, find_cached
from speechforensics.cli import main
from speechforensics.errors import SpeechForensicsError

STEM = "base_vox_iter5"


class _Handler(BaseHTTPRequestHandler):
    """Serves `server.body`, with Range requests; can fail, ignore Range or cut a response."""

    def do_GET(self):
        srv = self.server
        srv.log.append(self.headers.get("Range"))
        if srv.status != 200:
            self.send_error(srv.status)
            return
        body, start = srv.body, 0
        ranged = self.headers.get("Range") and not srv.ignore_range
        if ranged:
            start = int(re.fullmatch(r"bytes=(\d+)-", self.headers["Range"]).group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        data = body[start:]
        if srv.cut_after is not None:  # announce everything, send a prefix, hang up
            data, srv.cut_after = data[: srv.cut_after], None
            self.close_connection = True
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def small_bytes(fixture_checkpoints) -> bytes:
    return fixture_checkpoints("small_pretrain").read_bytes()


@pytest.fixture
def server(request, small_bytes):
    """A server on 127.0.0.1 serving the small fixture checkpoint; shut down after the test."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    httpd.body, httpd.log, httpd.status = small_bytes, [], 200
    httpd.cut_after, httpd.ignore_range = None, False
    httpd.url = f"http://127.0.0.1:{httpd.server_port}/{STEM}.pt"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()

    def stop():
        httpd.shutdown()
        httpd.server_close()

    request.addfinalizer(stop)
    return httpd


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _features(path: Path) -> torch.Tensor:
    audio = torch.randn(1, 104, 12, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return load_checkpoint(path).extract_features(audio=audio)


def _names(cache: Path) -> set[str]:
    return {p.name for p in cache.iterdir()} if cache.exists() else set()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("SPEECHFORENSICS_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "speechforensics"
    monkeypatch.setenv("SPEECHFORENSICS_CACHE", str(tmp_path / "mine"))
    assert cache_dir() == tmp_path / "mine"
    assert find_cached("large") is None
    with pytest.raises(SpeechForensicsError, match="unknown model 'huge'; available: base, large"):
        find_cached("huge")


def test_download_converts_and_keeps_nothing_pickled(
    server, tmp_path, fixture_checkpoints, small_bytes
):
    out = download("base", cache=tmp_path, url=server.url)
    assert out == tmp_path / f"{STEM}.safetensors" == find_cached("base", tmp_path)
    assert _names(tmp_path) == {f"{STEM}.safetensors", f"{STEM}.json", f"{STEM}.download.json"}
    record = json.loads((tmp_path / f"{STEM}.download.json").read_text())
    assert record == {
        "url": server.url,
        "file": f"{STEM}.pt",
        "bytes": len(small_bytes),
        "sha256": _sha256(small_bytes),
    }
    assert torch.equal(_features(out), _features(fixture_checkpoints("small_pretrain")))
    assert server.log == [None]
    assert download("base", cache=tmp_path, url=server.url) == out  # cached: no second request
    assert server.log == [None]


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path, small_bytes):
    server.cut_after = cut = 1_000_003
    with pytest.raises(SpeechForensicsError, match=rf"after {cut} of {len(small_bytes)} bytes"):
        download("base", cache=tmp_path, url=server.url)
    part = tmp_path / f"{STEM}.pt.part"
    assert part.read_bytes() == small_bytes[:cut]  # a clean prefix, kept for the resume
    out = download("base", cache=tmp_path, url=server.url)
    assert server.log == [None, f"bytes={cut}-"]
    record = json.loads((tmp_path / f"{STEM}.download.json").read_text())
    assert record["sha256"] == _sha256(small_bytes) and record["bytes"] == len(small_bytes)
    assert not part.exists() and out.is_file()


def test_server_that_ignores_range_restarts_from_zero(server, tmp_path, small_bytes):
    (tmp_path / f"{STEM}.pt.part").write_bytes(b"junk" * 1000)
    server.ignore_range = True
    download("base", cache=tmp_path, url=server.url, sha256=_sha256(small_bytes))
    assert server.log == ["bytes=4000-"]


def test_leftover_complete_file_is_verified_not_downloaded_again(server, tmp_path, small_bytes):
    (tmp_path / f"{STEM}.pt").write_bytes(small_bytes)  # a run stopped before converting
    out = download("base", cache=tmp_path, url=server.url, sha256=_sha256(small_bytes))
    assert server.log == [f"bytes={len(small_bytes)}-"]  # answered 416: nothing left to send
    assert out.is_file() and not (tmp_path / f"{STEM}.pt").exists()


def test_wrong_sha256_deletes_the_download(server, tmp_path, small_bytes):
    wrong = "0" * 64
    with pytest.raises(SpeechForensicsError) as e:
        download("base", cache=tmp_path, url=server.url, sha256=wrong)
    assert f"expected {wrong}, got {_sha256(small_bytes)}" in str(e.value)
    assert "\n" not in str(e.value)
    assert _names(tmp_path) == set()


def test_right_sha256_passes_and_pins_the_cached_file(server, tmp_path, small_bytes):
    right = _sha256(small_bytes).upper()
    out = download("base", cache=tmp_path, url=server.url, sha256=right)
    assert out.is_file()
    with (
        pytest.warns(UserWarning, match="not 1111"),  # the cached file is not the one pinned
        pytest.raises(SpeechForensicsError, match="SHA-256 mismatch"),
    ):
        download("base", cache=tmp_path, url=server.url, sha256="1" * 64)


def test_damaged_cached_file_is_downloaded_again(server, tmp_path):
    out = download("base", cache=tmp_path, url=server.url)
    out.write_bytes(b"\0" * 100)
    with pytest.warns(UserWarning, match="downloading it again"):
        assert download("base", cache=tmp_path, url=server.url) == out
    assert server.log == [None, None]
    load_checkpoint(out)


def test_http_404_is_a_clear_error(server, tmp_path):
    server.status = 404
    with pytest.raises(SpeechForensicsError, match=rf"^{re.escape(server.url)}: HTTP 404 "):
        download("base", cache=tmp_path, url=server.url)
    assert _names(tmp_path) == set()


def test_refused_connection_is_a_clear_error(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/x.pt"
    with pytest.raises(SpeechForensicsError, match=rf"^{re.escape(url)}: .*refused"):
        download("base", cache=tmp_path, url=url)


def test_file_that_is_not_a_checkpoint_is_deleted(server, tmp_path):
    server.body = b"<html>this is not a checkpoint</html>\n" * 100
    with pytest.raises(SpeechForensicsError, match="not a usable AV-HuBERT checkpoint") as e:
        download("base", cache=tmp_path, url=server.url)
    assert "\n" not in str(e.value)
    assert _names(tmp_path) == set()


def test_cli_download(server, tmp_path, capsys):
    cache = tmp_path / "cache"
    assert main(["download", "base", "--cache", str(cache), "--url", server.url, "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.out == f"{cache / STEM}.safetensors\n" and captured.err == ""
    server.status = 500
    args = ["download", "large", "--cache", str(cache), "--url", server.url]
    assert main(args) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(r"speechforensics: error: \S+: HTTP 500 .*\n", captured.err)
