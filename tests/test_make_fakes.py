"""scripts/make_fakes.py: constructed forgeries from genuine clips (swap, shift, splice)."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import media

SCRIPT = Path(__file__).resolve().parents[1] / "scripts/make_fakes.py"
spec = importlib.util.spec_from_file_location("make_fakes", SCRIPT)
make_fakes = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_fakes)


def test_swap_shift_and_splice(tmp_path):
    clip = need(SHARED / "media/dev/pcavs_Pose_00067.mp4")
    donor = need(SHARED / "media/dev/grid_lbax4n.mpg")
    rows = make_fakes.make(clip, donor, tmp_path)
    assert [r["kind"] for r in rows] == ["swap", "shift1s", "splice"]
    frames = media.probe(clip).frames
    own = media.read_audio(clip)
    for row in rows:
        fake = tmp_path / row["file"]
        assert media.probe(fake).frames == frames
        audio = media.read_audio(fake)
        if row["kind"] == "shift1s":  # its own voice, 1 s later (through an AAC round trip)
            assert np.abs(audio[:15000]).max() < 0.01
            assert np.corrcoef(audio[16000:40000], own[:24000])[0, 1] > 0.9
    start, end = (float(v) for v in rows[2]["replaced_s"].split("-"))
    assert end - start == pytest.approx(2.0) and 0 < start < frames / 25 - 2
