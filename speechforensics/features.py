"""What the model expects as input: audio filterbank features and normalised mouth crops.

Audio: 16 kHz samples -> 26 log mel filterbank energies every 10 ms (bit-identical to
``python_speech_features.logfbank``) -> 4 frames stacked into one 104-value frame at 25 Hz ->
per-frame layer norm. Video: 25 fps grayscale mouth crops -> centre 88x88 -> mean/std normalised.
"""

import functools
from typing import TYPE_CHECKING

import numpy as np

from speechforensics.errors import SpeechForensicsError

if TYPE_CHECKING:
    import torch

# Audio
SAMPLE_RATE = 16_000  # Hz
PCM_FULL_SCALE = 32768  # int16 sample value of 1.0: float samples are int16 / 32768, exactly
FBANK_BANDS = 26  # mel filters
FBANK_WIN_SAMPLES = 400  # samples per analysis window (25 ms at 16 kHz), rectangular
FBANK_HOP_SAMPLES = 160  # samples between windows (10 ms at 16 kHz -> 100 frames per second)
FBANK_NFFT = 512  # FFT points (windows are zero-padded to this length)
FBANK_LOW_HZ = 0.0  # Hz, lower edge of the lowest mel filter
FBANK_HIGH_HZ = SAMPLE_RATE / 2  # Hz, upper edge of the highest mel filter
PREEMPHASIS = 0.97  # coefficient of y[n] = x[n] - 0.97 x[n-1]
AUDIO_STACK = 4  # filterbank frames (10 ms) stacked into one model frame (40 ms = 1 video frame)
AUDIO_FEAT_DIM = FBANK_BANDS * AUDIO_STACK  # 104 values per model audio frame
LAYER_NORM_EPS = 1e-5  # added to the per-frame variance of the stacked features

# Video
VIDEO_FPS = 25  # frames per second, for video and for stacked audio alike
SAMPLES_PER_FRAME = SAMPLE_RATE // VIDEO_FPS  # 640 audio samples per video frame
MODEL_CROP_PX = 88  # pixels, side of the square centre crop the model sees
PIXEL_MEAN = 0.421  # mean grey level, on the 0..1 scale
PIXEL_STD = 0.165  # grey-level standard deviation, on the 0..1 scale


def _hz_to_mel(hz):
    # Same expression as python_speech_features.hz2mel, so the rounding matches.
    return 2595 * np.log10(1 + hz / 700.0)


def _mel_to_hz(mel):
    # Same expression as python_speech_features.mel2hz.
    return 700 * (10 ** (mel / 2595.0) - 1)


