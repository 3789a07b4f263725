"""One video in, one report out: the pipeline, top to bottom.

`detect(path, backend)` prepares the clip, lets the backend turn each face track and the audio
into two feature streams, and scores them (scoring.py).

`prepare(path)` decodes the clip twice, streaming (so memory does not grow with its length):
pass 1 finds the faces and their 68 landmarks on every frame, pass 2 cuts every face track's
96x96 mouth crops. The audio is decoded once and turned into one 104-d feature vector per video
frame.
"""

import dataclasses
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import face, media, mouth, scoring
from .errors import SpeechForensicsError
from .features import audio_features
from .perturb import Perturbation

INT16_SCALE = 32768.0  # media gives int16 / 32768; the filterbank is defined on int16 units
PREFETCH_FRAMES = 16  # frames decoded ahead in a background thread


@dataclass
class MouthTrack:
    """One face across the clip and its mouth crops (one per frame of the clip)."""

    face: face.FaceTrack
    crops: np.ndarray | None  # [T, 96, 96] uint8; None when prepared with crops=False
    missing: np.ndarray  # [T] bool: no face measured within max_gap_frames (not evidence)

    def summary(self) -> dict:
        return {**self.face.summary(), "frames_missing": int(self.missing.sum())}


@dataclass
class Prepared:
    """A clip ready for the model: mouth crops per face track and the audio features."""

    info: media.MediaInfo
    audio: np.ndarray  # [T * 640] float32, 16 kHz mono, sample 0 at frame 0
    audio_features: torch.Tensor  # [T, 104], one per video frame
    tracks: list[MouthTrack]  # main face first


def prepare(
    path: str | Path,
    max_seconds: float = media.MAX_SECONDS,
    face_config: face.FaceConfig | None = None,
    progress: bool = False,
    perturbation: Perturbation | None = None,
    crops: bool = True,
) -> Prepared:
    """Decode `path`, find its faces and cut their mouths; raises SpeechForensicsError (one line,
    naming the file) when the clip cannot be judged. `perturbation` (perturb.py) distorts the
    decoded frames before face detection, identically in both passes, and the audio. With
    `crops=False` the second pass is skipped and the tracks carry no mouth crops (for backends
    that read the landmarks only)."""
    face_config = face_config or face.FaceConfig()
    info = media.probe(path, max_seconds)
    audio = media.read_audio(path, max_seconds)
    if perturbation is not None:
        audio = perturbation.audio(audio)
    feats = audio_features(audio.astype(np.float64) * INT16_SCALE)
    assert feats.shape[0] == info.frames, (feats.shape, info.frames)
    frames = _progress(_decode(path, max_seconds, perturbation), info, progress, "faces")
    faces = face.track_faces(frames, face_config)
    if not faces:
        raise SpeechForensicsError(
            f"{path}: no face long enough to judge in its {info.frames} frames "
            f"({info.duration:.1f} s); speechforensics needs a visible talking face"
        )
    if crops:
        frames = _progress(_decode(path, max_seconds, perturbation), info, progress, "mouths")
        cut = _crop_all(frames, [f.landmarks for f in faces], info.frames)
    else:
        cut = [None] * len(faces)
    tracks = [MouthTrack(f, c, _missing(f)) for f, c in zip(faces, cut, strict=True)]
    return Prepared(info, audio, feats, tracks)


def _decode(path, max_seconds: float, perturbation: Perturbation | None) -> Iterator:
    """The clip's frames, decoded ahead in a thread and distorted there when asked (the same
    frames on every call: perturbations are seeded)."""
    frames = media.read_frames(path, max_seconds)
    return _prefetch(frames if perturbation is None else perturbation.frames(frames))


def _crop_all(frames, landmarks: list[np.ndarray], total: int) -> list[np.ndarray]:
    """Every track's crops in one streaming pass over the frames."""
    plans = [mouth.mouth_transforms(mouth.interpolate_landmarks(lm)) for lm in landmarks]
    out = [np.zeros((total, mouth.MOUTH_CROP_PX, mouth.MOUTH_CROP_PX), np.uint8) for _ in plans]
    for i, frame in enumerate(frames):
        for crops, (affines, origins) in zip(out, plans, strict=True):
            crops[i] = mouth.crop_mouth(frame, affines[i], origins[i])
    return out


def _missing(track: face.FaceTrack) -> np.ndarray:
    """Frames in runs without the face longer than the track's max_gap_frames (shorter runs are
    interpolated, or at the clip's ends repeat the nearest measured frame, as the original)."""
    missing = np.zeros(len(track.detected), bool)
    for start, stop in track.gaps():
        missing[start:stop] = True
    return missing


