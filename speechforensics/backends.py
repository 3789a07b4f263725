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

import itertools
import os
from pathlib import Path

import numpy as np

from . import lite
from .avhubert.download import find_cached
from .errors import SpeechForensicsError
from .features import audio_features, video_features
from .mouth import interpolate_landmarks
from .pipeline import Backend, MouthTrack, Prepared
from .scoring import PAPER, Search

BACKENDS = ("lipsync-lite", "avhubert")  # names for --backend; the first is the weight-free default
CHECKPOINT_ENV = "SPEECHFORENSICS_CHECKPOINT"  # environment variable naming a checkpoint

# LiteBackend's search: the score is the agreement within 3 frames (120 ms) of zero offset less
# the agreement at 8 frames (320 ms) or more; the offset is searched up to 62 frames (2.48 s).
LITE_SEARCH = Search(max_shift=62, score_shift=3, baseline_from=8)

# AV-HuBERT's transformer runs over long clips in overlapping windows, each stream on its own:
# its cost grows with the square of the length, and it was pretrained on crops of at most 500
# frames (20 s). Each window keeps its central part, with at least 100 frames (4 s) of context on
# either side: more than the 64 frames the positional convolution reaches, so window edges act
# only through attention (benchmarks/avhubert_windows.py measures the difference). The front
# ends see each frame once, in blocks, with the neighbours their 3D convolution reads.
AVHUBERT_WINDOW_FRAMES = 500  # frames per window; a clip this long or shorter runs in one pass
AVHUBERT_CONTEXT_FRAMES = 100  # frames of context kept on each side of a window's central part
AVHUBERT_FRONT_END_REACH = 2  # frames either side that the video front end's 3D conv reads


class AVHubertBackend:
    """AV-HuBERT features of the mouth crops alone and of the audio alone (the paper's method).
    Clips of any length: past `window_frames` the transformer runs in overlapping windows."""

    name = "avhubert"
    search = PAPER
    needs_crops = True
    about = (
        "avhubert (AV-HuBERT, the SpeechForensics method): compares what the lips say with "
        "what the voice says in a learned speech representation; sees dubbing, out-of-sync "
        "audio and lip-sync or generated mouths whose shapes do not match the speech."
    )

    def __init__(
        self,
        checkpoint: str | Path,
        device: str = "cpu",
        dtype=None,
        window_frames: int = AVHUBERT_WINDOW_FRAMES,
        context_frames: int = AVHUBERT_CONTEXT_FRAMES,
    ):
        """`dtype`: a torch dtype (None: float32). Streams longer than `window_frames` run in
        windows of that length, each keeping `context_frames` of context on either side."""
        # Here, not at the top: the default backend never needs torch, which takes seconds to load.
        import torch

        from .avhubert.checkpoint import load_checkpoint

        if window_frames <= 2 * context_frames or context_frames < 0:
            raise ValueError(
                f"window_frames ({window_frames}) must exceed twice context_frames "
                f"({context_frames}), which must be 0 or more"
            )
        self.checkpoint = Path(checkpoint)
        self.model = load_checkpoint(checkpoint, device=device, dtype=dtype or torch.float32)
        self.device = device
        self.window_frames, self.context_frames = window_frames, context_frames

    def streams(self, clip: Prepared, track: MouthTrack) -> tuple[np.ndarray, np.ndarray]:
        crops, audio = track.crops, audio_features(clip.audio)  # [T, 104]: small, unlike the video
        visual = self._encode(
            len(crops), lambda a, b: {"video": video_features(crops[a:b])[None, None]}
        )
        voice = self._encode(len(audio), lambda a, b: {"audio": audio[a:b].T[None]})
        return visual, voice

    def _encode(self, frames: int, window_input) -> np.ndarray:
        """[frames, D] features of one stream; `window_input(start, stop)` gives the model's
        input for those frames (keyword arguments of extract_features). One pass when the clip
        fits in a window; else the front ends run block by block, each frame once, and the
        transformer window by window: one window's activations are alive at a time."""
        import torch

        windows = avhubert_windows(frames, self.window_frames, self.context_frames)
        if len(windows) == 1:
            inputs = {name: x.to(self.device) for name, x in window_input(0, frames).items()}
            return self.model.extract_features(**inputs)[0].cpu().numpy()
        model, reach, out = self.model, AVHUBERT_FRONT_END_REACH, None
        with torch.inference_mode():
            blocks = []
            for _, _, keep_start, keep_stop in windows:  # the kept parts tile the clip
                lo, hi = max(keep_start - reach, 0), min(keep_stop + reach, frames)
                inputs = {name: x.to(self.device) for name, x in window_input(lo, hi).items()}
                fused = model.fuse(inputs.get("audio"), inputs.get("video"))
                blocks.append(fused[:, keep_start - lo : keep_stop - lo])
            fused = torch.cat(blocks, dim=1)  # [1, frames, D]: what extract_features encodes
            for start, stop, keep_start, keep_stop in windows:
                features = model.encoder(fused[:, start:stop], None, None)[0].float()
                features = features[keep_start - start : keep_stop - start].cpu().numpy()
                if out is None:
                    out = np.empty((frames, features.shape[1]), np.float32)
                out[keep_start:keep_stop] = features
        return out


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
) -> Backend:
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


def avhubert_windows(
    frames: int,
    window: int = AVHUBERT_WINDOW_FRAMES,
    context: int = AVHUBERT_CONTEXT_FRAMES,
) -> list[tuple[int, int, int, int]]:
    """(start, stop, keep_start, keep_stop) of each window over `frames` frames: the transformer
    runs on frames start..stop and its output is kept for keep_start..keep_stop. The kept parts tile
    0..frames. One window when `frames` <= `window`; else windows of `window` frames evenly
    spaced from the first frame to the last, cut halfway through each overlap, which is at
    least 2 * `context` frames wide."""
    if frames <= window:
        return [(0, frames, 0, frames)]
    count = 1 + -(-(frames - window) // (window - 2 * context))  # stride <= window - 2 * context
    starts = [round(i * (frames - window) / (count - 1)) for i in range(count)]
    cuts = [0] + [(a + b + window) // 2 for a, b in itertools.pairwise(starts)] + [frames]
    return [(s, s + window, cuts[i], cuts[i + 1]) for i, s in enumerate(starts)]
