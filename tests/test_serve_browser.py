"""The web page end to end: `speechforensics serve` as a user starts it, and a real headless
Chromium (Debian's, driven by Playwright; no browser download) uploading a dev clip, waiting for
the verdict and finding the timeline drawn. Skips, saying why, without Chromium or Playwright
(.ci/run installs both)."""

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import SHARED, need

pytest.importorskip("fastapi", reason="the serve extra is not installed")

CHROMIUM = Path(os.environ.get("SPEECHFORENSICS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
CLIP = SHARED / "media/dev/lrs2_deepavsr_00001.mp4"
START_S = 60  # for the server to answer
VERDICT_MS = 120_000  # for the page to show the verdict


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for(url: str, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"serve exited with {server.returncode}: {log.read_text()}")
        try:
            with urllib.request.urlopen(url + "api/info", timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"serve did not answer in {START_S} s: {log.read_text()}")


@pytest.fixture
def server(tmp_path):
    """`speechforensics serve` on a free port with its own data folder: yields the page's URL."""
    port, log = _free_port(), tmp_path / "serve.log"
    cmd = [sys.executable, "-m", "speechforensics", "serve", "--port", str(port)]
    with open(log, "w") as err:
        proc = subprocess.Popen(cmd + ["--data", str(tmp_path / "data")], stderr=err)
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_for(url, proc, log)
        assert f"open {url}" in log.read_text()  # the line that tells the user where to go
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture
def browser():
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not (CHROMIUM.exists() or shutil.which(str(CHROMIUM))):
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield browser
        browser.close()


def test_page_checks_a_clip_and_draws_its_timeline(browser, server, tmp_path):
    need(CLIP)
    page = browser.new_page(viewport={"width": 1000, "height": 1400})
    page.goto(server)
    page.wait_for_function("document.querySelector('#backend').textContent.startsWith('Backend')")
    assert page.locator("#limits").inner_text().endswith("the whole video is checked.")
    page.set_input_files("#files", str(CLIP))
    card = page.locator(".job[data-status=done]")
    card.wait_for(timeout=VERDICT_MS)
    job = page.evaluate(
        "(id) => fetch('/api/jobs/' + id).then(r => r.json())", card.get_attribute("data-id")
    )
    result = job["result"]
    assert card.locator(".name").inner_text() == CLIP.name
    verdict = card.locator(".verdict")
    assert result["verdict"] in verdict.get_attribute("class")
    assert f"{result['score']:.3f}" in card.locator(".score").inner_text()
    assert result["backend"] in card.locator(".score").inner_text()
    assert "What this backend sees" in card.locator(".meaning").inner_text()
    # the timeline: one point per window with a score, the threshold, a shaded rect per segment
    points = card.locator("svg.timeline polyline.score-line").evaluate_all(
        "lines => lines.map(l => l.getAttribute('points').split(' ').length)"
    )
    assert sum(points) == sum(w["score"] is not None for w in result["timeline"]) > 0
    assert card.locator("svg.timeline line.threshold").count() == (result["threshold"] is not None)
    assert card.locator("svg.timeline rect.segment").count() == len(result["segments"])
    box = card.locator("svg.timeline").bounding_box()
    assert box["width"] > 300 and box["height"] > 60
    facts = card.locator(".facts").inner_text()
    assert "Best offset" in facts and f"{result['speech_seconds']:.1f} s" in facts
    assert "face 0" in facts
    page.wait_for_function("document.querySelector('.job .crops img').naturalWidth > 0")
    assert card.locator("a.report").get_attribute("href") == job["links"]["report"]
    page.screenshot(path=tmp_path / "page.png", full_page=True)


def test_page_refuses_a_file_that_is_not_a_video(browser, server, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a video\n" * 100)
    page = browser.new_page()
    page.goto(server)
    page.wait_for_function("document.querySelector('#backend').textContent.startsWith('Backend')")
    page.set_input_files("#files", str(notes))
    card = page.locator(".job[data-status=rejected]")
    card.wait_for(timeout=20_000)
    assert card.locator(".error").inner_text().startswith("notes.txt is text/plain, not a video")
