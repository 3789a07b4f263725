"""The paper's protocol (paper.py) against the official SpeechForensics pipeline, run on dev clips
with the BASE fixture checkpoint (tests/fixtures/paper/README.md says how the fixture was made)."""

import json
import re
import shutil
import subprocess
import sys
import wave
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import media, paper
from speechforensics.cli import main
from speechforensics.errors import SpeechForensicsError

FIXTURE = Path(__file__).parent / "fixtures/paper"
OFFICIAL = json.loads((FIXTURE / "official.json").read_text())
MAPS = json.loads((FIXTURE / "ffmpeg51_frame_maps.json").read_text())
TOLERANCE = 1e-3  # |our score - the official score| per clip


def dev_clip(name: str) -> Path:
    return need(SHARED / "media/dev" / name)


@pytest.fixture(scope="module")
def base_model(fixture_checkpoints):
    from speechforensics.backends import AVHubertBackend

    return AVHubertBackend(fixture_checkpoints("base_pretrain")).model


# --- 25 fps as ffmpeg -r 25 picks frames --------------------------------------------------------


def test_ffmpeg_rate_reads_rates_as_ffmpeg_does():
    assert paper.ffmpeg_rate(30000 / 1001) == Fraction(30000, 1001)
    assert paper.ffmpeg_rate(24000 / 1001) == Fraction(24000, 1001)
    assert paper.ffmpeg_rate(30.0) == 30 and paper.ffmpeg_rate(12.5) == Fraction(25, 2)
    assert paper.ffmpeg_rate(29.95) == Fraction(599, 20)


@pytest.mark.parametrize("key", sorted(MAPS))
def test_frame_map_is_what_ffmpeg_51_picks(key):
    """Index-coded frames through `ffmpeg -r FPS -i ... -r 25` (FFmpeg 5.1, 10-60 fps, up to
    1,500 frames): every kept, dropped and repeated frame as measured."""
    fps, frames = key.split(":")
    assert paper.frame_map(int(frames), float(fps)).tolist() == MAPS[key]


@pytest.mark.parametrize("stem", sorted(OFFICIAL))
def test_frame_map_of_the_official_run(stem):
    ref = OFFICIAL[stem]
    got = paper.frame_map(ref["source_frames"], ref["source_fps"])
    assert got.tolist() == ref["source_index"]


def test_frame_map_from_30_fps_keeps_13_then_drops_every_6th():
    m = paper.frame_map(60, 30.0)
    assert m[:13].tolist() == list(range(13)) and 13 not in m and 19 not in m
    assert len(m) == 52 > round(60 * 25 / 30)  # longer than the plain formula
    assert paper.frame_map(40, 25.0).tolist() == list(range(40))


# --- the H.264 round trip -----------------------------------------------------------------------

# x264's settings in the official ROI files (their SEI: FFmpeg 5.1.9's libx264, 2+ cores)
OFFICIAL_X264_OPTIONS = (
    "cabac=1 ref=3 deblock=1:0:0 analyse=0x3:0x113 me=hex subme=7 psy=1 psy_rd=1.00:0.00 "
    "mixed_ref=1 me_range=16 chroma_me=1 trellis=1 8x8dct=1 cqm=0 deadzone=21,11 fast_pskip=1 "
    "chroma_qp_offset=4 threads=3 lookahead_threads=1 sliced_threads=0 nr=0 decimate=1 "
    "interlaced=0 bluray_compat=0 constrained_intra=0 bframes=3 b_pyramid=2 b_adapt=1 b_bias=0 "
    "direct=1 weightb=1 open_gop=0 weightp=2 keyint=250 keyint_min=25 scenecut=40 "
    "intra_refresh=0 rc_lookahead=40 rc=crf mbtree=1 crf=20.0 qcomp=0.60 qpmin=0 qpmax=69 "
    "qpstep=4 ip_ratio=1.40 aq=1:1.00"
)
WRITE_ROI = (
    "import sys; from pathlib import Path; import numpy as np; from speechforensics import paper; "
    "paper.write_roi_video(np.load(sys.argv[1]), float(sys.argv[2]), Path(sys.argv[3]))"
)


@pytest.fixture(scope="module")
def radio_crops():
    """(colour crops at the source rate, source fps) of a 29.97 fps dev clip."""
    stem = "vexpress_RD_Radio10_0_clip_0"
    video = dev_clip(f"{stem}.mp4")
    fps, frames = paper.source_frames(video)
    landmarks = paper.read_landmark_json(FIXTURE / "landmarks" / f"{stem}.json")
    return paper.colour_crops(frames, landmarks, video), fps


