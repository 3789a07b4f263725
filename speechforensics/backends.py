"""Backends: what turns a face track and the audio into two feature streams to compare.

Every backend has a `name`, a `search` (scoring.Search: which offsets are compared and how the
score reads them), `needs_crops` (whether it reads the mouth crops or only the landmarks), an
`about` line for people, and `streams(clip, track) -> (visual [T, D], audio [T, D])`, one row per
25 fps frame; scoring.py compares the streams the same way for all of them.

- `AVHubertBackend`: the method of the paper. AV-HuBERT (a downloaded checkpoint) embeds the
  mouth crops alone and the audio alone into one speech-representation space.
- `LiteBackend` ("lipsync-lite"), the default, needs no download: lip geometry from the
  landmarks and the mouth's look against the voice's spectrum and onsets, mapped into one space
  fitted on genuine clips only (lite.py). It sees *when* the lips move with the voice, not
  *what* is said.

Each also carries its verdict `thresholds` (scoring.Thresholds): the built-in ones of its name,
or those of a calibration of its model file (calibration.py), which `load_backend` finds.
`Remembered` wraps a backend so that streams are computed once per excerpt, and ahead of judge
in batches (`AVHubertBackend.streams_batch`: several clips through the model in one pass).
"""

import dataclasses
import hashlib
import itertools
import os
import re
from pathlib import Path

import numpy as np

from . import calibration as calibrations, lite
from .avhubert.download import find_cached
from .errors import SpeechForensicsError
from .features import audio_features, video_features
from .mouth import interpolate_landmarks
from .pipeline import Backend, MouthTrack, Prepared, thresholds_of, track_excerpt
from .scoring import PAPER, Search, Thresholds, thresholds

BACKENDS = ("lipsync-lite", "avhubert")  # names for --backend; the first is the weight-free default
CHECKPOINT_ENV = "SPEECHFORENSICS_CHECKPOINT"  # environment variable naming a checkpoint
DTYPES = ("float32", "bfloat16", "float16")  # --dtype: what avhubert's weights compute in
DEVICE_PATTERN = re.compile(r"cpu|cuda(:\d+)?")  # --device: cpu, cuda or cuda:N

