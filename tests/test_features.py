import numpy as np
import pytest
import torch
from conftest import AVHUBERT_FIXTURES

from speechforensics.errors import SpeechForensicsError
from speechforensics.features import (
    AUDIO_FEAT_DIM,
    FBANK_BANDS,
    MODEL_CROP_PX,
    audio_features,
    log_filterbank,
    stack_frames,
    video_features,
)

INPUTS = AVHUBERT_FIXTURES / "inputs_T30.npz"
needs_fixture = pytest.mark.skipif(
    not INPUTS.exists(), reason=f"reference fixture {INPUTS} is absent (it lives outside the repo)"
)

# Odd lengths around the first window (400 samples) and hop (160 samples), and a 3 s clip.
ORACLE_LENGTHS = [1, 2, 159, 399, 400, 401, 559, 560, 561, 48_000]


@pytest.fixture(scope="module")
def inputs():
    with np.load(INPUTS) as npz:
        return dict(npz)


def oracle(wav):
    psf = pytest.importorskip("python_speech_features")
    return psf.logfbank(wav, samplerate=16000).astype(np.float32)


@needs_fixture
def test_log_filterbank_matches_fixture(inputs):
    assert np.array_equal(log_filterbank(inputs["wav_i16"]), inputs["fbank26"])


@needs_fixture
def test_stack_frames_matches_fixture(inputs):
    assert np.array_equal(stack_frames(inputs["fbank26"]), inputs["stacked104"])


@needs_fixture
def test_audio_features_match_fixture_bit_exactly(inputs):
    audio = audio_features(inputs["wav_i16"])
    assert audio.dtype == torch.float32 and audio.shape == (30, AUDIO_FEAT_DIM)
    assert np.array_equal(audio.T[None].numpy(), inputs["audio"])


@needs_fixture
def test_video_features_match_fixture_bit_exactly(inputs):
    video = video_features(inputs["video_u8"])
    assert video.dtype == torch.float32 and video.shape == (30, MODEL_CROP_PX, MODEL_CROP_PX)
    assert np.array_equal(video[None, None].numpy(), inputs["video"])


@pytest.mark.parametrize("n", ORACLE_LENGTHS)
def test_log_filterbank_bit_identical_to_oracle(n):
    rng = np.random.default_rng(n)
    full_scale = rng.integers(-32768, 32768, n).astype(np.int16)
    quiet = (rng.standard_normal(n) * 300).astype(np.int16)
    for wav in (full_scale, quiet):
        assert np.array_equal(log_filterbank(wav), oracle(wav))


@pytest.mark.parametrize("n", [1, 400, 401, 1000])
def test_silence_takes_eps_path_like_oracle(n):
    wav = np.zeros(n, dtype=np.int16)
    got = log_filterbank(wav)
    assert np.array_equal(got, oracle(wav))
    assert np.all(got == np.float32(np.log(np.finfo(np.float64).eps)))


def test_float_input_is_full_scale_and_equals_int16_input():
    """media gives float samples in [-1, 1); the filterbank takes them as they are."""
    wav = np.random.default_rng(0).integers(-32768, 32768, 4000).astype(np.int16)
    scaled = (wav / 32768).astype(np.float32)
    assert np.array_equal(log_filterbank(wav), log_filterbank(scaled))
    assert np.array_equal(audio_features(wav), audio_features(scaled))
    assert not np.array_equal(log_filterbank(wav), log_filterbank(wav.astype(np.float64)))


@pytest.mark.parametrize(("n_samples", "n_frames"), [(400, 1), (401, 2), (560, 2), (19200, 119)])
def test_frame_count(n_samples, n_frames):
    assert log_filterbank(np.ones(n_samples)).shape == (n_frames, FBANK_BANDS)


@pytest.mark.parametrize(
    ("n_frames", "n_rows"), [(1, 1), (3, 1), (4, 1), (5, 2), (8, 2), (119, 30)]
)
def test_stack_frames_pads_with_zero_rows(n_frames, n_rows):
    fbank = np.arange(1, n_frames * FBANK_BANDS + 1, dtype=np.float32).reshape(n_frames, -1)
    stacked = stack_frames(fbank)
    assert stacked.shape == (n_rows, AUDIO_FEAT_DIM) and stacked.dtype == np.float32
    flat = stacked.reshape(-1, FBANK_BANDS)
    assert np.array_equal(flat[:n_frames], fbank)
    assert np.all(flat[n_frames:] == 0)
    # Row t is the concatenation of frames 4t .. 4t+3.
    assert np.array_equal(stacked[0, FBANK_BANDS : 2 * FBANK_BANDS], flat[1])


def test_audio_features_are_layer_normalised():
    wav = np.random.default_rng(0).integers(-3000, 3000, 16000).astype(np.int16)
    audio = audio_features(wav).double()
    assert audio.shape == (25, AUDIO_FEAT_DIM)
    zeros, ones = torch.zeros(25, dtype=torch.float64), torch.ones(25, dtype=torch.float64)
    assert torch.allclose(audio.mean(1), zeros, atol=1e-6)
    assert torch.allclose(audio.var(1, unbiased=False), ones, atol=1e-4)


def test_video_crop_offsets_floor_half_the_excess():
    frames = np.zeros((2, 97, 100), dtype=np.uint8)
    frames[:, 4:92, 6:94] = 255  # 97 - 88 = 9 -> row offset 4; 100 - 88 = 12 -> column offset 6
    video = video_features(frames)
    assert video.shape == (2, MODEL_CROP_PX, MODEL_CROP_PX)
    assert torch.all(video == video.max())


@pytest.mark.parametrize(
    "wav", [np.zeros(0, np.int16), np.zeros((2, 400), np.int16), np.array(["a", "b"])]
)
def test_bad_audio_raises(wav):
    with pytest.raises(SpeechForensicsError):
        audio_features(wav)


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((2, 96, 96, 3), np.uint8),
        np.zeros((96, 96), np.uint8),
        np.zeros((2, 96, 96), np.float32),
        np.zeros((2, 87, 96), np.uint8),
        np.zeros((2, 96, 80), np.uint8),
        np.zeros((0, 96, 96), np.uint8),
    ],
)
def test_bad_video_raises(frames):
    with pytest.raises(SpeechForensicsError):
        video_features(frames)


def test_stack_frames_rejects_non_2d():
    with pytest.raises(SpeechForensicsError):
        stack_frames(np.zeros(26, np.float32))
