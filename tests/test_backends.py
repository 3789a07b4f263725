"""Backends turn a prepared clip's face track and audio into two comparable feature streams."""

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import lite
from speechforensics.backends import BACKENDS, AVHubertBackend, LiteBackend, load_backend
from speechforensics.detect import prepare
from speechforensics.errors import SpeechForensicsError

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