# LiteBackend's search: the score is the agreement within 4 frames (160 ms) of zero offset less
# the agreement at 8 frames (320 ms) or more; the offset is searched up to 62 frames (2.48 s).
LITE_SEARCH = Search(max_shift=62, score_shift=4, baseline_from=8)

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
        device: str | None = None,
        dtype=None,
        window_frames: int = AVHUBERT_WINDOW_FRAMES,
        context_frames: int = AVHUBERT_CONTEXT_FRAMES,
    ):
        """`device`: cpu, cuda or cuda:N (None: cuda when there is one, else cpu); `dtype`: a
        torch dtype or its name in DTYPES (None: float32). Streams longer than `window_frames`
        run in windows of that length, each keeping `context_frames` of context on either
        side. Thresholds: none until a calibration is set (load_backend finds one)."""
        from .avhubert.checkpoint import load_checkpoint

        if window_frames <= 2 * context_frames or context_frames < 0:
            raise ValueError(
                f"window_frames ({window_frames}) must exceed twice context_frames "
                f"({context_frames}), which must be 0 or more"
            )
        device, dtype = torch_settings(device, dtype)
        self.checkpoint = self.model_file = Path(checkpoint)
        self.model = load_checkpoint(checkpoint, device=device, dtype=dtype)
        self.device, self.dtype = device, dtype
        self.window_frames, self.context_frames = window_frames, context_frames
        self.thresholds, self.calibration = Thresholds(), None  # set by load_backend

    def streams_batch(self, requests: list[tuple[Prepared, MouthTrack]]) -> list[tuple]:
        """`streams` of several (clip, track) pairs: the clips that fit in one window go through
        the model together, padded and masked (the same features as one by one, to float
        rounding); longer ones run alone, in windows."""
        out: list = [None] * len(requests)
        batched = [i for i, (_, t) in enumerate(requests) if len(t.crops) <= self.window_frames]
        for i in sorted(set(range(len(requests))) - set(batched)):
            out[i] = self.streams(*requests[i])
        if batched:
            videos = [video_features(requests[i][1].crops) for i in batched]
            voices = [audio_features(requests[i][0].audio) for i in batched]
            visual = self._encode_padded(videos, "video")
            voice = self._encode_padded([v.T for v in voices], "audio")
            for i, v, a in zip(batched, visual, voice, strict=True):
                out[i] = (v, a)
        return out

    def _encode_padded(self, inputs: list, name: str) -> list[np.ndarray]:
        """Features [T_i, D] of several inputs ([T, 88, 88] videos or [104, T] audio, time
        last for audio) in one pass: zero-padded to the longest, padded frames masked."""
        import torch

        lengths = [x.shape[0] if name == "video" else x.shape[-1] for x in inputs]
        longest = max(lengths)
        if name == "video":
            batch = torch.zeros(len(inputs), 1, longest, *inputs[0].shape[1:])
            for i, x in enumerate(inputs):
                batch[i, 0, : len(x)] = x
        else:
            batch = torch.zeros(len(inputs), inputs[0].shape[0], longest)
            for i, x in enumerate(inputs):
                batch[i, :, : x.shape[-1]] = x
        mask = torch.arange(longest)[None] >= torch.tensor(lengths)[:, None]  # True: padding
        features = self.model.extract_features(
            **{name: batch.to(self.device)}, padding_mask=mask.to(self.device)
        )
        return [features[i, :n].cpu().numpy() for i, n in enumerate(lengths)]

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
    """Lip geometry and the mouth's look against the voice's spectrum and onsets in a space
    fitted on genuine clips (lite.py).

    The score is how much better lips and voice agree at (near) zero offset than at offsets of a
    third of a second or more: about 0 for a face and a voice that do not belong together.
    """

    name = "lipsync-lite"
    search = LITE_SEARCH
    needs_crops = True
    about = (
        "lipsync-lite (no download): checks that the lips open and close in time with the voice; "
        "sees dubbed, swapped, spliced or shifted audio, but not lip-sync or generated faces "
        "whose mouths move in time with the audio (that needs the avhubert backend)."
    )

    def __init__(self, params: "str | Path | lite.LiteModel | None" = None):
        """`params`: a fitted model or its file (default: the one shipped, lite.PARAMS).
        Thresholds: the built-in ones (scoring.THRESHOLDS) until a calibration is set, with the
        held-out genuine and swapped-voice scores of the model's fit (its provenance) for the
        error rates of a verdict."""
        if isinstance(params, lite.LiteModel):
            self.model, self.model_file = params, None
        else:
            self.model_file = Path(params or lite.PARAMS)
            self.model = lite.load(self.model_file)
        held_out = self.model.provenance.get("cross_validation", {}).get("scores", {})
        self.thresholds = dataclasses.replace(
            thresholds(self.name),
            genuine=tuple(held_out.get("genuine", {}).values()),
            forged=tuple(held_out.get("swapped", {}).values()),
        )
        self.calibration = None

    def streams(self, clip: Prepared, track: MouthTrack) -> tuple[np.ndarray, np.ndarray]:
        landmarks = interpolate_landmarks(track.face.landmarks)
        if track.crops is None:
            raise SpeechForensicsError(
                "lipsync-lite reads the mouth crops: prepare the clip with crops=True"
            )
        visual = lite.judged_visual_input(landmarks, track.crops, ~track.missing)
        return self.model.streams(visual, lite.audio_input(clip.audio))


def load_backend(
    name: str | None = None,
    checkpoint: str | Path | None = None,
    lite_params: str | Path | None = None,
    calibration: str | Path | bool | None = None,
    device: str | None = None,
    dtype: str | None = None,
    protocol: str = calibrations.DEFAULT_PROTOCOL,
) -> Backend:
    """The backend called `name` (one of BACKENDS). With no name: avhubert when a checkpoint is
    given, named in $SPEECHFORENSICS_CHECKPOINT or downloaded to the cache (large preferred), else
    the weight-free default (its parameters from `lite_params`, default: the shipped ones).
    Its thresholds come from the calibration file `calibration`, else from one found for its
    model file (calibration.find), else the built-in ones (`calibration=False`: the built-in
    ones, nothing looked up); `device` and `dtype` (avhubert only) as for AVHubertBackend."""
    name, checkpoint = choose(name, checkpoint)
    if name == "lipsync-lite":
        if dtype is not None or (device or "cpu") != "cpu":
            raise SpeechForensicsError(
                "lipsync-lite computes in numpy on the CPU: --device and --dtype apply to the "
                "avhubert backend only"
            )
        backend = LiteBackend(lite_params)
    elif name == "avhubert":
        if not checkpoint:
            raise SpeechForensicsError(
                f"the avhubert backend needs a checkpoint: --checkpoint FILE, ${CHECKPOINT_ENV}, "
                "or `speechforensics download large`"
            )
        backend = AVHubertBackend(checkpoint, device, dtype)
    else:
        raise SpeechForensicsError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")
    return backend if calibration is False else calibrated(backend, calibration, protocol)


