"""One video in, one report out: the pipeline, top to bottom.

`detect(path, backend)` prepares the clip, lets the backend turn each face track and the audio
into two feature streams, and scores them (scoring.py).

`prepare(path)` decodes the clip twice, streaming (so memory does not grow with its length):
pass 1 finds the faces and their 68 landmarks on every frame, pass 2 cuts every face track's
96x96 mouth crops. The audio is decoded once (640 samples per video frame); the backends turn it
into their own features.
"""

import dataclasses
import itertools
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from . import face, media, mouth, scoring, shots, speakers
from .errors import SpeechForensicsError
from .features import SAMPLES_PER_FRAME, VIDEO_FPS
from .perturb import Perturbation

PREFETCH_FRAMES = 16  # frames decoded ahead in a background thread


@dataclass
class MouthTrack:
    """One face across the clip and its mouth crops (one per frame of the clip)."""

    face: face.FaceTrack
    crops: np.ndarray | None  # [T, 96, 96] uint8; None when prepared with crops=False
    missing: np.ndarray  # [T] bool: no face measured within max_gap_frames (not evidence)

    def summary(self) -> dict:
        return {**self.face.summary(), "frames_missing": int(self.missing.sum())}

    def excerpt(self, start: int, stop: int) -> "MouthTrack":
        """Frames [start, stop) of this track."""
        f = self.face
        part = face.FaceTrack(
            f.id, f.landmarks[start:stop], f.detected[start:stop], f.max_gap_frames
        )
        crops = None if self.crops is None else self.crops[start:stop]
        return MouthTrack(part, crops, self.missing[start:stop])


@dataclass
class Prepared:
    """A clip ready for the model: mouth crops per face track and the audio features."""

    info: media.MediaInfo
    audio: np.ndarray  # [T * 640] float32, 16 kHz mono, sample 0 at frame 0
    tracks: list[MouthTrack]  # main face first
    shots: list[tuple[int, int]] = dataclasses.field(default_factory=list)  # [start, stop) frames

    def excerpt(self, start: int, stop: int, tracks: list[MouthTrack]) -> "Prepared":
        """Frames [start, stop) of the clip with `tracks` (of this clip) and its shots cut to
        them."""
        info = dataclasses.replace(
            self.info, frames=stop - start, duration=(stop - start) / VIDEO_FPS
        )
        audio = self.audio[start * SAMPLES_PER_FRAME : stop * SAMPLES_PER_FRAME]
        shots = [(max(a, start) - start, min(b, stop) - start) for a, b in self.shots]
        shots = [(a, b) for a, b in shots if b > a]
        return Prepared(info, audio, [t.excerpt(start, stop) for t in tracks], shots)


@runtime_checkable
class Backend(Protocol):
    """What `judge` needs of a backend (backends.py has them: avhubert, lipsync-lite)."""

    name: str  # one of backends.BACKENDS
    search: scoring.Search  # the offsets compared and how the score reads them
    needs_crops: bool  # whether streams() reads the mouth crops (else the landmarks only)
    about: str  # what it sees and cannot see, for people

    def streams(self, clip: Prepared, track: MouthTrack) -> tuple[np.ndarray, np.ndarray]:
        """(visual [T, D], audio [T, D]): one row per 25 fps frame of the clip."""
        ...


def prepare(
    path: str | Path,
    max_seconds: float | None = media.MAX_SECONDS,
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
    assert len(audio) == info.frames * SAMPLES_PER_FRAME, (len(audio), info.frames)
    frames = _progress(_decode(path, max_seconds, perturbation), info, progress, "faces")
    cuts = shots.CutDetector()  # hard cuts, found in the same pass; no face track crosses one
    faces = face.track_faces(cuts.feed(frames), face_config, cuts=cuts.cuts)
    if not faces:
        raise SpeechForensicsError(
            f"{path}: no face long enough to judge in its {info.frames} frames "
            f"({info.duration:.1f} s); speechforensics needs a visible talking face"
        )
    if crops:
        frames = _progress(_decode(path, max_seconds, perturbation), info, progress, "mouths")
        cut = mouth.crop_tracks(frames, [f.landmarks for f in faces])
    else:
        cut = [None] * len(faces)
    tracks = [MouthTrack(f, c, _missing(f)) for f, c in zip(faces, cut, strict=True)]
    return Prepared(info, audio, tracks, cuts.shots)


def _decode(path, max_seconds: float, perturbation: Perturbation | None) -> Iterator:
    """The clip's frames, decoded ahead in a thread and distorted there when asked (the same
    frames on every call: perturbations are seeded)."""
    frames = media.read_frames(path, max_seconds)
    return _prefetch(frames if perturbation is None else perturbation.frames(frames))


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
    backend: Backend,
    threshold: float | None = None,
    max_seconds: float | None = media.MAX_SECONDS,
    progress: bool = False,
) -> dict:
    """Judge one video: a JSON-ready dict (see README). `backend` is one of backends.py;
    `threshold` overrides the backend's calibrated one (`thresholds_of`)."""
    clip = prepare(path, max_seconds, progress=progress, crops=backend.needs_crops)
    return judge(clip, backend, threshold)


