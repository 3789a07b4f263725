"""perturb.py: every distortion changes frames (or audio) as specified, and deterministically."""

import itertools

import cv2
import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import media, perturb
from speechforensics.errors import SpeechForensicsError
from speechforensics.features import SAMPLE_RATE
from speechforensics.perturb import Perturbation
from speechforensics.pipeline import prepare

CLIP = SHARED / "media/dev/grid_lbax4n.mpg"  # 3 s, 360x288


@pytest.fixture(scope="module")
def frames():
    return list(media.read_frames(need(CLIP), max_seconds=1.2))


def _reference_ycbcr(bgr):
    """DeeperForensics-1.0's bgr2ycbcr, restated as the oracle."""
    ycrcb = cv2.cvtColor(bgr.astype(np.float32), cv2.COLOR_BGR2YCR_CB)
    ycbcr = ycrcb[:, :, (0, 2, 1)].copy()
    ycbcr[:, :, 0] = (ycbcr[:, :, 0] * 219 + 16) / 255
    ycbcr[:, :, 1:] = (ycbcr[:, :, 1:] * 224 + 16) / 255
    return ycbcr


def _reference_bgr(ycbcr):
    out = ycbcr.astype(np.float32).copy()
    out[:, :, 0] = (out[:, :, 0] * 255 - 16) / 219
    out[:, :, 1:] = (out[:, :, 1:] * 255 - 16) / 224
    return cv2.cvtColor(out[:, :, (0, 2, 1)].copy(), cv2.COLOR_YCR_CB2BGR)


@pytest.mark.parametrize("level", [1, 3, 5])
def test_saturation_matches_deeperforensics(frames, level):
    rgb, scale = frames[0], perturb.PARAMETERS["CS"][level - 1]
    ycbcr = _reference_ycbcr(rgb[:, :, ::-1])
    ycbcr[:, :, 1:] = 0.5 + (ycbcr[:, :, 1:] - 0.5) * scale
    expected = np.clip(_reference_bgr(ycbcr), 0, 255).astype(np.uint8)[:, :, ::-1]
    out = Perturbation("CS", level).frame(rgb, 0)
    assert np.abs(out.astype(int) - expected).max() <= 1  # float32 rounding at .0 boundaries
    if scale == 0:  # level 5: grey
        spread = out.max(axis=2).astype(int) - out.min(axis=2)
        assert spread.max() <= 2


def test_contrast_blur_and_pixelation_are_the_published_operations(frames):
    rgb = frames[0]
    np.testing.assert_array_equal(
        Perturbation("CC", 2).frame(rgb, 0), (rgb.astype(np.float32) * 0.725).astype(np.uint8)
    )
    np.testing.assert_array_equal(
        Perturbation("GB", 4).frame(rgb, 0), cv2.GaussianBlur(rgb, (17, 17), 17 / 6)
    )
    out = Perturbation("JPEG", 5).frame(rgb, 0)  # factor 6: 60x48 pixels blown up
    small = cv2.resize(rgb, (60, 48))
    np.testing.assert_array_equal(out, cv2.resize(small, (360, 288)))
    assert (
        np.abs(np.diff(out.astype(int), axis=1)).mean()
        < np.abs(np.diff(rgb.astype(int), axis=1)).mean()
    )


def test_blocks_are_grey_random_and_repeatable(frames):
    rgb = frames[0]
    p = Perturbation("BW", 5, seed=3)
    out = p.frame(rgb, 7)
    changed = np.any(out != rgb, axis=2)
    assert (out[changed] == perturb.BLOCK_GREY).all()
    assert 0 < changed.sum() <= 80 * perturb.BLOCK_PX**2  # 288 px: one 256 px unit, 80 blocks
    np.testing.assert_array_equal(p.frame(rgb, 7), out)  # same seed and frame: same blocks
    assert not np.array_equal(p.frame(rgb, 8), out)  # the next frame: new places
    assert not np.array_equal(Perturbation("BW", 5, seed=4).frame(rgb, 7), out)
    small = Perturbation("BW", 1).frame(np.zeros((160, 160, 3), np.uint8), 0)
    assert (small == perturb.BLOCK_GREY).any()  # frames under 256 px are occluded too


@pytest.mark.parametrize("level", [1, 4])
def test_colour_noise_has_the_published_strength(level):
    grey = np.full((200, 200, 3), 128, np.uint8)
    variance = perturb.PARAMETERS["GNC"][level - 1]
    out = Perturbation("GNC", level, seed=1).frame(grey, 0).astype(np.float32)
    luma = cv2.cvtColor(out, cv2.COLOR_RGB2YCrCb)[:, :, 0]
    # variance v in the original's units is 255^2 / 219 * sqrt(v) grey levels of Y
    assert luma.std() == pytest.approx(255**2 / 219 * np.sqrt(variance), rel=0.1)
    again = Perturbation("GNC", level, seed=1).frame(grey, 0)
    np.testing.assert_array_equal(again, out.astype(np.uint8))


def test_video_compression_is_streamed_deterministic_and_graded(frames):
    clean = np.stack(frames)
    errors = []
    for level in (1, 5):
        p = Perturbation("VC", level)
        out = np.stack(list(p.frames(iter(frames))))
        assert out.shape == clean.shape
        np.testing.assert_array_equal(np.stack(list(p.frames(frames))), out)
        errors.append(np.abs(out.astype(int) - clean).mean())
    assert 0 < errors[0] < errors[1]  # CRF 30 loses less than CRF 40
    odd = np.stack(list(Perturbation("VC", 1).frames(f[:-1, :-3] for f in frames[:5])))
    assert odd.shape == (5, 287, 357, 3)


