"""Backends: what turns a face track and the audio into two feature streams to compare.

Every backend has a `name` and `streams(clip, track) -> (visual [T, D], audio [T, D])`, one row
per 25 fps frame; scoring.py compares the streams the same way for all of them.

- `AVHubertBackend`: the method of the paper. AV-HuBERT (a downloaded checkpoint) embeds the
  mouth crops alone and the audio alone into one speech-representation space.
- `TimingBackend`, the default, needs no download: it compares *when* the mouth opens and
  closes with *when* the voice is loud, as local correlations over half a second. It sees
  dubbing and audio that is out of step with the lips; it cannot see what is being said, so it
  is blind to forgeries whose mouths move in time with the audio (lip-sync generators).
"""

import os
from pathlib import Path

import numpy as np
import torch

from .avhubert import load_checkpoint
from .avhubert.download import find_cached
from .detect import MouthTrack, Prepared
from .errors import SpeechForensicsError
from .features import SAMPLES_PER_FRAME, video_features
from .mouth import interpolate_landmarks

BACKENDS = ("timing", "avhubert")  # names for --backend; the first is the weight-free default
CHECKPOINT_ENV = "SPEECHFORENSICS_CHECKPOINT"  # environment variable naming a checkpoint

# TimingBackend
CONTEXT_FRAMES = 6  # frames either side of each frame: 13-frame (0.52 s) local windows
INNER_LIP_PAIRS = ((61, 67), (62, 66), (63, 65))  # upper / lower inner-lip landmarks
EYE_CORNERS = (36, 45)  # outer eye corners: the face's scale
LOUDNESS_FLOOR = 1e-8  # mean square added before the log (digital silence: -80 dB)


class AVHubertBackend:
    """AV-HuBERT features of the mouth crops alone and of the audio alone (the paper's method)."""

    name = "avhubert"

    def __init__(self, checkpoint: str | Path, device: str = "cpu", dtype=torch.float32):
        self.checkpoint = Path(checkpoint)
        self.model = load_checkpoint(checkpoint, device=device, dtype=dtype)
        self.device = device

    def streams(self, clip: Prepared, track: MouthTrack) -> tuple[np.ndarray, np.ndarray]:
        video = video_features(track.crops)[None, None].to(self.device)
        audio = clip.audio_features.T[None].to(self.device)
        visual = self.model.extract_features(video=video)[0]
        voice = self.model.extract_features(audio=audio)[0]
        return visual.cpu().numpy(), voice.cpu().numpy()


class TimingBackend:
    """Mouth opening (from the landmarks) against loudness (from the audio), as local windows.

    Each frame's visual vector is the mouth opening over the surrounding 13 frames, its audio
    vector the loudness over the same frames, both with their window mean removed: the cosine of
    the two is their local correlation, so the sync matrix holds correlations at each offset.
    """

    name = "timing"

    def streams(self, clip: Prepared, track: MouthTrack) -> tuple[np.ndarray, np.ndarray]:
        opening = mouth_opening(interpolate_landmarks(track.face.landmarks))
        return _context(opening), _context(loudness_db(clip.audio))


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """[T] inner-lip gap divided by the distance between the outer eye corners."""
    upper, lower = zip(*INNER_LIP_PAIRS)
    gap = np.linalg.norm(landmarks[:, upper] - landmarks[:, lower], axis=-1).mean(axis=1)
    eyes = np.linalg.norm(landmarks[:, EYE_CORNERS[0]] - landmarks[:, EYE_CORNERS[1]], axis=-1)
    return gap / np.maximum(eyes, 1e-6)


def loudness_db(audio: np.ndarray) -> np.ndarray:
    """[T] mean-square level in dB of each video frame's 640 audio samples."""
    frames = audio.reshape(-1, SAMPLES_PER_FRAME).astype(np.float64)
    return 10 * np.log10((frames**2).mean(axis=1) + LOUDNESS_FLOOR)


def _context(signal: np.ndarray, half: int = CONTEXT_FRAMES) -> np.ndarray:
    """[T, 2*half+1]: each frame's surrounding window (edges repeated), its mean removed."""
    windows = np.lib.stride_tricks.sliding_window_view(
        np.pad(signal, half, mode="edge"), 2 * half + 1
    )
    return (windows - windows.mean(axis=1, keepdims=True)).astype(np.float32)


def load_backend(name: str | None = None, checkpoint: str | Path | None = None):
    """The backend called `name` (one of BACKENDS). With no name: avhubert when a checkpoint is
    given, named in $SPEECHFORENSICS_CHECKPOINT or downloaded to the cache (large preferred), else
    the weight-free default."""
    checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV) or _cached_checkpoint()
    name = name or ("avhubert" if checkpoint else BACKENDS[0])
    if name == "timing":
        return TimingBackend()
    if name != "avhubert":
        raise SpeechForensicsError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    if not checkpoint:
        raise SpeechForensicsError(
            f"the avhubert backend needs a checkpoint: --checkpoint FILE, ${CHECKPOINT_ENV}, "
            "or `speechforensics download large`"
        )
    return AVHubertBackend(checkpoint)


def _cached_checkpoint() -> Path | None:
    """The downloaded AV-HuBERT checkpoint, large preferred (`speechforensics download`)."""
    return find_cached("large") or find_cached("base")
