"""Screenshots of the web page (`speechforensics serve`) with one clip checked, for the README.

For each VIDEO OUT.png pair: starts `speechforensics serve` on a fresh data folder, uploads the
video in headless Chromium (Debian's /usr/bin/chromium through Playwright), waits for the
verdict and saves the whole page.

    python scripts/serve_screenshots.py ../shared/media/dev/hyperlips_video2_video2.mp4 \
        docs/serve-genuine.png FAKES/hyperlips_video2_video2__swap.mp4 docs/serve-forged.png
"""

import argparse
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"]
FLAGS += ["--disable-background-networking", "--disable-component-update", "--disable-sync"]


def shoot(browser, video: Path, out: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/"
    with tempfile.TemporaryDirectory() as data:
        cmd = [sys.executable, "-m", "speechforensics", "serve", "--port", str(port)]
        server = subprocess.Popen(cmd + ["--data", data])
        try:
            for _ in range(300):
                try:
                    urllib.request.urlopen(url + "api/info", timeout=2).close()
                    break
                except OSError:
                    time.sleep(0.2)
            page = browser.new_page(viewport={"width": 960, "height": 900})
            page.goto(url)
            page.set_input_files("#files", str(video))
            page.locator(".job[data-status=done], .job[data-status=failed]").wait_for(
                timeout=600_000
            )
            page.wait_for_function("[...document.images].every(i => i.complete)")
            out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=out, full_page=True)
            print(out, page.locator(".job .verdict").inner_text())
        finally:
            server.terminate()
            server.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("pairs", nargs="+", type=Path, help="VIDEO OUT.png [VIDEO OUT.png ...]")
    args = parser.parse_args()
    if len(args.pairs) % 2:
        parser.error("give each video with its output image")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        for video, out in zip(args.pairs[::2], args.pairs[1::2], strict=True):
            shoot(browser, video, out)
        browser.close()


if __name__ == "__main__":
    main()