def test_roi_encode_is_the_same_every_time(tmp_path, radio_crops):
    """The same crops -> the same mp4 bytes, three times in this process and once in another
    (x264's AVX-512 code made them differ from run to run: paper.x264_params)."""
    crops, fps = radio_crops
    written = [paper.write_roi_video(crops, fps, tmp_path / f"{i}.mp4") for i in range(3)]
    np.save(tmp_path / "crops.npy", crops)
    args = [str(tmp_path / "crops.npy"), repr(fps), str(tmp_path / "other.mp4")]
    subprocess.run([sys.executable, "-c", WRITE_ROI, *args], check=True)
    data = [path.read_bytes() for path in [*written, tmp_path / "other.mp4"]]
    assert all(other == data[0] for other in data[1:])
    grey = paper.read_roi_video(written[0])
    assert np.array_equal(paper.h264_round_trip(crops, fps), grey)
    assert grey.shape == (len(OFFICIAL["vexpress_RD_Radio10_0_clip_0"]["source_index"]), 96, 96)


def test_roi_encode_has_the_official_x264_settings(tmp_path, radio_crops):
    """Every x264 setting the official ROI files record, frame threads included (PyAV alone
    would use sliced threads and end with one)."""
    crops, fps = radio_crops
    data = paper.write_roi_video(crops[:30], fps, tmp_path / "roi.mp4").read_bytes()
    start = data.index(b"options: ") + len(b"options: ")
    assert data[start : data.index(b"\0", start)].decode() == OFFICIAL_X264_OPTIONS


# --- official files -----------------------------------------------------------------------------


def test_read_landmark_json(tmp_path):
    points = [[float(i), float(2 * i)] for i in range(68)]
    path = tmp_path / "clip.json"
    path.write_text(json.dumps({"0000.jpg": points, "0001.jpg": None, "0002.jpg": points}))
    lm = paper.read_landmark_json(path)
    assert lm.shape == (3, 68, 2) and np.isnan(lm[1]).all() and lm[2, 5].tolist() == [5.0, 10.0]


@pytest.mark.parametrize(
    "text, says",
    [
        ("{not json", "not a readable landmark JSON"),
        ("[1, 2]", "is an object"),
        ('{"0000.jpg": [[1, 2]]}', "entry '0000.jpg' is not 68 [x, y] points"),
        ('{"0000.jpg": "x"}', "entry '0000.jpg' is not 68"),
    ],
)
def test_bad_landmark_json_is_one_line(tmp_path, text, says):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(SpeechForensicsError, match=re.escape(says)) as e:
        paper.read_landmark_json(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)


def test_find_file_prefers_the_longest_path(tmp_path):
    (tmp_path / "a/b").mkdir(parents=True)
    (tmp_path / "a/b/clip.json").write_text("{}")
    (tmp_path / "clip.json").write_text("{}")
    found = paper.find_file(tmp_path, Path("/data/videos/a/b/clip.mp4"), ".json")
    assert found == tmp_path / "a/b/clip.json"
    assert paper.find_file(tmp_path, Path("/x/c/clip.mp4"), ".json") == tmp_path / "clip.json"
    assert paper.find_file(tmp_path, Path("other.mp4"), ".json") is None
    assert paper.find_file(None, Path("clip.mp4"), ".json") is None


def test_landmarks_of_another_video_are_refused(tmp_path):
    video = dev_clip("vexpress_RD_Radio10_0_clip_0.mp4")
    lm = paper.read_landmark_json(FIXTURE / "landmarks/vexpress_RD_Radio10_0_clip_0.json")
    _, frames = paper.source_frames(video)
    with pytest.raises(SpeechForensicsError, match="cover 70 frames but the video has 61"):
        paper.colour_crops(frames, np.concatenate([lm, lm[:9]]), video)


# --- against the official pipeline ----------------------------------------------------------------


def test_audio_is_what_ffmpeg_writes():
    """media.read_pcm16 gives the official 16 kHz wav (44.1/48 kHz stereo too): the same length
    and, per 40 ms, the same sum of |sample| but for a few samples 1 apart (measured: 2-16 of
    33k-106k samples per clip, FFmpeg 8's AAC decoder against 5.1's)."""
    for stem, ref in OFFICIAL.items():
        pcm = media.read_pcm16(dev_clip(f"{stem}.mp4")).astype(np.int64)
        assert len(pcm) == ref["wav_samples"], stem
        sums = np.add.reduceat(np.abs(pcm), np.arange(0, len(pcm), 640))
        diff = np.abs(sums - ref["wav_abs_sum_per_640"])
        assert diff.max() <= 4 and diff.sum() <= 32, (stem, diff.max(), diff.sum())


@pytest.mark.slow
@pytest.mark.parametrize("stem", sorted(OFFICIAL))
def test_scores_match_the_official_pipeline(stem, base_model):
    """The same landmark file -> the official score within TOLERANCE (README: Reproducing the
    paper has the measured differences); the frame counts exactly."""
    ref = OFFICIAL[stem]
    inputs = paper.PaperInputs(landmarks=FIXTURE / "landmarks")
    report = paper.judge(dev_clip(f"{stem}.mp4"), base_model, inputs)
    assert report["roi_source"].startswith("landmarks")
    assert (report["frames_video"], report["frames_audio"]) == (ref["T_video"], ref["T_audio"])
    assert abs(report["score"] - ref["score"]) <= TOLERANCE, (report["score"], ref["score"])
    np.testing.assert_allclose(report["offset_means"], ref["offsets"], atol=TOLERANCE)


