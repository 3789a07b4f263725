"""cache.py: a cached clip is the prepared clip, entries are keyed apart and rebuilt if damaged."""

import numpy as np
from conftest import SHARED, need

from speechforensics import cache, pipeline

CLIP = SHARED / "media/dev/grid_bbaf2n.mpg"


def test_round_trip_keys_and_damage(tmp_path, monkeypatch):
    clip = need(CLIP)
    fresh, cached = cache.load_prepared(clip, tmp_path, max_seconds=2)
    assert not cached and len(list(tmp_path.glob("*.npz"))) == 1
    again, cached = cache.load_prepared(clip, tmp_path, max_seconds=2)
    assert cached and again.info == fresh.info
    np.testing.assert_array_equal(again.audio, fresh.audio)
    for a, b in zip(again.tracks, fresh.tracks, strict=True):
        np.testing.assert_array_equal(a.crops, b.crops)
        np.testing.assert_array_equal(a.missing, b.missing)
        np.testing.assert_array_equal(a.face.landmarks, b.face.landmarks)
        assert a.face.id == b.face.id and a.summary() == b.summary()
    no_crops, cached = cache.load_prepared(clip, tmp_path, max_seconds=2, crops=False)
    assert not cached and no_crops.tracks[0].crops is None
    cache.load_prepared(clip, tmp_path, max_seconds=2, perturbation="CC:1")
    assert len(list(tmp_path.glob("*.npz"))) == 3  # crops, no crops, perturbed: three entries
    for entry in tmp_path.glob("*.npz"):
        entry.write_bytes(b"damaged")
    calls = []
    real = pipeline.prepare
    monkeypatch.setattr(pipeline, "prepare", lambda *a, **k: calls.append(1) or real(*a, **k))
    rebuilt, cached = cache.load_prepared(clip, tmp_path, max_seconds=2)
    assert not cached and calls == [1]
    np.testing.assert_array_equal(rebuilt.tracks[0].crops, fresh.tracks[0].crops)
