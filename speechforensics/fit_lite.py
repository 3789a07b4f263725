"""`speechforensics fit-lite`: fit lipsync-lite (lite.py) on a corpus of genuine clips, with
cross-validation for the held-out scores and the threshold; no forged video is used.
"""

import dataclasses
import datetime
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics
from .backends import LiteBackend
from .cache import file_hash
from .errors import SpeechForensicsError, describe, report_skip
from .lite import LiteModel, audio_input, fit, visual_input
from .media import pad_or_trim
from .mouth import interpolate_landmarks
from .pipeline import judge, prepare
from .scoring import speech_frames

FOLDS = 5  # cross-validation folds over the genuine clips (each fold held out once)
FALSE_ALARMS = 0.05  # the threshold calls this share of held-out genuine clips fake


@dataclass(eq=False)
class Genuine:
    """One genuine clip ready for fitting: its name, both inputs and the frames to fit on."""

    name: str
    clip: object  # pipeline.Prepared (landmarks and audio; no crops)
    visual: np.ndarray
    audio: np.ndarray
    rows: np.ndarray  # speech with the face in view


def read_genuine(paths, progress: bool = False, debug: bool = False) -> list[Genuine]:
    """Prepare each clip (main face only; crops skipped). Clips that cannot be judged are left
    out with one line each (errors.report_skip), as a batch run does."""
    out = []
    for path in paths:
        try:
            clip = prepare(path, crops=False, progress=progress)
        except Exception as e:  # noqa: BLE001 - one file never ends the batch
            report_skip(describe(e, path), e, debug)
            continue
        track = clip.tracks[0]
        visual = visual_input(interpolate_landmarks(track.face.landmarks), ~track.missing)
        rows = speech_frames(clip.audio) & ~track.missing
        out.append(Genuine(Path(path).name, clip, visual, audio_input(clip.audio), rows))
    return out


def folds(clips: list[Genuine], count: int = FOLDS) -> list[tuple[list[Genuine], LiteModel]]:
    """(held-out clips, model fitted on all the others) for each of `count` folds; clip i is in
    fold i % count (the speakers of a fold are never seen in fitting when each clip shows a
    different person)."""
    out = []
    for k in range(count):
        held = clips[k::count]
        rest = [c for c in clips if all(c is not h for h in held)]
        out.append((held, fit([(c.visual, c.audio, c.rows) for c in rest])))
    return out


def cross_validate(clips: list[Genuine], count: int = FOLDS) -> dict:
    """Held-out scores: each fold's genuine clips, and every pair of them with the voice of
    another clip of the same fold, judged by the model fitted on the other folds."""
    genuine, swapped = {}, {}
    for held, model in folds(clips, count):
        backend = LiteBackend(model)
        for face in held:
            for voice in held:
                clip = face.clip if voice is face else _with_voice(face.clip, voice.clip)
                score = judge(clip, backend, threshold=0.0)["score"]
                (genuine if voice is face else swapped)[f"{face.name}+{voice.name}"] = score
    return {"genuine": genuine, "swapped": swapped}


def _with_voice(clip, other):
    """`clip` with `other`'s audio, cut or padded with silence to its length."""
    return dataclasses.replace(clip, audio=pad_or_trim(other.audio, len(clip.audio)))


def fit_corpus(paths, out: str | Path, progress: bool = False, debug: bool = False) -> dict:
    """Fit on the genuine clips at `paths`, cross-validate, save to `out`; returns the summary
    (held-out AUC genuine vs swapped voice, the threshold at FALSE_ALARMS) also stored in the
    file's provenance."""
    clips = read_genuine(paths, progress, debug)
    if len(clips) < 2 * FOLDS:
        raise SpeechForensicsError(f"{len(clips)} usable genuine clips; need {2 * FOLDS} to fit")
    cv = cross_validate(clips)
    genuine = [s for s in cv["genuine"].values() if s is not None]
    swapped = [s for s in cv["swapped"].values() if s is not None]
    summary = {
        "held_out_auc_swapped_voice": metrics.auc_real_fake(genuine, swapped),
        "held_out_genuine": len(genuine),
        "held_out_swapped": len(swapped),
        "threshold": float(np.quantile(genuine, FALSE_ALARMS)),
        "false_alarms": FALSE_ALARMS,
    }
    model = fit(
        [(c.visual, c.audio, c.rows) for c in clips],
        clips=[{"file": c.name, "sha256": file_hash(Path(p))} for c, p in _named(clips, paths)],
        fitted=datetime.date.today().isoformat(),
        cross_validation=summary | {"folds": FOLDS, "scores": cv},
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return summary


def _named(clips: list[Genuine], paths) -> list[tuple[Genuine, Path]]:
    by_name = {Path(p).name: p for p in paths}
    return [(c, by_name[c.name]) for c in clips]