def test_audio_noise_at_its_snr():
    rng = np.random.default_rng(0)
    audio = (0.1 * np.sin(np.arange(SAMPLE_RATE * 2) * 0.05)).astype(np.float32)
    for level, snr in enumerate(perturb.PARAMETERS["noise"], 1):
        out = Perturbation("noise", level, seed=5).audio(audio)
        measured = 10 * np.log10(np.mean(audio**2) / np.mean((out - audio) ** 2))
        assert measured == pytest.approx(snr, abs=0.3)
    assert rng is not None


def _tones(seconds=1.5):
    t = np.arange(int(SAMPLE_RATE * seconds)) / SAMPLE_RATE
    return (0.2 * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 5000 * t)).astype(
        np.float32
    ) * np.minimum(1, t * 4)


def _band(audio, lo, hi):
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    freqs = np.fft.rfftfreq(len(audio), 1 / SAMPLE_RATE)
    return spectrum[(freqs >= lo) & (freqs < hi)].sum()


@pytest.mark.parametrize("kind", ["mp3", "aac"])
def test_codec_round_trip_keeps_length_and_timing(kind):
    audio = _tones()
    out = Perturbation(kind, 1).audio(audio)
    assert out.shape == audio.shape and out.dtype == np.float32
    assert np.corrcoef(out[4000:-4000], audio[4000:-4000])[0, 1] > 0.9  # lined up again
    worst = Perturbation(kind, 5).audio(audio)
    assert np.mean((worst - audio) ** 2) > np.mean((out - audio) ** 2)


def test_resampling_removes_what_the_low_rate_cannot_hold():
    audio = _tones()
    out = Perturbation("resample", 2).audio(audio)  # 8 kHz: nothing above 4 kHz survives
    assert out.shape == audio.shape
    assert _band(out, 4500, 5500) < 0.01 * _band(audio, 4500, 5500)
    assert _band(out, 400, 480) > 0.8 * _band(audio, 400, 480)
    assert np.corrcoef(out[4000:-4000], audio[4000:-4000])[0, 1] > 0.8


def test_frame_rate_conversion_repeats_the_frames_a_slower_camera_took(frames):
    numbered = [np.full((4, 4, 3), i, np.uint8) for i in range(50)]
    shown = [int(f[0, 0, 0]) for f in Perturbation("fps", 4).frames(numbered)]  # a 12 fps camera
    assert len(shown) == 50 and shown[:7] == [0, 0, 0, 3, 3, 5, 5]
    assert len(set(shown)) == 24 and all(b >= a for a, b in itertools.pairwise(shown))
    assert all(s <= i for i, s in enumerate(shown))  # never a frame from the future
    order = [int(f[0, 0, 0]) for f in Perturbation("fps", 1).frames(numbered[: len(frames)])]
    assert len(set(order)) == len(frames) - 2  # 24 fps: one frame a second repeated (1.2 s)
    real = list(Perturbation("fps", 1).frames(frames))
    assert all(np.array_equal(r, frames[i]) for r, i in zip(real, order, strict=True))


def test_reverb_keeps_level_and_timing_and_smears_with_the_room():
    audio = _tones()
    out = [Perturbation("reverb", level, seed=3).audio(audio) for level in (1, 5)]
    for o in out:
        assert o.shape == audio.shape and o.dtype == np.float32
        assert np.sqrt(np.mean(o**2)) == pytest.approx(np.sqrt(np.mean(audio**2)), rel=0.05)
    corr = [np.corrcoef(o, audio)[0, 1] for o in out]
    assert corr[0] > corr[1] > 0.3  # a longer echo smears more; the direct sound stays
    np.testing.assert_array_equal(Perturbation("reverb", 5, seed=3).audio(audio), out[1])


def test_parse_and_the_35():
    assert perturb.parse("gb:3", seed=2) == Perturbation("GB", 3, 2)
    assert perturb.parse("JPEG:5").parameter == 6
    assert len(perturb.all_video()) == 35 and len({p.spec for p in perturb.all_video()}) == 35
    for bad in ("GB", "GB:0", "GB:6", "fog:1", "GB:x"):
        with pytest.raises(SpeechForensicsError):
            perturb.parse(bad)
    assert not Perturbation("noise", 1).is_video and Perturbation("VC", 1).is_video


def test_prepare_sees_the_same_distorted_frames_in_both_passes():
    clip = need(CLIP)
    p = Perturbation("BW", 5, seed=11)
    a = prepare(clip, max_seconds=2, perturbation=p)
    b = prepare(clip, max_seconds=2, perturbation=p)
    clean = prepare(clip, max_seconds=2)
    np.testing.assert_array_equal(a.tracks[0].crops, b.tracks[0].crops)
    np.testing.assert_array_equal(a.tracks[0].face.landmarks, b.tracks[0].face.landmarks)
    assert not np.array_equal(a.tracks[0].crops, clean.tracks[0].crops)
    noisy = prepare(clip, max_seconds=2, perturbation=Perturbation("noise", 5))
    assert not np.array_equal(noisy.audio, clean.audio)
    np.testing.assert_array_equal(noisy.tracks[0].crops, clean.tracks[0].crops)
