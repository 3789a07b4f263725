"""The preprocessing pipeline end to end: every dev clip in, mouth crops and audio features out."""

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import media
from speechforensics.backends import LiteBackend
from speechforensics.errors import SpeechForensicsError
from speechforensics.features import SAMPLES_PER_FRAME
from speechforensics.media import probe, read_frames, write_clip
from speechforensics.pipeline import detect, prepare, reported_segments
from speechforensics.scoring import THRESHOLDS, Window, thresholds

DEV = SHARED / "media/dev"
REFERENCE = SHARED / "reference/preprocessing/mouth_crop_reference.npz"


def manifest() -> list[str]:
    if not (DEV / "MANIFEST.tsv").exists():
        return []
    with open(DEV / "MANIFEST.tsv") as f:
        return [row["file"] for row in csv.DictReader(f, delimiter="\t")]


@pytest.mark.slow
@pytest.mark.parametrize("name", manifest() or ["(no dev clips)"])
def test_every_dev_clip_gives_mouth_crops(name):
    clip = prepare(need(DEV / name))
    t = clip.info.frames
    assert clip.audio.shape == (t * 640,)
    main = clip.tracks[0]
    assert main.crops.shape == (t, 96, 96) and main.crops.dtype == np.uint8
    assert main.face.frames >= 0.9 * t, f"main face measured on {main.face.frames} of {t} frames"
    assert not main.missing.any()
    assert 20 < main.crops.mean() < 235  # a picture, not a black or blown-out canvas


@pytest.mark.parametrize(
    "clip, file",
    [("lrs2_deepavsr_00016", "lrs2_deepavsr_00016.mp4"), ("grid_lbax4n", "grid_lbax4n.mpg")],
)
def test_pipeline_lands_near_the_original_crops(clip, file):
    """Our landmarks differ from the reference's by about half a pixel (and the reference dropped
    some on purpose), so the crops differ by a few grey levels; test_mouth checks the crop exactly
    from the reference landmarks."""
    with np.load(need(REFERENCE)) as ref:
        expected = ref[f"{clip}__gray96"]
    crops = prepare(need(DEV / file)).tracks[0].crops
    assert crops.shape == expected.shape
    assert np.abs(crops.astype(int) - expected).mean() < 3.0


def write_faceless_clip(path, seconds=2.0):
    """Flat grey frames and a tone: a valid clip with nobody in it."""
    frames = [np.full((96, 128, 3), 128, np.uint8)] * int(seconds * 25)
    tone = 0.25 * np.sin(np.arange(int(seconds * 16000)) * 0.1)
    write_clip(path, frames, tone)


def test_clip_without_a_face_is_a_clear_error(tmp_path):
    path = tmp_path / "nobody.mp4"
    write_faceless_clip(path)
    with pytest.raises(SpeechForensicsError, match=r"nobody\.mp4: no face long enough to judge"):
        prepare(path)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "speechforensics", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_crops_command_writes_a_contact_sheet(tmp_path):
    video, sheet = need(DEV / "grid_lbax4n.mpg"), tmp_path / "sheet.png"
    proc = run_cli("crops", video, sheet)
    assert proc.returncode == 0, proc.stderr
    assert '"frames_measured": 75' in proc.stdout
    import cv2

    image = cv2.imread(str(sheet), cv2.IMREAD_GRAYSCALE)
    assert image.shape[1] == 960 and image.shape[0] > 96 * 6


@pytest.mark.parametrize("content", [None, b"not a video\n"])
def test_crops_command_bad_input_is_one_line(tmp_path, content):
    video = tmp_path / "clip.mp4"
    if content is not None:
        video.write_bytes(content)
    proc = run_cli("crops", video, tmp_path / "sheet.png")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("speechforensics: error: ")
    assert str(video) in proc.stderr and "Traceback" not in proc.stderr