@pytest.mark.slow
def test_paper_score_is_the_same_twice(base_model):
    """One clip judged twice in one process: the same score and offset means, to the bit."""
    video = dev_clip("vexpress_RD_Radio10_0_clip_0.mp4")
    inputs = paper.PaperInputs(landmarks=FIXTURE / "landmarks")
    first, second = (paper.judge(video, base_model, inputs) for _ in range(2))
    assert first["score"] == second["score"]
    assert first["offset_means"] == second["offset_means"]


def _write_wav(path: Path, pcm: np.ndarray) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.astype("<i2").tobytes())


@pytest.mark.slow
def test_rois_give_the_score_of_their_frames(tmp_path, base_model, fixture_checkpoints, capsys):
    """--rois: a mouth-ROI pair made the official way is scored as it stands; a broken one is
    one line and the batch goes on."""
    stem = "vexpress_RD_Radio10_0_clip_0"
    video = dev_clip(f"{stem}.mp4")
    lm = paper.read_landmark_json(FIXTURE / "landmarks" / f"{stem}.json")
    fps, frames = paper.source_frames(video)
    rois = tmp_path / "rois"
    rois.mkdir()
    paper.write_roi_video(paper.colour_crops(frames, lm, video), fps, rois / f"{stem}.mp4")
    _write_wav(rois / f"{stem}.wav", media.read_pcm16(video))
    broken = tmp_path / "videos/broken.mp4"
    broken.parent.mkdir()
    shutil.copy(video, broken)
    (rois / "broken.mp4").write_bytes(b"not a video")
    _write_wav(rois / "broken.wav", np.zeros(16000, np.int16))

    report = paper.judge(video, base_model, paper.PaperInputs(rois=rois))
    assert report["roi_source"] == f"official ROI {rois / f'{stem}.mp4'}"
    assert abs(report["score"] - OFFICIAL[stem]["score"]) <= TOLERANCE

    json_out = tmp_path / "out.json"
    checkpoint = str(fixture_checkpoints("base_pretrain"))
    args = ["detect", str(broken), str(video), "--checkpoint", checkpoint, "--protocol", "paper"]
    assert main([*args, "--rois", str(rois), "--json", str(json_out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "broken.mp4" in err[0], err
    results = json.loads(json_out.read_text())
    assert "error" in results[0] and results[1]["score"] == pytest.approx(report["score"], abs=1e-6)


@pytest.mark.slow
def test_evaluate_paper_protocol_from_official_landmarks(tmp_path, fixture_checkpoints, capsys):
    """evaluate --protocol paper --landmarks: the official scores; a landmark file of the wrong
    length is one line, and the rest of the list is scored."""
    stems = ["vexpress_RD_Radio10_0_clip_0", "lrs2_deepavsr_00008"]
    videos = tmp_path / "videos"
    landmarks = tmp_path / "landmarks"
    videos.mkdir()
    landmarks.mkdir()
    for stem in stems:
        shutil.copy(dev_clip(f"{stem}.mp4"), videos / f"{stem}.mp4")
        shutil.copy(FIXTURE / "landmarks" / f"{stem}.json", landmarks / f"{stem}.json")
    shutil.copy(dev_clip(f"{stems[0]}.mp4"), videos / "short landmarks.mp4")
    entries = json.loads((FIXTURE / "landmarks" / f"{stems[0]}.json").read_text())
    (landmarks / "short landmarks.json").write_text(json.dumps(dict(list(entries.items())[:50])))
    # 50 entries for 61 frames: the official code would crop 50 frames and score a shorter clip
    listing = tmp_path / "list.txt"
    labels = [OFFICIAL[s]["label"] for s in stems]
    lines = [f"{s}.mp4 {label}" for s, label in zip(stems, labels, strict=True)]
    listing.write_text("\n".join([*lines, "short landmarks.mp4 0"]) + "\n")
    checkpoint = str(fixture_checkpoints("base_pretrain"))
    args = ["evaluate", str(listing), "--root", str(videos), "--out", str(tmp_path / "run")]
    args += ["--checkpoint", checkpoint, "--protocol", "paper", "--landmarks", str(landmarks)]
    assert main([*args, "--quiet"]) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and "short landmarks.mp4" in err[0]
    assert "cover 50 frames but the video has 61" in err[0]
    assert "would read only 2 of these 3 videos" in captured.out
    summary = json.loads((tmp_path / "run/summary.json").read_text())
    assert summary["official_parser_keeps"] == 2 and summary["failures"] == 1
    records = [json.loads(line) for line in (tmp_path / "run/results.jsonl").open()]
    for record in records[:2]:
        stem = Path(record["file"]).stem
        assert record["protocol"] == "paper"
        assert abs(record["score"] - OFFICIAL[stem]["score"]) <= TOLERANCE
