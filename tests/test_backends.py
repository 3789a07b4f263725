"""Backends turn a prepared clip's face track and audio into two comparable feature streams."""

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics.backends import (
    AVHubertBackend,
    TimingBackend,
    _context,
    loudness_db,
    mouth_opening,
)
from speechforensics.detect import prepare
from speechforensics.features import SAMPLES_PER_FRAME

CLIP = SHARED / "media/dev/grid_lbax4n.mpg"


@pytest.fixture(scope="module")
def clip():
    return prepare(need(CLIP))


def test_context_windows_are_local_correlations():
    t = np.arange(40, dtype=float)
    a, b = np.sin(t / 3), np.sin(t / 3)
    va, vb = _context(a), _context(-3 * b + 7)  # same shape, flipped, scaled and shifted
    cos = (va * vb).sum(1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
    assert va.shape == (40, 13) and np.allclose(va.mean(1), 0, atol=1e-6)
    assert np.allclose(cos, -1, atol=1e-5)


def test_loudness_per_video_frame():
    audio = np.zeros(10 * SAMPLES_PER_FRAME, np.float32)
    audio[3 * SAMPLES_PER_FRAME : 4 * SAMPLES_PER_FRAME] = 0.1
    level = loudness_db(audio)
    assert level.shape == (10,) and level[3] == pytest.approx(-20, abs=0.01)
    assert level[0] == pytest.approx(-80, abs=0.01)


def test_mouth_opening_follows_the_lips(clip):
    opening = mouth_opening(np.nan_to_num(clip.tracks[0].face.landmarks))
    assert opening.shape == (clip.info.frames,)
    assert 0 <= opening.min() < 0.05 < opening.max() < 1  # closed and open, relative to the eyes


def test_timing_streams_move_with_speech(clip):
    visual, audio = TimingBackend().streams(clip, clip.tracks[0])
    assert visual.shape == audio.shape == (clip.info.frames, 13)
    assert visual.dtype == audio.dtype == np.float32


def test_avhubert_streams_have_the_model_width(clip, fixture_checkpoints):
    backend = AVHubertBackend(fixture_checkpoints("small_pretrain"))
    visual, audio = backend.streams(clip, clip.tracks[0])
    assert visual.shape == audio.shape == (clip.info.frames, 64)
    assert np.isfinite(visual).all() and np.isfinite(audio).all()