def judge(clip: Prepared, backend: Backend, threshold: float | None = None) -> dict:
    """The report for a prepared clip: who speaks when (speakers.py), each face judged only on
    the speech given to it, a verdict per turn and for the whole video (README: Detecting)."""
    limits = thresholds_of(backend)
    if threshold is None:
        threshold = limits.clip
    elif threshold != limits.clip:  # a threshold given by hand: that alone, no doubt band
        limits = scoring.Thresholds(threshold, limits.turns, limits.segment)
    search: scoring.Search = backend.search
    speech = scoring.speech_frames(clip.audio)
    shots = clip.shots or [(0, clip.info.frames)]
    faces = {t.face.id: face_evidence(backend, clip, t, speech, shots) for t in clip.tracks}
    stretches = speakers.assign(speakers.stretches(speech, shots), faces, search.score_shift)
    warnings = []
    if stretches and all(s.face is None for s in stretches):  # no mouth moves with the voice
        stretches = [_to_best(s) for s in stretches]
        warnings.append(
            "no visible mouth moves with the speech (a voice-over, or a still face with a "
            "voice); each stretch was judged against the face that matches it best"
        )
    turns = speakers.turns(stretches, clip.info.frames)
    combined, judged, spans = _combined(turns, faces, clip.info.frames, search.max_shift)
    score = scoring.gated_score(combined, judged, search.score_shift) if turns else None
    if score is None:
        raise SpeechForensicsError(
            f"{clip.info.path}: too little speech to judge: "
            f"{scoring.speech_seconds(judged):.1f} s of speech with a face in view, at least "
            f"{scoring.MIN_SPEECH_SECONDS:g} s needed (silent or music-only clips say nothing "
            "about lip sync)"
        )
    curve = scoring.offset_curve(combined[spans])
    offset = scoring.curve_offset(curve)
    windows = scoring.timeline(_aligned(combined, turns, spans, search.score_shift), judged, 0)
    reported = [
        _turn(t, turn_score(backend, clip, t, speech, shots, faces[t.face]), backend, clip)
        for t in turns
    ]
    single = len({(t.face, t.shot) for t in turns}) == 1  # one speaker in one shot
    score = score if single else _mean_turn_score(reported, score)
    speech_s = scoring.speech_seconds(judged)
    verdict, decided = video_verdict(score, limits, reported, single, speech_s)
    band = limits.band(speech_s)
    summary = {
        "file": str(clip.info.path),
        "score": score,
        "verdict": verdict,
        "threshold": threshold,
        "uncertain_band": None if band is None else [float(v) for v in band],
        "error_rates": limits.error_rates(score),
        "decided_by": decided,
        "offset_frames": offset,
        "offset_ms": scoring.offset_ms(offset),
        "speech_seconds": speech_s,
    }
    segments = reported_segments(windows, reported, limits.segment) if threshold is not None else []
    return summary | {
        "backend": backend.name,
        "backend_about": backend.about,
        "face": _main_face(reported, decided, clip),
        "tracks": [_track(t, reported) for t in clip.tracks],
        "shots": [[a / VIDEO_FPS, b / VIDEO_FPS] for a, b in shots],
        "turns": reported,
        "timeline": [dataclasses.asdict(w) for w in windows],
        "segments": segments,
        "offset_curve": [None if np.isnan(v) else float(v) for v in curve],
        "duration_s": clip.info.duration,
        "warnings": warnings + _warnings(clip, backend, threshold, offset, curve),
        "error": None,
    }


def face_evidence(
    backend, clip: Prepared, track: MouthTrack, speech, shots
) -> speakers.FaceEvidence:
    """One face's lips against the voice over its shot (the backend sees that shot alone), and
    its mouth's opening, laid out over the whole clip."""
    search: scoring.Search = backend.search
    shot, part = track_excerpt(clip, track, shots)
    (a, b), seen = shots[shot], ~track.missing
    visual, audio = backend.streams(part, part.tracks[0])
    fill = np.nan if search.baseline_from else 0.0  # a baseline leaves the ends out, not 0
    matrix = scoring.sync_matrix(visual, audio, search.max_shift, fill)
    if search.baseline_from:  # compare with speech at every offset, then against far offsets
        matrix = scoring.relative(scoring.partner_gated(matrix, speech[a:b]), search.baseline_from)
    full = np.full((clip.info.frames, matrix.shape[1]), np.nan, np.float32)
    full[a:b] = matrix
    return speakers.FaceEvidence(
        shot, seen, speech & seen, speakers.mouth_opening(track.face.landmarks), full
    )


