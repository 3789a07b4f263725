"""Reports a person looks at: contact sheets, the report figure, the HTML page."""

import numpy as np
import pytest

from speechforensics.errors import SpeechForensicsError
from speechforensics.report import contact_sheet, doubt_line, html_page, plot_png, write_image

PNG = b"\x89PNG\r\n\x1a\n"


def result(score=0.3, threshold=0.2):
    windows = [
        {"start_s": s / 5, "end_s": s / 5 + 1, "score": 0.1 * (s % 4), "speech_fraction": 1.0}
        for s in range(15)
    ]
    windows[3]["score"] = None  # too little speech there
    return {
        "file": "dir/<clip>.mp4", "score": score, "verdict": "real", "threshold": threshold,
        "offset_frames": 2, "offset_ms": 80.0, "speech_seconds": 3.5, "backend": "lipsync-lite",
        "face": 0, "tracks": [{"id": 0, "score": score}], "timeline": windows,
        "segments": [[0.0, 0.5]], "offset_curve": list(np.linspace(-0.1, 0.3, 31)),
        "duration_s": 3.8, "warnings": ["a <warning>"], "error": None, "shots": [[0.0, 3.8]],
        "turns": [
            {"start_s": 0.2, "end_s": 1.8, "face": 0, "box_px": [0, 0, 9, 9],
             "speech_seconds": 1.5, "score": None, "threshold": None, "verdict": "not judged"},
            {"start_s": 1.8, "end_s": 3.6, "face": 1, "box_px": [9, 0, 19, 9],
             "speech_seconds": 2.5, "score": 0.01, "threshold": 0.1, "verdict": "fake"},
        ],
        "decided_by": {"start_s": 1.8, "end_s": 3.6, "face": 1, "score": 0.01},
    }  # fmt: skip


def test_contact_sheet_has_a_block_per_track(tmp_path):
    crops = [np.full((100, 96, 96), 128, np.uint8), np.full((30, 96, 96), 60, np.uint8)]
    missing = [np.zeros(100, bool), np.ones(30, bool)]
    sheet = contact_sheet(crops, ["face 0", "face 1"], missing)
    assert sheet.shape[1] == 960 and sheet.shape[0] == (22 + 6 * 96) + (22 + 3 * 96)
    assert write_image(sheet, tmp_path / "s.png").read_bytes().startswith(PNG)
    with pytest.raises(SpeechForensicsError, match="png or .jpg"):
        write_image(sheet, tmp_path / "s.gif")


@pytest.mark.parametrize("crops", [np.zeros((40, 96, 96), np.uint8), None])
def test_plot_and_page(crops):
    png = plot_png(result(), crops)
    assert png.startswith(PNG) and len(png) > 10_000
    page = html_page(result(), png)
    assert page.startswith("<!doctype html>") and "data:image/png;base64," in page
    assert "&lt;clip&gt;.mp4" in page and "<clip>" not in page and "a &lt;warning&gt;" in page
    assert "<td>1.8–3.6 s</td><td>face 1</td>" in page and '<tr class="fake">' in page


def test_an_uncertain_verdict_shows_its_band_and_both_error_rates():
    doubtful = result() | {
        "verdict": "uncertain",
        "uncertain_band": [0.25, 0.35],
        "error_rates": {"genuine_at_or_below": 0.04, "forged_at_or_above": 0.12},
    }
    line = doubt_line(doubtful)
    assert "0.250 and 0.350" in line and "4% of genuine" in line and "12% of forged" in line
    assert doubt_line(result()) is None  # real: nothing to doubt
    page = html_page(doubtful, plot_png(doubtful, None))
    assert "<b>Uncertain:</b>" in page and "12% of forged" in page


def test_plot_without_threshold_or_score():
    assert plot_png(result(score=None, threshold=None), None).startswith(PNG)
