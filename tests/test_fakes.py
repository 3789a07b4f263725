"""fakes.py / `speechforensics make-fakes`: constructed forgeries from genuine clips."""

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import fakes, media
from speechforensics.cli import main
from speechforensics.evaluate import read_list

DEV = SHARED / "media/dev"


def test_swap_shifts_and_splice(tmp_path):
    clip = need(DEV / "pcavs_Pose_00067.mp4")
    donor = need(DEV / "grid_lbax4n.mpg")
    rows = fakes.make(clip, donor, tmp_path)
    assert [r["kind"] for r in rows] == list(fakes.KINDS)
    frames = media.probe(clip).frames
    own, other = media.read_audio(clip), media.read_audio(donor)
    for row in rows:
        fake = tmp_path / row["file"]
        assert media.probe(fake).frames == frames
        audio = media.read_audio(fake)
        if row["kind"] in fakes.SHIFTS_S:  # its own voice, later (through an AAC round trip)
            delay = round(fakes.SHIFTS_S[row["kind"]] * 16000)
            assert row["offset_s"] == fakes.SHIFTS_S[row["kind"]]
            assert np.abs(audio[: delay - 1000]).max() < 0.01
            n = min(24000, len(own) - delay)
            assert np.corrcoef(audio[delay : delay + n], own[:n])[0, 1] > 0.9
        if row["kind"] == "swap":
            n = min(len(other), len(audio)) - 1000
            assert np.corrcoef(audio[:n], other[:n])[0, 1] > 0.9
    splice = rows[-1]
    start, end = (float(v) for v in splice["segments"].split("-"))
    assert end - start == pytest.approx(2.0) and 0 < start < frames / 25 - 2
    audio = media.read_audio(tmp_path / splice["file"])
    s0, margin = round(start * 16000), 800
    inside = slice(s0 + margin, s0 + 32000 - margin)
    assert np.corrcoef(audio[inside], other[margin : 32000 - margin])[0, 1] > 0.9  # the donor
    assert np.corrcoef(audio[: s0 - margin], own[: s0 - margin])[0, 1] > 0.9  # its own before


def test_short_clips_get_no_splice():
    own = np.zeros(3 * 16000, np.float32)
    assert "splice" not in fakes.versions(own, own, 3.0)
    assert set(fakes.versions(own, own, 4.0)) == set(fakes.KINDS)


def test_make_fakes_lists_reals_and_fakes_for_evaluate(tmp_path, capsys):
    need(DEV / "MANIFEST.tsv")
    out = tmp_path / "fakes"
    code = main(["make-fakes", str(DEV), str(out), "--limit", "2", "--kinds", "swap", "splice"])
    assert code == 0
    assert capsys.readouterr().out.strip() == str(out / "fakes.tsv")
    items = read_list(out / "fakes.tsv")
    real = [i for i in items if i.label == 1]
    assert [i.path for i in real] == [DEV / "pcavs_Audio_00015.mp4", DEV / "pcavs_Audio_00104.mp4"]
    assert sorted({i.category for i in items}) == ["real", "splice", "swap"]
    spliced = [i for i in items if i.category == "splice"]
    assert len(spliced) == 2 and all(len(i.segments) == 1 for i in spliced)
    assert all(i.path.exists() for i in items)
    written = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}
    assert main(["make-fakes", str(DEV), str(out), "--limit", "2", "--kinds", "swap"]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == written  # kept


def test_a_folder_of_videos_and_too_few_clips(tmp_path, capsys):
    clip = need(DEV / "grid_lbax4n.mpg")
    (tmp_path / "in").mkdir()
    (tmp_path / "in/a.mpg").symlink_to(clip)
    assert main(["make-fakes", str(tmp_path / "in"), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("speechforensics: error: ") and "at least 2" in err
    (tmp_path / "in/b.mp4").write_bytes(b"broken")
    assert fakes.genuine_clips(tmp_path / "in") == [tmp_path / "in/a.mpg", tmp_path / "in/b.mp4"]
    assert main(["make-fakes", str(tmp_path / "in"), str(tmp_path / "out"), "--kinds", "swap"]) == 1
    err = capsys.readouterr().err
    assert "b.mp4" in err  # the broken clip is reported; a.mpg, whose donor it is, too
