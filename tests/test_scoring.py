import csv
import re

import numpy as np
import pytest
import torch
from conftest import SHARED, need

from speechforensics.errors import SpeechForensicsError
from speechforensics.scoring import (
    MAX_SHIFT_FRAMES,
    MIN_SPEECH_SECONDS,
    Thresholds,
    Window,
    best_offset,
    gated_score,
    offset_ms,
    segments,
    speech_frames,
    speech_seconds,
    sync_matrix,
    timeline,
    video_score,
)

SCORING_REFERENCE = SHARED / "reference/preprocessing/scoring_reference.npz"
DEV = SHARED / "media/dev"
# Continuous speech, short GRID sentences with pauses, a long clip with pauses, a wide TV shot,
# and a loud clip with no pause at all (its quietest frame is speech).
VAD_CLIPS = [
    "pcavs_Audio_00015.mp4",
    "grid_bbaf2n.mpg",
    "lrs2_deepavsr_00016.mp4",
    "hyperlips_video2_video2.mp4",
    "pcavs_Pose_00067.mp4",
]
FPS = 25
SR = 16_000


# Sync matrix and clip score


@pytest.mark.parametrize("case", ["equal", "video_longer", "audio_longer", "short"])
def test_sync_matrix_matches_original(case):
    with np.load(need(SCORING_REFERENCE)) as npz:
        visual, audio = npz[f"{case}__visual"], npz[f"{case}__audio"]
        dist, score = npz[f"{case}__dist"], float(npz[f"{case}__score"])
    matrix = sync_matrix(visual, audio)
    assert matrix.dtype == np.float32 and matrix.shape == dist.shape
    np.testing.assert_allclose(matrix, dist, rtol=0, atol=1e-5)
    assert isinstance(video_score(matrix), float)
    assert abs(video_score(matrix) - score) < 1e-5
    tensors = sync_matrix(torch.from_numpy(visual), torch.from_numpy(audio))
    np.testing.assert_allclose(tensors, dist, rtol=0, atol=1e-5)


def shifted_features(shift, frames=80, dim=32, seed=0):
    """(visual, audio) where audio frame i + shift is visual frame i (audio later if shift > 0)."""
    x = np.random.default_rng(seed).standard_normal((frames + 40, dim)).astype(np.float32)
    return x[20 : 20 + frames], x[20 - shift : 20 - shift + frames]


@pytest.mark.parametrize("shift", [3, -4, 0, MAX_SHIFT_FRAMES])
def test_best_offset_finds_the_shift(shift):
    visual, audio = shifted_features(shift)
    matrix = sync_matrix(visual, audio)
    assert matrix.shape == (80, 2 * MAX_SHIFT_FRAMES + 1)
    assert best_offset(matrix) == shift
    assert offset_ms(best_offset(matrix)) == shift * 40


def test_sync_matrix_zero_padding_and_smaller_shift():
    visual, audio = shifted_features(2, frames=10)
    matrix = sync_matrix(visual, audio, max_shift=3)
    assert matrix.shape == (10, 7)
    assert matrix[0, 0] == 0 and matrix[-1, -1] == 0  # rows of zero padding give 0
    assert best_offset(matrix) == 2


def test_sync_matrix_rejects_mismatched_widths():
    with pytest.raises(SpeechForensicsError, match="width"):
        sync_matrix(np.ones((5, 8)), np.ones((5, 9)))
    with pytest.raises(SpeechForensicsError):
        sync_matrix(np.ones((0, 8)), np.ones((5, 8)))


# Timeline and segments


def broken_sync_matrix(frames=250, offset=2, low=(100, 150)):
    """10 s: strong sync at `offset` except a block of low similarity (4-6 s by default)."""
    matrix = np.full((frames, 2 * MAX_SHIFT_FRAMES + 1), 0.2, np.float32)
    matrix[:, MAX_SHIFT_FRAMES + offset] = 0.9
    matrix[low[0] : low[1], MAX_SHIFT_FRAMES + offset] = 0.1
    return matrix