def test_faceless_clip_from_the_cli(tmp_path):
    video = tmp_path / "nobody.mp4"
    write_faceless_clip(video)
    proc = run_cli("crops", video, tmp_path / "sheet.png")
    assert proc.returncode == 1 and "no face" in proc.stderr and "Traceback" not in proc.stderr


# detect: one report per video


RESULT_KEYS = {
    "file", "score", "verdict", "threshold", "offset_frames", "offset_ms", "speech_seconds",
    "backend", "backend_about", "face", "tracks", "timeline", "segments", "offset_curve",
    "duration_s", "warnings", "error", "decided_by", "shots", "turns", "uncertain_band",
    "error_rates",
}  # fmt: skip


def test_detect_reports_score_verdict_offset_timeline():
    result = detect(need(DEV / "lrs2_deepavsr_00016.mp4"), LiteBackend())
    assert set(result) == RESULT_KEYS and result["error"] is None
    assert result["backend"] == "lipsync-lite"
    assert result["threshold"] == THRESHOLDS["lipsync-lite"]
    low, high = result["uncertain_band"]
    assert low == result["threshold"] and high > low  # widest for short clips
    score = result["score"]
    expected = "fake" if score < low else "uncertain" if score < high else "real"
    assert result["verdict"] == expected
    rates = result["error_rates"]  # the shipped fit's held-out scores at this score
    assert 0 <= rates["genuine_at_or_below"] <= 1 and 0 <= rates["forged_at_or_above"] <= 1
    assert -2 <= result["offset_frames"] <= 2 and len(result["offset_curve"]) == 125
    assert 5 < result["speech_seconds"] <= result["duration_s"]
    track = result["tracks"][0]
    assert {"speech_seconds", "turns", "frames_measured", "box_px", "centre_px"} <= set(track)
    assert result["shots"] == [[0.0, result["duration_s"]]]
    (turn,) = result["turns"]  # one speaker, one shot: one turn, judged on its own
    assert turn["face"] == track["id"] and turn["verdict"] == "real"
    assert turn["score"] == pytest.approx(result["score"]) and result["decided_by"] is None
    windows = result["timeline"]
    assert windows[0]["start_s"] == 0 and windows[-1]["end_s"] == pytest.approx(
        result["duration_s"]
    )
    assert json.loads(json.dumps(result)) == result  # plain JSON types only


def test_threshold_override_decides_the_verdict():
    path = need(DEV / "grid_lbax4n.mpg")
    assert detect(path, LiteBackend(), threshold=0.99)["verdict"] == "fake"
    low = detect(path, LiteBackend(), threshold=-0.99)
    assert low["verdict"] == "real" and low["segments"] == []


def rewrite(src, dst, audio: str):
    """`src`'s frames re-encoded into `dst` with `audio`: "silent" or "none"."""
    silence = np.zeros(probe(src).frames * 640) if audio == "silent" else None
    return write_clip(dst, read_frames(src), silence)


def test_silence_is_not_a_guess(tmp_path):
    path = rewrite(need(DEV / "grid_lbax4n.mpg"), tmp_path / "silent.mp4", "silent")
    with pytest.raises(SpeechForensicsError, match=r"silent\.mp4: too little speech to judge"):
        detect(path, LiteBackend())


