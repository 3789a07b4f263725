"""One video in, everything the model needs out: the pipeline, top to bottom.

`prepare(path)` decodes the clip twice, streaming (so memory does not grow with its length):
pass 1 finds the faces and their 68 landmarks on every frame, pass 2 cuts every face track's
96x96 mouth crops. The audio is decoded once and turned into one 104-d feature vector per video
frame.
"""

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import face, media, mouth
from .errors import SpeechForensicsError
from .features import audio_features

INT16_SCALE = 32768.0  # media gives int16 / 32768; the filterbank is defined on int16 units
PREFETCH_FRAMES = 16  # frames decoded ahead in a background thread


@dataclass
class MouthTrack:
    """One face across the clip and its mouth crops (one per frame of the clip)."""

    face: face.FaceTrack
    crops: np.ndarray  # [T, 96, 96] uint8
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
) -> Prepared:
    """Decode `path`, find its faces and cut their mouths; raises SpeechForensicsError (one line,
    naming the file) when the clip cannot be judged."""
    face_config = face_config or face.FaceConfig()
    info = media.probe(path, max_seconds)
    audio = media.read_audio(path, max_seconds)
    feats = audio_features(audio.astype(np.float64) * INT16_SCALE)
    assert feats.shape[0] == info.frames, (feats.shape, info.frames)
    frames = _progress(_prefetch(media.read_frames(path, max_seconds)), info, progress, "faces")
    faces = face.track_faces(frames, face_config)
    if not faces:
        raise SpeechForensicsError(
            f"{path}: no face long enough to judge in its {info.frames} frames "
            f"({info.duration:.1f} s); speechforensics needs a visible talking face"
        )
    frames = _progress(_prefetch(media.read_frames(path, max_seconds)), info, progress, "mouths")
    crops = _crop_all(frames, [f.landmarks for f in faces], info.frames)
    tracks = [MouthTrack(f, c, _missing(f)) for f, c in zip(faces, crops, strict=True)]
    return Prepared(info, audio, feats, tracks)


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