def turn_score(
    backend, clip: Prepared, turn: speakers.Turn, speech, shots, shot_evidence
) -> tuple[float | None, float]:
    """(score, seconds of speech with the face in view) of a turn judged on its own: the backend
    sees the turn's span alone, with speakers.TURN_CONTEXT_FRAMES either side inside its shot, as
    it would see a clip of that one speaker. A backend that standardises its inputs over what it
    sees (lipsync-lite does) is then not swayed by the other speakers' voices or a dubbed stretch
    elsewhere. `shot_evidence` (the face over its whole shot) is reused when the span is the
    whole shot."""
    a, b = shots[turn.shot]
    start = max(a, turn.start - speakers.TURN_CONTEXT_FRAMES)
    stop = min(b, turn.stop + speakers.TURN_CONTEXT_FRAMES)
    if (start, stop) == (a, b):
        start, face = 0, shot_evidence
    else:
        track = next(t for t in clip.tracks if t.face.id == turn.face)
        part = clip.excerpt(start, stop, [track])
        face = face_evidence(backend, part, part.tracks[0], speech[start:stop], [(0, stop - start)])
    mask = turn.frames[start : start + len(face.usable)] & face.usable
    score = scoring.gated_score(face.matrix, mask, backend.search.score_shift)
    return score, scoring.speech_seconds(mask)


def track_excerpt(clip: Prepared, track: MouthTrack, shots) -> tuple[int, Prepared]:
    """The shot a track is judged in (the one where it is first seen; `shots` as judge's) and
    the clip cut to that shot with that track alone: what the backend's streams are given."""
    seen = ~track.missing
    first = int(np.argmax(seen)) if seen.any() else 0
    shot = next((i for i, (a, b) in enumerate(shots) if a <= first < b), 0)
    a, b = shots[shot]
    return shot, clip.excerpt(a, b, [track])


def thresholds_of(backend: Backend) -> scoring.Thresholds:
    """The backend's thresholds (a calibration's, backends.load_backend), else the built-in
    ones of its name (scoring.thresholds)."""
    return getattr(backend, "thresholds", None) or scoring.thresholds(backend.name)


def _to_best(stretch: speakers.Stretch) -> speakers.Stretch:
    scored = {f: v for f, v in stretch.agreement.items() if v is not None}
    face = max(scored, key=scored.get) if scored else next(iter(stretch.agreement), None)
    return dataclasses.replace(stretch, face=face)


def _combined(turns, faces: dict, frames: int, max_shift: int):
    """The speaking face's matrix rows at every frame of a turn; the frames judged (speech with
    that face in view); the frames whose rows say at what offset lips and voice agree (the turns'
    spans with the face in view)."""
    combined = np.full((frames, 2 * max_shift + 1), np.nan, np.float32)
    judged, spans = np.zeros(frames, bool), np.zeros(frames, bool)
    for turn in turns:
        face = faces[turn.face]
        span = np.zeros(frames, bool)
        span[turn.start : turn.stop] = True
        span &= face.seen
        combined[span] = face.matrix[span]
        judged |= turn.frames & face.usable
        spans |= span
    return combined, judged, spans


def _aligned(combined, turns, spans, within: int) -> np.ndarray:
    """[frames, 1] each frame's similarity at the best offset (within `within` frames) of its
    face in its shot: one recording per face and shot, whose picture and sound may be offset
    otherwise than another's (a package of clips, a panel filmed apart)."""
    out = np.full((len(combined), 1), np.nan, np.float32)
    shift = combined.shape[1] // 2
    for group in {(t.face, t.shot) for t in turns}:
        mask = np.zeros(len(combined), bool)
        for t in turns:
            if (t.face, t.shot) == group:
                mask[t.start : t.stop] = True
        mask &= spans
        if not mask.any():
            continue
        offset = scoring.curve_offset(scoring.offset_curve(combined[mask]), within)
        out[mask, 0] = combined[mask, offset + shift]
    return out


