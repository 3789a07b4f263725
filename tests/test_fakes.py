"""fakes.py / `speechforensics make-fakes`: constructed forgeries from genuine clips."""

import json
import tracemalloc

import cv2
import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import fakes, media
from speechforensics.cli import main
from speechforensics.lists import read_list

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
            # The 3 s donor voices the whole clip, repeated: a dub leaves no silent stretch.
            assert len(other) + 16000 < len(audio)
            again = audio[len(other) + 800 : len(other) + 16000]
            assert np.corrcoef(again, other[800:16000])[0, 1] > 0.9
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


# Whole videos: several genuine clips composed into one

SHORT = ("lrs2_deepavsr_00008.mp4", "grid_lbax4n.mpg", "vexpress_RD_Radio10_0_clip_0.mp4")
FOURTH = "lrs2_deepavsr_00022.mp4"  # the donor of a 4-clip list's first cuts-forged


def _short(n=3):
    clips = [need(DEV / name) for name in (*SHORT, FOURTH)[:n]]
    return clips, {c: media.probe(c) for c in clips}


def _alike(a: np.ndarray, b: np.ndarray, margin=800) -> bool:
    """Two stretches of sound are the same voice through an AAC round trip."""
    n = min(len(a), len(b)) - margin
    return np.corrcoef(a[margin:n], b[margin:n])[0, 1] > 0.9


def _panel(frame, box):
    x0, y0, x1, y1 = box
    return frame[y0:y1, x0:x1].astype(np.float32)


def _differ(a, b) -> float:
    return float(np.abs(a - b).mean())


def _truth(path):
    return json.loads(path.with_name(f"{path.stem}.truth.json").read_text())


def test_turns_speak_in_turn_while_the_listener_holds_still(tmp_path):
    (a, b, c), infos = _short()
    genuine, forged = fakes.turns_video(a, b, infos), fakes.turns_video(a, b, infos, voice=c)
    rows = [fakes.write_whole(w, tmp_path) for w in (genuine, forged)]
    na, nb = infos[a].frames, infos[b].frames
    box_a, box_b = [0, 0, 360, 360], [360, 0, 810, 360]  # 160x160 and 360x288 at 360 px high
    for row in rows:
        out = tmp_path / row["file"]
        info, truth = media.probe(out), _truth(out)
        assert (info.frames, info.width, info.height) == (na + nb, 810, 360)
        assert truth["duration_s"] == (na + nb) / 25 and truth["canvas"] == [810, 360]
        spans = [[t["start_s"], t["end_s"], t["box"], t["source"]] for t in truth["turns"]]
        assert spans == [[0, na / 25, box_a, a.name], [na / 25, (na + nb) / 25, box_b, b.name]]
    assert (
        rows[0]["label"] == "real"
        and rows[0]["segments"] == ""
        and not _truth(tmp_path / rows[0]["file"])["forged"]
    )
    assert (
        rows[1]["label"] == "fake" and rows[1]["segments"] == f"{na / 25:.2f}-{(na + nb) / 25:.2f}"
    )
    assert _truth(tmp_path / rows[1]["file"])["forged"] == [
        {"start_s": na / 25, "end_s": (na + nb) / 25, "box": box_b}
    ]
    real, fake = (media.read_audio(tmp_path / r["file"]) for r in rows)
    s = na * 640
    assert _alike(real[:s], media.read_audio(a)) and _alike(fake[:s], media.read_audio(a))
    assert _alike(real[s:], media.read_audio(b))
    voice = media.read_audio(c)  # 2.1 s voicing a 3 s turn: repeated to fill it, as a dub
    assert _alike(fake[s:], voice) and _alike(fake[s + len(voice) :], voice)
    assert np.abs(fake[-1600:]).max() > 0.01  # no silence at its end
    # Listener still: B shows its first frame through A's turn, A its last through B's
    first_b = cv2.resize(next(media.read_frames(b)), (450, 360), interpolation=cv2.INTER_AREA)
    moved, still = 0.0, 0.0
    for i, frame in enumerate(media.read_frames(tmp_path / rows[0]["file"])):
        if i == 0:
            start_a, start_b = _panel(frame, box_a), _panel(frame, box_b)
            assert _differ(start_b, first_b.astype(np.float32)) < 3
        if i < na:
            moved = max(moved, _differ(_panel(frame, box_a), start_a))
            still = max(still, _differ(_panel(frame, box_b), start_b))
            last_a = _panel(frame, box_a)
        else:
            moved = max(moved, _differ(_panel(frame, box_b), start_b))
            still = max(still, _differ(_panel(frame, box_a), last_a))
    assert still < 1.5 and moved > 4