@functools.lru_cache(maxsize=1)
def mel_filterbank() -> np.ndarray:
    """The [26, 257] float64 triangular mel filters, built as python_speech_features does."""
    mel = np.linspace(_hz_to_mel(FBANK_LOW_HZ), _hz_to_mel(FBANK_HIGH_HZ), FBANK_BANDS + 2)
    edges = np.floor((FBANK_NFFT + 1) * _mel_to_hz(mel) / SAMPLE_RATE)
    fb = np.zeros((FBANK_BANDS, FBANK_NFFT // 2 + 1))
    for j in range(FBANK_BANDS):
        lo, mid, hi = edges[j], edges[j + 1], edges[j + 2]
        rise = np.arange(int(lo), int(mid))
        fb[j, rise] = (rise - lo) / (mid - lo)
        fall = np.arange(int(mid), int(hi))
        fb[j, fall] = (hi - fall) / (hi - mid)
    fb.flags.writeable = False
    return fb


def _int16_units(wav: np.ndarray) -> np.ndarray:
    """float64 samples in int16 units, the scale the filterbank is defined on: float samples are
    taken as [-1, 1) full scale (media.read_audio), integer ones as int16 PCM values."""
    wav = np.asarray(wav)
    if wav.ndim != 1 or wav.size == 0:
        raise SpeechForensicsError(
            f"audio must be 1-D mono samples with at least one sample, got shape {wav.shape}"
        )
    if np.issubdtype(wav.dtype, np.integer):
        return wav.astype(np.float64)
    if np.issubdtype(wav.dtype, np.floating):
        return wav.astype(np.float64) * PCM_FULL_SCALE  # exact: a power of two
    raise SpeechForensicsError(f"audio samples must be integer or float, got {wav.dtype}")


def _frame_count(n_samples: int) -> int:
    # 1 + ceil((N - 400) / 160) in exact integer arithmetic; one frame for N <= 400.
    if n_samples <= FBANK_WIN_SAMPLES:
        return 1
    return 1 + -(-(n_samples - FBANK_WIN_SAMPLES) // FBANK_HOP_SAMPLES)


def _preemphasised_frames(x: np.ndarray) -> np.ndarray:
    """Pre-emphasis, zero tail padding, and a strided [Nf, 400] view of the windows (no copy)."""
    n = len(x)
    n_frames = _frame_count(n)
    padded = np.zeros((n_frames - 1) * FBANK_HOP_SAMPLES + FBANK_WIN_SAMPLES)
    padded[0] = x[0]
    np.subtract(x[1:], PREEMPHASIS * x[:-1], out=padded[1:n])
    windows = np.lib.stride_tricks.sliding_window_view(padded, FBANK_WIN_SAMPLES)
    return windows[::FBANK_HOP_SAMPLES]


def log_filterbank(wav: np.ndarray) -> np.ndarray:
    """[Nf, 26] float32 log mel energies of 16 kHz samples: floats in [-1, 1) as media.read_audio
    gives them, or int16 PCM values.

    Bit-identical to ``python_speech_features.logfbank(pcm, samplerate=16000)`` on the int16
    values, cast to float32.
    """
    x = _int16_units(wav)
    frames = _preemphasised_frames(x)
    pspec = 1.0 / FBANK_NFFT * np.square(np.abs(np.fft.rfft(frames, FBANK_NFFT)))
    energies = np.dot(pspec, mel_filterbank().T)
    energies[energies == 0] = np.finfo(np.float64).eps
    return np.log(energies).astype(np.float32)


def stack_frames(fbank: np.ndarray, stack: int = AUDIO_STACK) -> np.ndarray:
    """[ceil(Nf / stack), stack * D]: zero rows appended; row t holds frames stack*t .. +stack-1."""
    if fbank.ndim != 2:
        raise SpeechForensicsError(f"filterbank must be [frames, bands], got shape {fbank.shape}")
    n_frames, n_bands = fbank.shape
    pad = -n_frames % stack
    if pad:
        fbank = np.concatenate([fbank, np.zeros((pad, n_bands), dtype=fbank.dtype)])
    return fbank.reshape(-1, stack * n_bands)


# The model's inputs are torch tensors; torch is imported in these two functions only, so that
# the constants and the filterbank above load without it (media, lipsync-lite).


def audio_features(wav: np.ndarray) -> "torch.Tensor":
    """[T, 104] float32 model audio input at 25 Hz from 16 kHz samples (as log_filterbank)."""
    import torch
    import torch.nn.functional as F

    stacked = torch.from_numpy(stack_frames(log_filterbank(wav)))
    return F.layer_norm(stacked, (AUDIO_FEAT_DIM,), eps=LAYER_NORM_EPS)


def video_features(frames: np.ndarray) -> "torch.Tensor":
    """[T, 88, 88] float32 model video input from uint8 grayscale mouth crops [T, H, W]."""
    import torch

    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.dtype != np.uint8 or frames.shape[0] == 0:
        raise SpeechForensicsError(
            f"video frames must be uint8 grayscale [T, H, W] with T >= 1, "
            f"got {frames.dtype} of shape {frames.shape}"
        )
    _, h, w = frames.shape
    if h < MODEL_CROP_PX or w < MODEL_CROP_PX:
        raise SpeechForensicsError(
            f"video frames must be at least {MODEL_CROP_PX}x{MODEL_CROP_PX} pixels, got {h}x{w}"
        )
    # Same offsets as the original's int(round(W - 88) / 2.0): the floor of half the excess.
    top, left = (h - MODEL_CROP_PX) // 2, (w - MODEL_CROP_PX) // 2
    crop = frames[:, top : top + MODEL_CROP_PX, left : left + MODEL_CROP_PX] / 255.0
    return torch.from_numpy(((crop - PIXEL_MEAN) / PIXEL_STD).astype(np.float32))
