"""Backends turn a prepared clip's face track and audio into two comparable feature streams."""

import dataclasses

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import lite, scoring
from speechforensics.backends import (
    AVHUBERT_CONTEXT_FRAMES,
    AVHUBERT_WINDOW_FRAMES,
    BACKENDS,
    AVHubertBackend,
    LiteBackend,
    avhubert_windows,
    load_backend,
)
from speechforensics.errors import SpeechForensicsError
from speechforensics.features import audio_features, video_features
from speechforensics.pipeline import prepare

CLIP = SHARED / "media/dev/grid_lbax4n.mpg"


@pytest.fixture(scope="module")
def clip():
    return prepare(need(CLIP))


def test_lite_streams_are_the_fitted_width(clip):
    visual, audio = LiteBackend().streams(clip, clip.tracks[0])
    assert visual.shape == audio.shape == (clip.info.frames, lite.CANONICAL_DIMS)
    assert np.isfinite(visual).all() and np.isfinite(audio).all()


def test_load_backend_default_and_choices(tmp_path, monkeypatch):
    monkeypatch.delenv("SPEECHFORENSICS_CHECKPOINT", raising=False)
    assert load_backend().name == BACKENDS[0] == "lipsync-lite"
    with pytest.raises(SpeechForensicsError, match="needs a checkpoint"):
        load_backend("avhubert")
    with pytest.raises(SpeechForensicsError, match="unknown backend 'timing'"):
        load_backend("timing")
    for backend in (LiteBackend, AVHubertBackend):  # people read these
        assert "sees" in backend.about and backend.name in backend.about


def test_avhubert_streams_have_the_model_width(clip, fixture_checkpoints):
    backend = AVHubertBackend(fixture_checkpoints("small_pretrain"))
    visual, audio = backend.streams(clip, clip.tracks[0])
    assert visual.shape == audio.shape == (clip.info.frames, 64)
    assert np.isfinite(visual).all() and np.isfinite(audio).all()


# AV-HuBERT over long clips: windows (backends.avhubert_windows)

LONG_CLIPS = [  # real recordings, one speaker after another: 808 frames (32 s), three windows
    *(f"lrs2_deepavsr_{n}.mp4" for n in ("00001", "00004", "00008", "00016", "00022")),
    "pcavs_Pose_00067.mp4",
]


@pytest.fixture(scope="module")
def long_clip():
    """The LONG_CLIPS prepared and joined into one clip (crops and audio; the face track and info
    are the first clip's, which AVHubertBackend.streams does not read)."""
    clips = [prepare(need(SHARED / "media/dev" / name), max_seconds=None) for name in LONG_CLIPS]
    crops = np.concatenate([c.tracks[0].crops for c in clips])
    track = dataclasses.replace(clips[0].tracks[0], crops=crops)
    return dataclasses.replace(
        clips[0], audio=np.concatenate([c.audio for c in clips]), tracks=[track]
    )


@pytest.mark.parametrize("frames", [1, 499, 500, 501, 801, 1236, 7500])
def test_avhubert_windows_tile_the_clip(frames):
    windows = avhubert_windows(frames)
    assert windows[0][2] == 0 and windows[-1][3] == frames
    kept_stops, kept_starts = [w[3] for w in windows[:-1]], [w[2] for w in windows[1:]]
    assert kept_stops == kept_starts  # the kept parts tile the clip: each frame once
    if frames <= AVHUBERT_WINDOW_FRAMES:
        assert windows == [(0, frames, 0, frames)]
        return
    for i, (start, stop, keep_start, keep_stop) in enumerate(windows):
        assert stop - start == AVHUBERT_WINDOW_FRAMES and 0 <= start and stop <= frames
        assert i == 0 or keep_start - start >= AVHUBERT_CONTEXT_FRAMES
        assert i == len(windows) - 1 or stop - keep_stop >= AVHUBERT_CONTEXT_FRAMES


def test_avhubert_short_clip_is_one_pass_bit_for_bit(clip, fixture_checkpoints):
    """A clip no longer than the window runs exactly as before windows existed."""
    backend = AVHubertBackend(fixture_checkpoints("small_pretrain"))
    track = clip.tracks[0]
    video = video_features(track.crops)[None, None]
    audio = audio_features(clip.audio).T[None]
    expected = [backend.model.extract_features(video=video)[0].numpy()]
    expected.append(backend.model.extract_features(audio=audio)[0].numpy())
    for window in (AVHUBERT_WINDOW_FRAMES, clip.info.frames):  # shorter than, equal to the window
        backend.window_frames, backend.context_frames = window, 0
        for got, want in zip(backend.streams(clip, track), expected, strict=True):
            np.testing.assert_array_equal(got, want)


def stream_deviation(one: np.ndarray, windowed: np.ndarray) -> tuple[float, float]:
    """(max |difference|, lowest per-frame cosine) of windowed features against one pass."""
    cos = (one * windowed).sum(1) / (np.linalg.norm(one, axis=1) * np.linalg.norm(windowed, axis=1))
    return float(np.abs(windowed - one).max()), float(cos.min())


def windowed_and_one_pass(backend: AVHubertBackend, clip) -> tuple[list, list, list]:
    """streams() in windows and in one pass, and the frame counts of every model call."""
    calls, extract = [], backend.model.extract_features

    def counted(**kwargs):
        x = kwargs.get("video", kwargs.get("audio"))
        calls.append(x.shape[2] if "video" in kwargs else x.shape[-1])
        return extract(**kwargs)

    backend.model.extract_features = counted
    windowed = backend.streams(clip, clip.tracks[0])
    backend.window_frames = len(clip.tracks[0].crops)  # the whole clip in one window
    one = backend.streams(clip, clip.tracks[0])
    return windowed, one, calls


def test_avhubert_windows_stay_close_to_one_pass(long_clip, fixture_checkpoints):
    backend = AVHubertBackend(fixture_checkpoints("small_pretrain"))
    windowed, one, calls = windowed_and_one_pass(backend, long_clip)
    frames = len(long_clip.tracks[0].crops)
    windows = len(avhubert_windows(frames))
    assert windows == 3 and calls == [AVHUBERT_WINDOW_FRAMES] * 2 * windows + [frames] * 2
    for got, want in zip(windowed, one, strict=True):
        max_diff, min_cos = stream_deviation(want, got)
        print(max_diff, min_cos)
    scores = [scoring.video_score(scoring.sync_matrix(*streams)) for streams in (windowed, one)]
    print(scores)
