"""Calibration files: thresholds from genuine scores, written whole, found for their model only."""

import json
import statistics

import numpy as np
import pytest

from speechforensics import calibration
from speechforensics.calibration import (
    FALSE_ALARM,
    MIN_CLIPS,
    MIN_TURN_PIECES,
    TURN_FALSE_ALARM,
    beside,
    check,
    find,
    fit,
    in_cache,
    make,
    read,
    write,
)
from speechforensics.errors import SpeechForensicsError
from speechforensics.lite import PARAMS


def genuine(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {f"clip{i}.mp4": (f"{i:064x}", float(s)) for i, s in enumerate(rng.normal(0.4, 0.1, n))}


@pytest.fixture
def model(tmp_path):
    """A model file: a copy of the shipped lipsync-lite parameters."""
    path = tmp_path / "params.npz"
    path.write_bytes(PARAMS.read_bytes())
    return path


def made(model, backend="lipsync-lite", protocol="ours", n=30):
    fitted = fit(genuine(n), {2.0: list(np.linspace(0, 1, 20)), 8.0: [0.5] * 3}, [0.1, 0.2, 0.3])
    return make(backend, model, protocol, fitted, settings={"device": "cpu"})


def test_fit_sets_the_quantiles_with_intervals_and_turns_by_a_normal():
    scores = genuine(40)
    values = np.array([s for _, s in scores.values()])
    pieces = {2.0: list(np.linspace(0.0, 1.0, 30)), 4.0: [0.4] * (MIN_TURN_PIECES - 1)}
    fitted = fit(scores, pieces, list(np.linspace(-1, 1, 101)))
    assert fitted["clip_threshold"] == pytest.approx(np.quantile(values, FALSE_ALARM))
    assert [r["false_alarm"] for r in fitted["rates"]] == [0.01, 0.05]
    for r in fitted["rates"]:
        low, high = r["interval"]
        assert low <= r["threshold"] <= high and low < high
    assert [t["seconds"] for t in fitted["turns"]] == [2.0]  # 4 s: too few pieces
    z = statistics.NormalDist().inv_cdf(1 - TURN_FALSE_ALARM)
    g = np.linspace(0.0, 1.0, 30)
    assert fitted["turns"][0]["threshold"] == pytest.approx(g.mean() - z * g.std())
    assert fitted["segment_threshold"] == pytest.approx(np.quantile(np.linspace(-1, 1, 101), 0.04))
    assert "far from 5%" in fitted["warnings"][0]  # 40 clips: too few for a stable threshold
    assert fit(genuine(calibration.STABLE_CLIPS), {}, [])["warnings"] == ()
    other = fit(scores, {}, [], false_alarm=0.02)
    assert other["clip_threshold"] == pytest.approx(np.quantile(values, 0.02))
    assert [r["false_alarm"] for r in other["rates"]] == [0.01, 0.02, 0.05]


def test_fit_refuses_too_few_clips():
    with pytest.raises(SpeechForensicsError, match=f"at least {MIN_CLIPS} needed"):
        fit(genuine(MIN_CLIPS - 1), {}, [])


def test_written_whole_and_read_back(model, tmp_path):
    calibrated = made(model)
    path = write(calibrated, tmp_path / "out" / "c.json")
    assert read(path) == calibrated
    data = json.loads(path.read_text())
    assert data["model_sha256"] == calibration.file_hash(model)
    assert data["backend"] == "lipsync-lite" and data["protocol"] == "ours"
    assert len(data["clips"]) == 30 and set(data["clips"][0]) == {"file", "sha256", "score"}
    assert data["created"].startswith("20")
    limits = calibrated.thresholds()
    assert limits.clip == calibrated.clip_threshold
    assert limits.turn(2.0) == calibrated.turns[0]["threshold"]
    assert limits.turn(1.0) is None and limits.segment == calibrated.segment_threshold
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["c.json"]  # no temporary left


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not a calibration file"),
        ('{"format": "other"}', "not a calibration file"),
        ('{"format": "speechforensics-calibration", "version": 99}', "format version 99"),
        ('{"format": "speechforensics-calibration", "version": 1}', "damaged calibration"),
    ],
)
def test_bad_files_are_one_line(tmp_path, text, message):
    path = tmp_path / "c.json"
    path.write_text(text)
    with pytest.raises(SpeechForensicsError, match=message) as e:
        read(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(SpeechForensicsError, match="no such calibration file"):
        read(tmp_path / "absent.json")


def test_a_calibration_for_another_model_backend_or_protocol_is_refused(model, tmp_path):
    path = write(made(model), tmp_path / "c.json")
    check(read(path), path, "lipsync-lite", model, "ours")  # its own: fine
    other = tmp_path / "other.npz"
    other.write_bytes(model.read_bytes()[:-1] + b"x")  # same size, other content
    cases = [
        ("avhubert", model, "ours", "a calibration of the lipsync-lite backend, not of avhubert"),
        ("lipsync-lite", model, "paper", "calibrated with the 'ours' protocol"),
        ("lipsync-lite", other, "ours", "made for another model file"),
    ]
    for backend, file, protocol, message in cases:
        with pytest.raises(SpeechForensicsError, match=message):
            check(read(path), path, backend, file, protocol)


def test_found_given_then_beside_then_in_the_cache(model, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert find("lipsync-lite", model, cache=cache) is None  # none anywhere
    hashed = []
    monkeypatch.setattr(calibration, "file_hash", lambda p: hashed.append(p) or _sha(p))
    assert find("lipsync-lite", model, cache=cache) is None and hashed == []  # nothing to match
    monkeypatch.undo()
    cached = write(made(model), in_cache("lipsync-lite", _sha(model), cache))
    assert find("lipsync-lite", model, cache=cache)[1] == cached
    assert find("avhubert", model, cache=cache) is None  # keyed by backend too
    near = write(made(model, n=31), beside(model))
    assert beside(model).name == "params.npz.calibration.json"
    found, where = find("lipsync-lite", model, cache=cache)
    assert where == near and len(found.clips) == 31
    assert find("lipsync-lite", model, protocol="paper", cache=cache) is None  # not its scores
    given = write(made(model, n=32), tmp_path / "given.json")
    assert find("lipsync-lite", model, given=given, cache=cache)[1] == given
    stale = write(made(model, protocol="paper"), tmp_path / "stale.json")
    with pytest.raises(SpeechForensicsError, match="protocol"):  # never skipped quietly
        find("lipsync-lite", model, given=stale, cache=cache)


def test_each_protocol_has_its_own_calibration(model, tmp_path):
    """One model, one calibration per protocol (beside it or in the cache), each found only for
    its protocol; one of the other protocol under a protocol's name is ignored, not used."""
    cache = tmp_path / "cache"
    assert beside(model, "paper").name == "params.npz.paper.calibration.json"
    assert in_cache("avhubert", "ab", cache, "paper").name == "avhubert-ab.paper.json"
    paper = write(
        made(model, protocol="paper", n=33), in_cache("lipsync-lite", _sha(model), cache, "paper")
    )
    assert find("lipsync-lite", model, cache=cache) is None  # ours: the paper one is not for it
    assert find("lipsync-lite", model, "paper", cache=cache)[1] == paper
    ours = write(made(model, n=34), beside(model))
    assert find("lipsync-lite", model, cache=cache)[1] == ours
    assert find("lipsync-lite", model, "paper", cache=cache)[1] == paper
    write(made(model, n=35), beside(model, "paper"))  # ours, written under the paper name
    assert find("lipsync-lite", model, "paper", cache=cache) is None


def _sha(path) -> str:
    from speechforensics.files import file_hash

    return file_hash(path)