def choose(name: str | None, checkpoint: str | Path | None) -> tuple[str, str | Path | None]:
    """(backend name, checkpoint) as load_backend picks them (before loading anything)."""
    checkpoint = checkpoint or os.environ.get(CHECKPOINT_ENV) or _cached_checkpoint()
    return name or ("avhubert" if checkpoint else BACKENDS[0]), checkpoint


def calibrated(backend: Backend, given: str | Path | None = None, protocol=None) -> Backend:
    """`backend` with the thresholds of the calibration `given`, else of the one found for its
    model file (calibration.find); unchanged when there is none. A calibration made for
    another model, backend or protocol is refused (SpeechForensicsError)."""
    model = getattr(backend, "model_file", None)
    if model is None:
        if given is not None:
            raise SpeechForensicsError(
                f"{given}: a {backend.name} model given in memory has no file"
            )
        return backend
    protocol = protocol or calibrations.DEFAULT_PROTOCOL
    found = calibrations.find(backend.name, model, protocol, None if given is None else Path(given))
    if found is not None:
        backend.thresholds, backend.calibration = found[0].thresholds(), found[1]
    return backend


def torch_settings(device: str | None, dtype) -> tuple:
    """(device, torch dtype) for avhubert, checked: one line for a device that is not there or
    a dtype it cannot compute in. `device` None: cuda when available, else cpu; `dtype` a torch
    dtype, a name in DTYPES, or None (float32)."""
    import torch  # here: the default backend never loads torch

    if device is None:
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if not DEVICE_PATTERN.fullmatch(str(device)):
        raise SpeechForensicsError(f"--device {device!r}: use cpu, cuda or cuda:N")
    device = str(device)
    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            raise SpeechForensicsError(
                f"--device {device}: PyTorch sees {count} CUDA GPU(s) here (torch "
                f"{torch.__version__}); use --device cpu, or install a CUDA build of torch"
            )
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise SpeechForensicsError(f"--dtype {dtype!r}: use one of {', '.join(DTYPES)}")
        dtype = getattr(torch, dtype)
    dtype = dtype or torch.float32
    if dtype == torch.float16 and device == "cpu":
        raise SpeechForensicsError(
            "--dtype float16 needs a GPU (PyTorch's CPU kernels lack it); on the CPU use bfloat16 "
            "or float32"
        )
    if dtype == torch.bfloat16 and device != "cpu" and not torch.cuda.is_bf16_supported():
        raise SpeechForensicsError(f"--dtype bfloat16: {device} does not support it; use float16")
    return device, dtype


class Remembered:
    """`backend` with its streams remembered by content (the excerpt's audio and the track's
    crops or landmarks): judge and a second look at the same face compute them once, and
    `fill` computes those judge will ask for ahead, several clips at a time."""

    def __init__(self, backend: Backend):
        self.backend, self.memory = backend, {}
        self.name, self.search, self.about = backend.name, backend.search, backend.about
        self.needs_crops, self.thresholds = backend.needs_crops, thresholds_of(backend)

    def streams(self, clip: Prepared, track: MouthTrack) -> tuple[np.ndarray, np.ndarray]:
        key = _content_key(clip, track)
        if key not in self.memory:
            self.memory[key] = self.backend.streams(clip, track)
        return self.memory[key]

    def fill(self, requests: list[tuple[Prepared, MouthTrack]]) -> None:
        """Compute the streams of these (clip, track) pairs now, in one batch where the backend
        has `streams_batch`."""
        todo = {_content_key(c, t): (c, t) for c, t in requests}
        todo = {k: r for k, r in todo.items() if k not in self.memory}
        many = getattr(self.backend, "streams_batch", None)
        pairs = list(todo.values())
        results = many(pairs) if many and pairs else [self.backend.streams(*r) for r in pairs]
        self.memory |= dict(zip(todo, results, strict=True))


def stream_requests(clip: Prepared) -> list[tuple[Prepared, MouthTrack]]:
    """The (excerpt, track) pairs pipeline.judge hands to a backend's streams for `clip`."""
    shots = clip.shots or [(0, clip.info.frames)]
    parts = [track_excerpt(clip, t, shots)[1] for t in clip.tracks]
    return [(part, part.tracks[0]) for part in parts]


def _content_key(clip: Prepared, track: MouthTrack) -> tuple:
    digest = hashlib.blake2b(np.ascontiguousarray(clip.audio).tobytes(), digest_size=16)
    seen = track.crops if track.crops is not None else track.face.landmarks
    digest.update(np.ascontiguousarray(seen).tobytes())
    digest.update(np.ascontiguousarray(track.missing).tobytes())
    return track.face.id, clip.info.frames, digest.hexdigest()


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