def test_cuts_letterbox_three_shots_and_forge_the_middle_one(tmp_path):
    clips, infos = _short(4)
    made = fakes.whole_videos(clips, infos, ("cuts", "cuts-forged"))
    assert [w.kind for w in made] == ["cuts", "cuts-forged"] * 4
    genuine, forged = made[:2]
    assert [t.voice for t in forged.turns] == [clips[0], clips[3], clips[2]]
    rows = [fakes.write_whole(w, tmp_path) for w in (genuine, forged)]
    n = [infos[c].frames for c in clips[:3]]
    cuts = np.cumsum([0] + n)
    truth = _truth(tmp_path / rows[1]["file"])
    assert truth["shots"] == [[cuts[k] / 25, cuts[k + 1] / 25] for k in range(3)]
    assert [t["box"] for t in truth["turns"]] == [[140, 0, 500, 360], [95, 0, 545, 360]] + [
        [140, 0, 500, 360]
    ]
    assert truth["forged"] == [
        {"start_s": cuts[1] / 25, "end_s": cuts[2] / 25, "box": [95, 0, 545, 360]}
    ]
    assert rows[1]["segments"] == f"{cuts[1] / 25:.2f}-{cuts[2] / 25:.2f}"
    assert media.probe(tmp_path / rows[1]["file"]).frames == sum(n)
    audio = media.read_audio(tmp_path / rows[1]["file"])
    shot = [audio[cuts[k] * 640 : cuts[k + 1] * 640] for k in range(3)]
    assert _alike(shot[0], media.read_audio(clips[0])) and _alike(
        shot[2], media.read_audio(clips[2])
    )
    assert _alike(shot[1], media.read_audio(clips[3]))  # the donor
    assert not _alike(shot[1], media.read_audio(clips[1]))
    change, prev = [], None
    for frame in media.read_frames(tmp_path / rows[0]["file"]):
        assert frame[:, :90].max() < 24 and frame[:, 550:].max() < 24  # black bars
        if prev is not None:
            change.append(_differ(frame.astype(np.float32), prev))
        prev = frame.astype(np.float32)
    at_cuts = [change[k - 1] for k in cuts[1:3]]
    within = np.delete(np.array(change), [k - 1 for k in cuts[1:3]])
    assert min(at_cuts) > 3 * within.max()  # a hard cut changes the picture, nothing else does


def test_a_shorter_donor_voice_is_repeated_to_fill_its_turn():
    clips, infos = _short(3)  # a 75-frame GRID shot voiced by a 52-frame clip
    grid = clips[1]
    forged = fakes.shots_video("cuts-forged", "x.mp4", [grid, grid], clips[1:3], infos)
    own, donor = (media.read_audio(c) for c in clips[1:3])
    n = infos[grid].frames * 640
    assert len(donor) < n
    track = fakes.soundtrack(forged)
    assert len(track) == 2 * n
    assert np.array_equal(track[:n], media.pad_or_trim(own, n))  # its own voice, as it was
    dubbed = track[n:]
    assert np.array_equal(dubbed[: len(donor)], donor)
    assert np.array_equal(dubbed[len(donor) :], donor[: n - len(donor)])  # no silence at its end


