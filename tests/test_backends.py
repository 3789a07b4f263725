"""Backends turn a prepared clip's face track and audio into two comparable feature streams."""

import dataclasses

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import backends, lite, scoring
from speechforensics.backends import (
    AVHUBERT_CONTEXT_FRAMES,
    AVHUBERT_FRONT_END_REACH,
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


# AV-HuBERT over long clips: overlapping windows (backends.avhubert_windows)

LONG_CLIPS = [  # real recordings, one speaker after another: 808 frames (32 s), three windows
    *(f"lrs2_deepavsr_{n}.mp4" for n in ("00001", "00004", "00008", "00016", "00022")),
    "pcavs_Pose_00067.mp4",
]


@pytest.fixture(scope="module")
def long_clip():
    """The LONG_CLIPS prepared and joined into one clip (crops and audio; the face track and info
    are the first clip's, which AVHubertBackend.streams does not read)."""
    clips = [prepare(need(SHARED / "media/dev" / name), max_seconds=None) for name in LONG_CLIPS]
    track = dataclasses.replace(
        clips[0].tracks[0], crops=np.concatenate([c.tracks[0].crops for c in clips])
    )
    return dataclasses.replace(
        clips[0], audio=np.concatenate([c.audio for c in clips]), tracks=[track]
    )


@pytest.mark.parametrize("frames", [1, 499, 500, 501, 801, 808, 7500])
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


def test_avhubert_windows_need_room_for_their_context():
    with pytest.raises(ValueError, match="must exceed twice context_frames"):
        AVHubertBackend("never-read.pt", window_frames=200, context_frames=100)


def test_avhubert_short_clip_is_one_pass_bit_for_bit(clip, fixture_checkpoints):
    """A clip no longer than the window runs exactly as before windows existed."""
    backend = AVHubertBackend(fixture_checkpoints("small_pretrain"))
    assert clip.info.frames < AVHUBERT_WINDOW_FRAMES
    visual, audio = backend.streams(clip, clip.tracks[0])
    assert visual.shape == audio.shape == (clip.info.frames, 64)
    video_input = video_features(clip.tracks[0].crops)[None, None]
    audio_input = audio_features(clip.audio).T[None]
    np.testing.assert_array_equal(visual, backend.model.extract_features(video=video_input)[0])
    np.testing.assert_array_equal(audio, backend.model.extract_features(audio=audio_input)[0])


def windowed_and_one_pass(backend: AVHubertBackend, clip) -> tuple[tuple, tuple, dict]:
    """streams() in windows, then in one pass, and the frames each part of the model was given
    in turn: {"front": [...], "encoder": [...]} (video stream first, then audio)."""
    model, calls = backend.model, {"front": [], "encoder": []}
    for part, module in [
        ("front", model.feature_extractor_video),  # video [1, 1, T, 88, 88]
        ("front", model.feature_extractor_audio),  # audio [1, 104, T]
        ("encoder", model.encoder),  # fused [1, T, D]
    ]:
        dim = 1 if part == "encoder" else 2
        module.register_forward_pre_hook(
            lambda _, args, p=part, d=dim: calls[p].append(args[0].shape[d])
        )
    windowed = backend.streams(clip, clip.tracks[0])
    backend.window_frames = len(clip.tracks[0].crops)  # the whole clip in one window
    return windowed, backend.streams(clip, clip.tracks[0]), calls


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_avhubert_windows_run_one_after_another(clip, fixture_checkpoints, monkeypatch):
    """Windows of 40 frames (8 of context) over the 75-frame clip: the front ends see each frame
    once (in blocks, with the 2 neighbours the 3D conv reads), the transformer one window at a
    time, and each window's central part is what the transformer gives for that window of the
    whole clip's front-end output."""
    backend = AVHubertBackend(
        fixture_checkpoints("small_pretrain"), window_frames=40, context_frames=8
    )
    crops, model = clip.tracks[0].crops, backend.model
    windows = avhubert_windows(len(crops), 40, 8)
    assert windows == [(0, 40, 0, 29), (18, 58, 29, 46), (35, 75, 46, 75)]
    windowed, one, calls = windowed_and_one_pass(backend, clip)
    assert calls == {"front": [31, 21, 31] * 2 + [75, 75], "encoder": [40] * 6 + [75, 75]}
    whole = [  # front ends over the whole clip at once
        model.fuse(None, video_features(crops)[None, None]),
        model.fuse(audio_features(clip.audio).T[None], None),
    ]
    for got, fused in zip(windowed, whole, strict=True):
        for start, stop, keep_start, keep_stop in windows:
            want = model.encoder(fused[:, start:stop], None, None)[0]
            np.testing.assert_allclose(
                got[keep_start:keep_stop], want[keep_start - start : keep_stop - start], atol=1e-5
            )
    assert not np.array_equal(windowed[0], one[0])  # windows do change the result a little
    monkeypatch.setattr(backends, "AVHUBERT_FRONT_END_REACH", 0)  # blocks blind to neighbours:
    backend.window_frames = 40
    blind = backend.streams(clip, clip.tracks[0])[0]
    assert np.abs(blind - windowed[0]).max() > 1e-3  # the 3D conv's reach matters


@pytest.mark.slow  # 1,600 frames through the ResNet: about 45 s each on 2 cores
@pytest.mark.parametrize("name", ["small_pretrain", "base_pretrain"])
def test_avhubert_windows_stay_close_to_one_pass(long_clip, fixture_checkpoints, name):
    """The real windows (500 frames, 100 of context) on 32 s of real speech, against one pass
    over the whole clip. Measured (fixture weights, random): per-frame cosine at least 0.982 and
    0.988 on average for audio, 0.998 and 0.9986 for video; clip scores 0.009 (BASE) and 0.017
    (small) apart. benchmarks/avhubert_windows.py measures up to 2,000 frames."""
    backend = AVHubertBackend(fixture_checkpoints(name))
    windowed, one, calls = windowed_and_one_pass(backend, long_clip)
    frames = len(long_clip.tracks[0].crops)
    assert calls["encoder"] == [AVHUBERT_WINDOW_FRAMES] * 6 + [frames] * 2  # 3 windows a stream
    assert sum(calls["front"][:3]) == frames + 4 * AVHUBERT_FRONT_END_REACH  # each frame once
    for got, want in zip(windowed, one, strict=True):
        cos = cosines(got, want)
        assert cos.min() > 0.97 and cos.mean() > 0.985, (cos.min(), cos.mean())
    scores = [scoring.video_score(scoring.sync_matrix(*streams)) for streams in (windowed, one)]
    assert abs(scores[0] - scores[1]) < 0.03, scores


# Devices, dtypes, calibrations, batches (load_backend, torch_settings, Remembered, streams_batch)


def test_bad_devices_and_dtypes_are_one_line():
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    cases = [
        (("lipsync-lite",), {"dtype": "bfloat16"}, "apply to the avhubert backend only"),
        (("lipsync-lite",), {"device": "cuda"}, "apply to the avhubert backend only"),
        (("avhubert", "never-read.pt"), {"device": "tpu"}, "use cpu, cuda or cuda:N"),
        (("avhubert", "never-read.pt"), {"dtype": "int8"}, "use one of float32, bfloat16"),
        (("avhubert", "never-read.pt"), {"device": f"cuda:{gpus}"}, f"sees {gpus} CUDA GPU"),
        (("avhubert", "never-read.pt"), {"device": "cpu", "dtype": "float16"}, "needs a GPU"),
    ]
    for args, kwargs, message in cases:
        with pytest.raises(SpeechForensicsError, match=message) as e:
            load_backend(*args, **kwargs)
        assert "\n" not in str(e.value)
    assert backends.torch_settings("cpu", "bfloat16") == ("cpu", torch.bfloat16)
    assert backends.torch_settings(None, None)[1] == torch.float32
    assert load_backend("lipsync-lite", device="cpu").name == "lipsync-lite"


def test_avhubert_has_no_thresholds_until_calibrated(fixture_checkpoints, tmp_path):
    from speechforensics import calibration

    checkpoint = fixture_checkpoints("small_pretrain")
    backend = load_backend("avhubert", checkpoint, device="cpu", dtype="bfloat16")
    assert backend.thresholds == scoring.Thresholds() and backend.calibration is None
    assert backend.device == "cpu" and str(backend.dtype) == "torch.bfloat16"
    scores = {f"c{i}.mp4": ("0" * 64, 0.1 * i) for i in range(10)}
    fitted = calibration.fit(scores, {2.0: [0.3] * 6}, [0.0, 0.5])
    beside = calibration.write(
        calibration.make("avhubert", checkpoint, "ours", fitted), calibration.beside(checkpoint)
    )
    try:
        backend = load_backend("avhubert", checkpoint)
        assert backend.calibration == beside
        assert backend.thresholds.clip == fitted["clip_threshold"]
        assert backend.thresholds.turn(2.0) == pytest.approx(0.3)
        with pytest.raises(SpeechForensicsError, match="not of lipsync-lite"):
            load_backend("lipsync-lite", calibration=beside)
        assert load_backend("avhubert", checkpoint, calibration=False).calibration is None
    finally:
        beside.unlink()


def test_lite_keeps_its_built_in_thresholds():
    backend = load_backend("lipsync-lite")
    built_in, limits = scoring.thresholds("lipsync-lite"), backend.thresholds
    assert (limits.clip, limits.turns, limits.segment, limits.doubt) == (
        built_in.clip, built_in.turns, built_in.segment, built_in.doubt
    )  # fmt: skip
    assert limits.clip == scoring.THRESHOLDS["lipsync-lite"]
    held_out = backend.model.provenance["cross_validation"]["scores"]  # for the error rates
    assert limits.genuine == tuple(held_out["genuine"].values()) and len(limits.forged) > 100
    assert backend.model_file == lite.PARAMS


def test_remembered_streams_judge_as_the_backend_does(clip):
    from speechforensics.backends import stream_requests
    from speechforensics.pipeline import judge

    backend, calls = LiteBackend(), []
    remembered = backends.Remembered(backend)
    original = backend.streams
    backend.streams = lambda c, t: calls.append(t.face.id) or original(c, t)
    remembered.fill(stream_requests(clip))
    assert len(calls) == len(clip.tracks)
    result = judge(clip, remembered)
    assert result == judge(clip, LiteBackend())
    # beyond what was filled, judge asked only for turns judged on less than their whole shot
    assert len(clip.tracks) <= len(calls) <= len(clip.tracks) + len(result["turns"])


@pytest.mark.parametrize(
    "name", ["small_pretrain", pytest.param("base_pretrain", marks=pytest.mark.slow)]
)
def test_avhubert_batch_equals_one_by_one(name, fixture_checkpoints):
    """Clips of different lengths through the model together (padded, masked): the features of
    each, as streams() gives them alone, to float rounding."""
    clips = [prepare(need(SHARED / "media/dev" / n)) for n in ("grid_lbax4n.mpg", CLIP_LONGER)]
    backend = AVHubertBackend(fixture_checkpoints(name), device="cpu")
    requests = [(c, c.tracks[0]) for c in clips]
    assert len({len(c.audio) for c in clips}) == 2  # padding is exercised
    for (v1, a1), (v2, a2) in zip(
        [backend.streams(*r) for r in requests], backend.streams_batch(requests), strict=True
    ):
        assert v1.shape == v2.shape and a1.shape == a2.shape
        np.testing.assert_allclose(v2, v1, atol=1e-4 * np.abs(v1).max())
        np.testing.assert_allclose(a2, a1, atol=1e-4 * np.abs(a1).max())


CLIP_LONGER = "pcavs_Input_00010.mp4"  # 4.3 s beside GRID's 3 s


@pytest.mark.skipif(
    not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU (none here)"
)
def test_cuda_bfloat16_agrees_with_cpu(clip, fixture_checkpoints):
    checkpoint = fixture_checkpoints("small_pretrain")
    cpu = AVHubertBackend(checkpoint, device="cpu").streams(clip, clip.tracks[0])
    gpu = AVHubertBackend(checkpoint, device="cuda", dtype="bfloat16")
    for a, b in zip(cpu, gpu.streams(clip, clip.tracks[0]), strict=True):
        assert cosines(a, b).mean() > 0.99