def _prefetch(frames: Iterator, depth: int = PREFETCH_FRAMES) -> Iterator:
    """The same frames, decoded in a background thread while the caller works on earlier ones
    (FFmpeg does not hold Python's lock while it decodes). Errors arrive in order."""
    q: queue.Queue = queue.Queue(depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queue.Full:
                pass
        return False

    def work():
        try:
            for frame in frames:
                if not put((True, frame)):
                    return
            put((False, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, who raises it
            put((False, e))

    threading.Thread(target=work, daemon=True).start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                if item is not None:
                    raise item
                return
            yield item
    finally:
        stop.set()


def _progress(frames, info: media.MediaInfo, enabled: bool, what: str):
    if not enabled:
        return frames
    from tqdm import tqdm

    return tqdm(
        frames, total=info.frames, desc=f"{info.path.name}: {what}", unit="frame", leave=False
    )


def detect(
    path: str | Path,
    backend,
    threshold: float | None = None,
    max_seconds: float = media.MAX_SECONDS,
    progress: bool = False,
) -> dict:
    """Judge one video: a JSON-ready dict (see README). `backend` is one of backends.py;
    `threshold` overrides the backend's calibrated one (scoring.THRESHOLDS)."""
    clip = prepare(path, max_seconds, progress=progress, crops=backend.needs_crops)
    return judge(clip, backend, threshold)


def judge(clip: Prepared, backend, threshold: float | None = None) -> dict:
    """The report for a prepared clip, for the face whose lips best match the voice (every
    face's score is listed under `tracks`)."""
    if threshold is None:
        threshold = scoring.THRESHOLDS.get(backend.name)
    speech = scoring.speech_frames(clip.audio)
    judged = [_judge(backend, clip, track, speech, threshold) for track in clip.tracks]
    best = max(judged, key=lambda j: -np.inf if j["score"] is None else j["score"])
    if best["score"] is None:
        raise SpeechForensicsError(
            f"{clip.info.path}: too little speech to judge: {best['speech_seconds']:.1f} s of "
            f"speech with a face in view, at least {scoring.MIN_SPEECH_SECONDS:g} s needed "
            "(silent or music-only clips say nothing about lip sync)"
        )
    return {
        "file": str(clip.info.path),
        "score": best["score"],
        "verdict": _verdict(best["score"], threshold),
        "threshold": threshold,
        "offset_frames": best["offset_frames"],
        "offset_ms": scoring.offset_ms(best["offset_frames"]),
        "speech_seconds": best["speech_seconds"],
        "backend": backend.name,
        "backend_about": backend.about,
        "face": best["id"],
        "tracks": [{k: j[k] for k in ("id", "score", "offset_frames")} | j["face"] for j in judged],
        "timeline": best["timeline"],
        "segments": best["segments"],
        "offset_curve": best["offset_curve"],
        "duration_s": clip.info.duration,
        "warnings": _warnings(clip, backend, threshold, best),
        "error": None,
    }


def _warnings(clip: Prepared, backend, threshold: float | None, best: dict) -> list[str]:
    warnings = []
    if threshold is None:
        warnings.append(f"no calibrated threshold for the {backend.name} backend; pass --threshold")
    elif _out_of_step(best, backend.search, threshold):
        ms = scoring.offset_ms(best["offset_frames"])
        warnings.append(
            f"lips and voice agree as in genuine clips only with the audio moved by {ms:+.0f} ms "
            f"({'later' if ms > 0 else 'earlier'} than the video): out of step by that much "
            "(a dub, an edit or a muxing fault)"
        )
    if clip.info.truncated:
        warnings.append(f"only the first {clip.info.duration:.0f} s were analysed (max_seconds)")
    return warnings


def _out_of_step(best: dict, search: scoring.Search, threshold: float) -> bool:
    """Whether the clip agrees well only at an offset beyond the ones its score searches."""
    if abs(best["offset_frames"]) <= search.score_shift:
        return False
    peak = best["offset_curve"][best["offset_frames"] + search.max_shift]
    return peak is not None and peak >= threshold


def _judge(backend, clip: Prepared, track: MouthTrack, speech: np.ndarray, threshold) -> dict:
    search: scoring.Search = backend.search
    visual, audio = backend.streams(clip, track)
    fill = np.nan if search.baseline_from else 0.0  # a baseline leaves the ends out, not 0
    matrix = scoring.sync_matrix(visual, audio, search.max_shift, fill)
    usable = speech & ~track.missing  # speech, with this face in view
    if search.baseline_from:  # compare with speech at every offset, then against far offsets
        matrix = scoring.relative(scoring.partner_gated(matrix, speech), search.baseline_from)
        rows = matrix[~track.missing]
    else:
        rows = matrix[usable] if usable.any() else matrix
    score = scoring.gated_score(matrix, usable, search.score_shift)
    curve = scoring.offset_curve(rows)
    windows = scoring.timeline(matrix, usable, scoring.curve_offset(curve, search.score_shift))
    return {
        "id": track.face.id,
        "score": score,
        "offset_frames": scoring.curve_offset(curve),
        "speech_seconds": scoring.speech_seconds(usable),
        "face": track.summary() | {"box_px": [round(v, 1) for v in track.face.mean_box]},
        "timeline": [dataclasses.asdict(w) for w in windows],
        "segments": []
        if threshold is None
        else [list(s) for s in scoring.segments(windows, threshold)],
        "offset_curve": [None if np.isnan(v) else float(v) for v in curve],
    }


def _verdict(score: float, threshold: float | None) -> str:
    if threshold is None:
        return "inconclusive"
    return "real" if score >= threshold else "fake"