def _turn(turn: speakers.Turn, judged, backend, clip) -> dict:
    score, seconds = judged
    threshold = thresholds_of(backend).turn(seconds)
    if seconds < speakers.MIN_TURN_SPEECH_S:
        score = None
    verdict = "not judged" if score is None else _verdict(score, threshold)
    track = next(t for t in clip.tracks if t.face.id == turn.face)
    start, end = turn.seconds
    return {
        "start_s": start,
        "end_s": end,
        "face": turn.face,
        "box_px": [round(v, 1) for v in track.face.mean_box],
        "speech_seconds": seconds,
        "score": score,
        "threshold": threshold,
        "verdict": verdict,
    }


def _mean_turn_score(turns: list[dict], whole: float) -> float:
    """Several speakers or shots: the judged turns' scores weighted by their speech (each at
    its own best offset: two recordings need not share one); `whole` when none is judged."""
    judged = [t for t in turns if t["score"] is not None]
    if not judged:
        return whole
    weights = [t["speech_seconds"] for t in judged]
    return float(np.average([t["score"] for t in judged], weights=weights))


def video_verdict(score: float, limits, turns: list[dict], single: bool, speech_s: float):
    """fake when any judged turn is out of agreement (under its turn threshold; `decided_by`
    names the worst such turn); else, for one speaker in one shot (or when no turn could be
    judged on its own), the clip verdict of the video's score (scoring.Thresholds.verdict:
    real, fake, or uncertain near the clip threshold)."""
    if limits.clip is None:
        return "inconclusive", None
    fakes = [t for t in turns if t["verdict"] == "fake"]
    if fakes:
        worst = min(fakes, key=lambda t: t["score"])
        return "fake", {k: worst[k] for k in ("start_s", "end_s", "face", "score")}
    if single or all(t["score"] is None for t in turns):
        return limits.verdict(score, speech_s), None
    return "real", None


def reported_segments(windows, turns: list[dict], low: float | None) -> list[list[float]]:
    """Where the voice and the lips part: the turns judged fake, and runs of timeline windows
    under the backend's segment threshold lasting at least scoring.MIN_SEGMENT_SECONDS (both set
    on genuine footage so that little genuine time is shaded). A run is cut where a turn starts
    or ends (a window astride two turns half belongs to each), and each piece must last that
    long on its own: a dubbed turn's low windows do not spill into the turn beside it."""
    found = [(t["start_s"], t["end_s"]) for t in turns if t["verdict"] == "fake"]
    if low is not None:
        edges = sorted({t[k] for t in turns for k in ("start_s", "end_s")})
        for a, b in scoring.segments(windows, low):
            cuts = [a, *(e for e in edges if a < e < b), b]
            found += [
                (x, y) for x, y in itertools.pairwise(cuts) if y - x >= scoring.MIN_SEGMENT_SECONDS
            ]
    merged: list[list[float]] = []
    for a, b in sorted(found):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return merged


def _main_face(turns: list[dict], decided: dict | None, clip: Prepared) -> int:
    if decided is not None:
        return decided["face"]
    spoken: dict[int, float] = {}
    for t in turns:
        spoken[t["face"]] = spoken.get(t["face"], 0.0) + t["speech_seconds"]
    return max(spoken, key=spoken.get) if spoken else clip.tracks[0].face.id


def _track(track: MouthTrack, turns: list[dict]) -> dict:
    mine = [t for t in turns if t["face"] == track.face.id]
    return (
        {
            "id": track.face.id,
            "speech_seconds": sum(t["speech_seconds"] for t in mine),
            "turns": len(mine),
        }
        | track.summary()
        | {"box_px": [round(v, 1) for v in track.face.mean_box]}
    )


def _warnings(clip: Prepared, backend, threshold, offset: int, curve) -> list[str]:
    warnings = []
    if threshold is None:
        warnings.append(
            f"no calibrated threshold for the {backend.name} backend: calibrate it on genuine "
            "clips (`speechforensics calibrate`) or pass --threshold"
        )
    elif _out_of_step(offset, curve, backend.search, threshold):
        ms = scoring.offset_ms(offset)
        warnings.append(
            f"lips and voice agree as in genuine clips only with the audio moved by {ms:+.0f} ms "
            f"({'later' if ms > 0 else 'earlier'} than the video): out of step by that much "
            "(a dub, an edit or a muxing fault)"
        )
    if clip.info.truncated:
        warnings.append(f"only the first {clip.info.duration:.0f} s were analysed (max_seconds)")
    return warnings


def _out_of_step(offset: int, curve, search: scoring.Search, threshold: float) -> bool:
    """Whether the clip agrees well only at an offset beyond the ones its score searches."""
    if abs(offset) <= search.score_shift:
        return False
    peak = curve[offset + search.max_shift]
    return not np.isnan(peak) and peak >= threshold


def _verdict(score: float, threshold: float | None) -> str:
    if threshold is None:
        return "inconclusive"
    return "real" if score >= threshold else "fake"