def test_long_cycles_to_its_length_forges_a_late_shot_and_streams(tmp_path):
    clips, infos = _short(4)
    made = fakes.whole_videos(clips, infos, ("long", "long-forged"), min_seconds=14)
    assert [w.kind for w in made] == ["long", "long", "long-forged", "long-forged"]
    assert [w.turns[0].clip for w in made] == [clips[0], clips[2]] * 2  # two starting clips
    for w in made:
        shown = [t.clip for t in w.turns]
        assert w.frames >= 350 and w.frames - w.turns[-1].frames < 350  # cycled just enough
        first = clips.index(shown[0])
        assert len(shown) > 4 and shown == [clips[(first + k) % 4] for k in range(len(shown))]
        assert sum(t.forged for t in w.turns) == (w.kind == "long-forged")
    for w in made[2:]:
        (k,) = [k for k, t in enumerate(w.turns) if t.forged]
        starts = np.cumsum([0] + [t.frames for t in w.turns])
        assert starts[k] >= 175 > starts[k - 1]  # the first shot starting after half of 14 s
        assert w.turns[k].voice != w.turns[k].clip
    genuine, forged = made[0], made[2]
    tracemalloc.start()
    fakes.write_whole(genuine, tmp_path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 40e6  # its 350+ frames at 640x360 are 240 MB: they were never all held
    row = fakes.write_whole(forged, tmp_path)
    out = tmp_path / row["file"]
    truth = _truth(out)
    assert media.probe(out).frames == forged.frames and truth["duration_s"] == forged.frames / 25
    (span,) = truth["forged"]
    audio = media.read_audio(out)
    donor = media.read_audio(DEV / next(t["voice"] for t in truth["turns"] if t["forged"]))
    inside = audio[round(span["start_s"] * 16000) : round(span["end_s"] * 16000)]
    assert _alike(inside, donor)
    before = audio[: round(span["start_s"] * 16000)]
    genuine_audio = fakes.soundtrack(genuine)
    assert _alike(before, genuine_audio[: len(before)])


def test_every_dev_clip_makes_long_videos_of_two_minutes():
    clips = fakes.genuine_clips(need(DEV / "MANIFEST.tsv"))
    infos = {c: media.probe(c) for c in clips}
    made = fakes.whole_videos(clips, infos, ("long", "long-forged"))
    assert len(clips) == 29 and [w.kind for w in made] == ["long"] * 2 + ["long-forged"] * 2
    for w in made:
        assert w.frames >= 120 * 25 and sorted(t.clip for t in w.turns) == sorted(clips)
    for w in made[2:]:
        starts = np.cumsum([0] + [t.frames for t in w.turns])
        (k,) = [k for k, t in enumerate(w.turns) if t.forged]
        assert starts[k] >= 60 * 25 > starts[k - 1]


def test_make_fakes_whole_kinds_list_truths_and_resume(tmp_path, capsys):
    clips = [need(DEV / name) for name in SHORT[:2]]
    (tmp_path / "in").mkdir()
    for clip in clips:
        (tmp_path / "in" / clip.name).symlink_to(clip)
    out = tmp_path / "out"
    argv = ["make-fakes", str(tmp_path / "in"), str(out), "--kinds", "turns", "turns-forged"]
    assert main(argv) == 0
    assert capsys.readouterr().out.strip() == str(out / "fakes.tsv")
    items = read_list(out / "fakes.tsv")
    assert [(i.label, i.category) for i in items] == [(1, "real")] * 2 + [
        (1, "turns"), (0, "turns-forged"), (1, "turns"), (0, "turns-forged")
    ]  # fmt: skip
    for item in items[2:]:
        truth = _truth(item.path)
        assert item.segments == tuple((f["start_s"], f["end_s"]) for f in truth["forged"])
        assert len(item.segments) == item.label ^ 1
    written = {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "fakes.tsv"}
    assert len(written) == 8 and not [p for p in written if ".part" in p]
    assert main(argv) == 0
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "fakes.tsv"} == written
    assert fakes.expand_kinds(["swap", "whole", "turns"]) == ("swap", *fakes.WHOLE_KINDS)