@pytest.mark.parametrize("case", ["missing", "text", "no audio", "no face", "silence", "truncated"])
def test_detect_command_bad_inputs_carry_on(tmp_path, case):
    """Each bad input: one line naming the file and the reason; the batch goes on; exit 1."""
    good = need(DEV / "grid_lbax4n.mpg")
    bad = tmp_path / f"{case.replace(' ', '_')}.mp4"
    if case == "text":
        bad.write_text("not a video\n")
    elif case == "no audio":
        rewrite(good, bad, "none")
    elif case == "no face":
        write_faceless_clip(bad)
    elif case == "silence":
        rewrite(good, bad, "silent")
    elif case == "truncated":
        data = need(DEV / "lrs2_deepavsr_00008.mp4").read_bytes()
        bad.write_bytes(data[: len(data) // 2])
    out = tmp_path / "results.json"
    proc = run_cli("detect", bad, good, "--json", out)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and str(bad) in proc.stderr
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith(str(good))
    results = json.loads(out.read_text())
    assert results[0]["file"] == str(bad) and results[0]["error"]
    assert set(results[1]) == RESULT_KEYS and results[1]["verdict"] in ("real", "fake")


def test_detect_command_avhubert_backend(tmp_path, fixture_checkpoints):
    """The avhubert backend runs end to end (random fixture weights: no calibrated threshold)."""
    out = tmp_path / "r.json"
    proc = run_cli(
        "detect", need(DEV / "grid_lbax4n.mpg"), "--checkpoint",
        fixture_checkpoints("small_pretrain"), "--json", out,
        "--plot", tmp_path / "r.png", "--html", tmp_path / "r.html",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.png").read_bytes().startswith(b"\x89PNG")
    assert "grid_lbax4n.mpg: inconclusive" in (tmp_path / "r.html").read_text()
    (result,) = json.loads(out.read_text())
    assert result["backend"] == "avhubert" and result["verdict"] == "inconclusive"
    assert any("no calibrated threshold" in w for w in result["warnings"])


# Whole videos: speakers taking turns, shots, any length


@pytest.fixture(scope="module")
def two_speakers(tmp_path_factory):
    """Two genuine dev speakers side by side taking turns (own voices), and the same with the
    second turn voiced by a third person (fakes.turns_video)."""
    from speechforensics import fakes

    clips = [need(DEV / n) for n in ("pcavs_Audio_00104.mp4", "sadtalker_RD_Radio34.mp4")]
    donor = need(DEV / "pcavs_Pose_00067.mp4")  # a dub whose timing lipsync-lite can see
    infos = {c: media.probe(c) for c in [*clips, donor]}
    out = tmp_path_factory.mktemp("turns")
    rows = [
        fakes.write_whole(fakes.turns_video(*clips, infos), out),
        fakes.write_whole(fakes.turns_video(*clips, infos, voice=donor), out),
    ]
    truths = [json.loads((out / r["file"]).with_suffix(".truth.json").read_text()) for r in rows]
    return [(out / r["file"], t) for r, t in zip(rows, truths, strict=True)]


def _inside(box, area) -> bool:
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    return area[0] <= cx <= area[2] and area[1] <= cy <= area[3]


def test_two_genuine_speakers_taking_turns_are_real_each_on_their_own_speech(two_speakers):
    path, truth = two_speakers[0]
    result = detect(path, LiteBackend())
    assert result["verdict"] == "real" and result["decided_by"] is None
    assert len(result["shots"]) == 1 and result["segments"] == []
    for want in truth["turns"]:  # each turn given to the face in that speaker's panel
        got = max(result["turns"], key=lambda t: _overlap(t, want))
        assert _overlap(got, want) > 0.8 * (want["end_s"] - want["start_s"]) - 2, (want, got)
        assert _inside(got["box_px"], want["box"]) and got["verdict"] == "real", (want, got)


def _overlap(turn: dict, truth: dict) -> float:
    return max(0.0, min(turn["end_s"], truth["end_s"]) - max(turn["start_s"], truth["start_s"]))


def test_a_dubbed_turn_is_named_with_its_face_and_time(two_speakers):
    path, truth = two_speakers[1]
    result = detect(path, LiteBackend())
    (forged,) = truth["forged"]
    assert result["verdict"] == "fake"
    decided = result["decided_by"]
    # within one stretch piece of the change of speaker (speakers.MAX_STRETCH_FRAMES: 2 s)
    assert decided["start_s"] >= forged["start_s"] - 2.0 and decided["end_s"] <= forged["end_s"]
    turn = next(t for t in result["turns"] if t["face"] == decided["face"])
    assert _inside(turn["box_px"], forged["box"]) and turn["verdict"] == "fake"
    assert turn["score"] < turn["threshold"]
    covered = sum(
        max(0, min(b, forged["end_s"]) - max(a, forged["start_s"])) for a, b in result["segments"]
    )
    assert covered >= 0.5 * (forged["end_s"] - forged["start_s"])
    first = next(t for t in result["turns"] if _inside(t["box_px"], truth["turns"][0]["box"]))
    assert first["verdict"] == "real"  # the genuine speaker is not blamed


def _windows_within(result: dict, start: float, end: float) -> np.ndarray:
    return np.array(
        [w["score"] for w in result["timeline"]
         if w["score"] is not None and start <= w["start_s"] and w["end_s"] <= end]
    )  # fmt: skip


def test_each_speaker_is_aligned_on_its_own_offset(two_speakers, tmp_path):
    """Panels filmed apart need not share an offset: with the second speaker's voice 3 frames
    (120 ms) late, that speaker's timeline is read at its own best offset, as high as on time
    with no more low windows, and no genuine second is shaded (one offset for the video read
    it 120 ms off)."""
    path, truth = two_speakers[0]
    audio = media.read_audio(path)
    change = round(truth["turns"][1]["start_s"] * 25) * SAMPLES_PER_FRAME
    delay = np.zeros(3 * SAMPLES_PER_FRAME, audio.dtype)
    late = np.concatenate([audio[:change], delay, audio[change : len(audio) - len(delay)]])
    on_time = detect(path, LiteBackend())
    result = detect(media.redub(tmp_path / "late.mp4", path, late), LiteBackend())
    span = truth["turns"][1]["start_s"], truth["turns"][1]["end_s"]
    second, before = _windows_within(result, *span), _windows_within(on_time, *span)
    assert result["verdict"] == "real" and result["segments"] == []
    assert abs(second.mean() - before.mean()) < 0.05, (second.mean(), before.mean())
    low = thresholds("lipsync-lite").segment  # no more windows under it than on time
    assert np.sum(second < low) <= np.sum(before < low), (second.min(), before.min())


def test_a_low_run_is_cut_where_turns_meet():
    """Low windows astride the change of speaker shade neither turn unless a piece on one
    side lasts MIN_SEGMENT_SECONDS on its own."""
    turns = [
        {"start_s": 0.0, "end_s": 5.0, "verdict": "real"},
        {"start_s": 5.0, "end_s": 9.0, "verdict": "real"},
    ]
    hop = 0.2

    def low_from(start: float, stop: float) -> list[Window]:
        return [
            Window(t, t + 1.0, -1.0 if start <= t < stop else 1.0, 1.0)
            for t in np.arange(0.0, 8.0 + hop / 2, hop)
        ]

    assert reported_segments(low_from(4.2, 5.2), turns, 0.0) == []  # 0.4 s + 0.6 s
    assert reported_segments(low_from(4.2, 5.2), [], 0.0) == [pytest.approx([4.6, 5.6])]
    (piece,) = reported_segments(low_from(4.0, 6.6), turns, 0.0)  # 0.6 s before, 2 s after
    assert piece == pytest.approx([5.0, 7.0])


def test_a_video_longer_than_the_old_cap_is_analysed_to_its_end(tmp_path):
    """60 s (the original read 50): the timeline reaches the end, nothing is cut off."""
    clip = need(DEV / "lrs2_deepavsr_00016.mp4")
    frames = list(media.read_frames(clip))
    audio = media.read_audio(clip)
    loops = -(-60 * 25 // len(frames))
    path = media.write_clip(tmp_path / "long.mp4", frames * loops, np.tile(audio, loops))
    result = detect(path, LiteBackend())
    duration = media.probe(path).duration
    assert duration > 60 and result["duration_s"] == pytest.approx(duration)
    assert result["timeline"][-1]["end_s"] == pytest.approx(duration)
    assert not any("only the first" in w for w in result["warnings"])
    assert result["turns"][-1]["end_s"] > duration - 5