def test_timeline_windows_cover_the_clip():
    matrix = broken_sync_matrix()
    windows = timeline(matrix, np.ones(250, bool), best_offset(matrix))
    assert best_offset(matrix) == 2
    assert len(windows) == (250 - 25) // 5 + 1
    assert windows[0] == Window(0.0, 1.0, pytest.approx(0.9), 1.0)
    assert windows[-1].end_s == 10.0
    assert windows[10].start_s == pytest.approx(2.0)
    assert windows[100 // 5].score == pytest.approx(0.1)  # window 4-5 s, inside the block


def test_segments_find_the_broken_block():
    matrix = broken_sync_matrix()
    windows = timeline(matrix, np.ones(250, bool), 2)
    (start, end), *rest = segments(windows, threshold=0.5)
    assert not rest
    assert start == pytest.approx(4.0, abs=0.11) and end == pytest.approx(6.0, abs=0.11)
    assert segments(windows, threshold=0.05) == []
    assert segments([], threshold=0.5) == []


def test_segments_two_blocks_and_silence():
    matrix = broken_sync_matrix(frames=500)
    matrix[300:350, MAX_SHIFT_FRAMES + 2] = 0.1  # a second break, 12-14 s
    speech = np.ones(500, bool)
    speech[100:150] = False  # the first break is silent: nothing to judge there
    windows = timeline(matrix, speech, 2)
    assert any(w.score is None for w in windows)
    assert all(w.score is None for w in windows if 4.2 <= w.start_s <= 4.8)
    (start, end), *rest = segments(windows, threshold=0.5)
    assert not rest
    assert start == pytest.approx(12.0, abs=0.11) and end == pytest.approx(14.0, abs=0.11)


def test_timeline_short_clip_and_bad_arguments():
    matrix = broken_sync_matrix(frames=12, low=(0, 0))
    (window,) = timeline(matrix, np.ones(12, bool), 2)
    assert (window.start_s, window.end_s, window.score) == (0.0, 12 / FPS, pytest.approx(0.9))
    with pytest.raises(SpeechForensicsError, match="offset"):
        timeline(matrix, np.ones(12, bool), MAX_SHIFT_FRAMES + 1)
    with pytest.raises(SpeechForensicsError, match="speech mask"):
        timeline(matrix, np.ones(13, bool), 0)


# Speech-gated score


def test_gated_score():
    matrix = broken_sync_matrix()
    assert gated_score(matrix, np.zeros(250, bool)) is None
    short = np.zeros(250, bool)
    short[: int(MIN_SPEECH_SECONDS * FPS) - 1] = True
    assert gated_score(matrix, short) is None
    assert gated_score(matrix, np.ones(250, bool)) == pytest.approx(video_score(matrix))
    speech = np.zeros(250, bool)
    speech[:100] = True  # only the synchronised part is speech
    assert gated_score(matrix, speech) == pytest.approx(0.9)
    assert speech_seconds(speech) == 4.0
    with pytest.raises(SpeechForensicsError, match="speech mask"):
        gated_score(matrix, speech[:-1])


# Speech activity


def clip(seconds=3.0):
    return np.zeros(int(seconds * SR), np.float32)


def noise(n, rms, seed=0):
    return (np.random.default_rng(seed).standard_normal(n) * rms).astype(np.float32)


def burst(background):
    """`background` plus a loud speech-like burst (noise modulated at 4 Hz) from 1.0 to 2.0 s."""
    t = np.arange(SR) / SR
    wav = background.copy()
    wav[SR : 2 * SR] += noise(SR, 0.1, seed=1) * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))
    return wav


def assert_speech_only_in_burst(speech):
    assert speech.shape == (75,) and speech.dtype == bool
    assert speech[26:49].all()  # 1.04-1.96 s
    assert not speech[:21].any() and not speech[54:].any()  # a few frames of hangover allowed


def test_vad_silence_and_faint_noise():
    assert not speech_frames(clip()).any()
    assert not speech_frames(noise(3 * SR, 0.001)).any()  # -60 dB: under the absolute floor
    assert speech_frames(noise(3 * SR, 0.01)).mean() < 0.1  # -40 dB steady: the noise floor
    assert speech_frames(clip(0)).shape == (0,)


def test_vad_finds_a_burst():
    assert_speech_only_in_burst(speech_frames(burst(clip())))
    assert_speech_only_in_burst(speech_frames(burst(noise(3 * SR, 0.003, seed=2))))


def test_vad_finds_a_tone():
    wav = clip()
    wav[SR : 2 * SR] = 0.3 * np.sin(2 * np.pi * 440 * np.arange(SR) / SR)
    assert_speech_only_in_burst(speech_frames(wav))


def test_vad_rejects_audio_that_is_not_whole_frames():
    with pytest.raises(SpeechForensicsError, match="640 samples"):
        speech_frames(np.zeros(1000, np.float32))


def manifest_speech_seconds(name):
    with open(need(DEV / "MANIFEST.tsv"), newline="") as f:
        row = next(r for r in csv.DictReader(f, delimiter="\t") if r["file"] == name)
    return float(re.search(r"VAD speech ([\d.]+)s", row["notes"]).group(1))


@pytest.mark.parametrize("name", VAD_CLIPS)
def test_vad_on_dev_clips(name):
    from speechforensics.media import read_audio

    audio = read_audio(need(DEV / name))
    seconds = audio.size / SR
    ours, reference = speech_seconds(speech_frames(audio)), manifest_speech_seconds(name)
    assert abs(ours - reference) <= 0.3 * seconds, (ours, reference, seconds)


def test_thresholds_verdict_with_a_doubt_band_and_error_rates():
    limits = Thresholds(clip=0.3, doubt=0.2)  # uncertain up to 0.3 + 0.2 / sqrt(s of speech)
    assert limits.band(4.0) == (0.3, 0.4) and limits.band(0.25) == (0.3, 0.5)  # floor: 1 s
    assert [limits.verdict(s, 4.0) for s in (0.1, 0.3, 0.399, 0.4)] == [
        "fake", "uncertain", "uncertain", "real"
    ]  # fmt: skip
    assert limits.verdict(0.399, 100.0) == "real"  # 0.02 wide with 100 s of speech
    assert Thresholds(clip=0.3).verdict(0.29) == "fake" and Thresholds(clip=0.3).band(4) is None
    assert Thresholds().verdict(0.9) == "inconclusive"
    assert limits.error_rates(0.3) is None  # no held-out scores known
    known = Thresholds(0.3, genuine=(0.2, 0.4, 0.5, 0.6), forged=(0.0, 0.1, 0.3, 0.35))
    assert known.error_rates(0.3) == {"genuine_at_or_below": 0.25, "forged_at_or_above": 0.5}
