"""Backends: what turns a face track and the audio into two feature streams to compare.

Every backend has a `name`, a `search` (scoring.Search: which offsets are compared and how the
score reads them), `needs_crops` (whether it reads the mouth crops or only the landmarks), an
`about` line for people, and `streams(clip, track) -> (visual [T, D], audio [T, D])`, one row per
25 fps frame; scoring.py compares the streams the same way for all of them.

- `AVHubertBackend`: the method of the paper. AV-HuBERT (a downloaded checkpoint) embeds the
  mouth crops alone and the audio alone into one speech-representation space.
- `LiteBackend` ("lipsync-lite"), the default, needs no download: lip geometry from the
  landmarks against the voice's spectrum, mapped into one space fitted on genuine clips only
  (lite.py). It sees *when* the lips move with the voice, not *what* is said.
"""

import os
from pathlib import Path

import numpy as np
import torch

from . import lite
from .avhubert import load_checkpoint
from .avhubert.download import find_cached
from .detect import MouthTrack, Prepared
from .errors import SpeechForensicsError
from .features import video_features
from .mouth import interpolate_landmarks
from .scoring import PAPER, Search

BACKENDS = ("lipsync-lite", "avhubert")  # names for --backend; the first is the weight-free default
CHECKPOINT_ENV = "SPEECHFORENSICS_CHECKPOINT"  # environment variable naming a checkpoint

# LiteBackend's search: the score is the agreement within 3 frames (120 ms) of zero offset less
# the agreement at 8 frames (320 ms) or more; the offset is searched up to 62 frames (2.48 s).
LITE_SEARCH = Search(max_shift=62, score_shift=3, baseline_from=8)


class AVHubertBackend:
    """AV-HuBERT features of the mouth crops alone and of the audio alone (the paper's method)."""

    name = "avhubert"
    search = PAPER
    needs_crops = True
    about = (
        "avhubert (AV-HuBERT, the SpeechForensics method): compares what the lips say with "
        "what the voice says in a learned speech representation; sees dubbing, out-of-sync "
        "audio and lip-sync or generated mouths whose shapes do not match the speech."
    )

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


class LiteBackend:
    """Lip geometry against the voice's spectrum in a space fitted on genuine clips (lite.py).

    The score is how much better lips and voice agree at (near) zero offset than at offsets of a
    third of a second or more: about 0 for a face and a voice that do not belong together.
    """

    name = "lipsync-lite"
    search = LITE_SEARCH
    needs_crops = False
    about = (
        "lipsync-lite (no download): checks that the lips open and close in time with the voice; "
        "sees dubbed, swapped, spliced or shifted audio, but not lip-sync or generated faces "
        "whose mouths move in time with the audio (that needs the avhubert backend)."
    )

    def __init__(self, params: "str | Path | lite.LiteModel | None" = None):
        """`params`: a fitted model or its file (default: the one shipped, lite.PARAMS)."""
        if isinstance(params, lite.LiteModel):
            self.model = params
        else:
            self.model = lite.load(params or lite.PARAMS)

    def streams(self, clip: Prepared, track: MouthTrack) -> tuple[np.ndarray, np.ndarray]:
        landmarks = interpolate_landmarks(track.face.landmarks)
        visual = lite.visual_input(landmarks, ~track.missing)
        return self.model.streams(visual, lite.audio_input(clip.audio))


def load_backend(
    name: str | None = None,
    checkpoint: str | Path | None = None,
    lite_params: str | Path | None = None,
):
    """The backend called `name` (one of BACKENDS). With no name: avhubert when a checkpoint is
    given, named in $SPEECHFORENSICS_CHECKPOINT or downloaded to the cache (large preferred), else
    the weight-free default (its parameters from `lite_params`, default: the shipped ones)."""
    checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV) or _cached_checkpoint()
    name = name or ("avhubert" if checkpoint else BACKENDS[0])
    if name == "lipsync-lite":
        return LiteBackend(lite_params)
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
