"""Who speaks when, in a video of any length: speech stretches, the visible face each one goes to,
and the turns they make.

A stretch is a run of speech frames (pauses shorter than STRETCH_GAP_FRAMES joined) inside one
shot. The faces seen on at least MIN_VISIBLE of a stretch are its candidates. A face whose mouth
stays still through it (opening spread under MOTION_MIN) is a listener, or the voice comes from
off screen: it is not evidence either way. Of the faces whose mouths move, the stretch goes to
the one whose lips agree best with the voice (its sync matrix rows, read as the clip score reads
them). Consecutive stretches of one face in one shot make a turn.

Everything here is numpy on per-frame arrays; pipeline.judge feeds it each face's sync matrix
and turns the result into the report.
"""

import itertools
from dataclasses import dataclass

import numpy as np

from .features import VIDEO_FPS
from .scoring import video_score

STRETCH_GAP_FRAMES = 12  # video frames (0.48 s): a shorter pause does not end a stretch
# A longer run of speech is cut into equal stretches of at most this many frames (2 s), each
# given to its own speaker: one person may answer the other without a pause.
MAX_STRETCH_FRAMES = 50
MIN_TURN_SPEECH_S = 1.5  # s of speech a turn needs to be judged on its own
# A turn is judged on its own span and this many frames either side (pipeline.turn_score):
# the lips move a little before and after the voice, and a pause this short joins stretches.
TURN_CONTEXT_FRAMES = STRETCH_GAP_FRAMES
MIN_VISIBLE = 0.5  # share of a stretch's frames a face must be measured on to be a candidate
# Mouth motion: the spread (std) over a stretch of the inner-lip gap, in units of the distance
# between the outer eye corners. A still picture gives 0; speaking mouths on the 29 genuine dev
# clips give 0.03 or more in all but a few short stretches.
MOTION_MIN = 0.012
INNER_LIP = ((61, 67), (62, 66), (63, 65))  # upper/lower inner-lip points (iBUG 68 layout)
EYE_CORNERS = (36, 45)


@dataclass(frozen=True)
class Stretch:
    """A run of speech in one shot and the face it went to (None: no visible mouth moved)."""

    start: int  # first frame
    stop: int  # frame after the last
    shot: int  # index into the clip's shots
    face: int | None  # the speaking face's track id
    agreement: dict  # track id -> how well that face's lips agree with this speech (or None)
    motion: dict  # track id -> mouth motion over the stretch


def stretches(speech: np.ndarray, shots: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    """(start, stop, shot) of each run of speech frames, pauses of under STRETCH_GAP_FRAMES
    joined, cut at every shot boundary and into pieces of at most MAX_STRETCH_FRAMES."""
    out = []
    for s, (a, b) in enumerate(shots):
        frames = np.flatnonzero(speech[a:b]) + a
        if not len(frames):
            continue
        breaks = np.flatnonzero(np.diff(frames) > STRETCH_GAP_FRAMES)
        starts = np.r_[frames[0], frames[breaks + 1]]
        stops = np.r_[frames[breaks] + 1, frames[-1] + 1]
        for x, y in zip(starts, stops, strict=True):
            cuts = np.linspace(x, y, -(-(y - x) // MAX_STRETCH_FRAMES) + 1).round().astype(int)
            out += [(int(a), int(b), s) for a, b in itertools.pairwise(cuts)]
    return out


def mouth_opening(landmarks: np.ndarray) -> np.ndarray:
    """[T] inner-lip gap over the outer-eye-corner distance (NaN where no landmarks)."""
    lm = np.asarray(landmarks, np.float64)
    gap = np.mean([np.linalg.norm(lm[:, a] - lm[:, b], axis=1) for a, b in INNER_LIP], axis=0)
    eyes = np.linalg.norm(lm[:, EYE_CORNERS[1]] - lm[:, EYE_CORNERS[0]], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return gap / eyes


def assign(
    spans: list[tuple[int, int, int]],
    faces: dict[int, "FaceEvidence"],
    score_shift: int,
) -> list[Stretch]:
    """Each speech span given to the moving face that agrees best with it (see the module)."""
    out = []
    for start, stop, shot in spans:
        motion, agreement = {}, {}
        for fid, face in faces.items():
            if face.shot != shot:
                continue
            seen = face.seen[start:stop]
            if seen.mean() < MIN_VISIBLE:
                continue
            opening = face.opening[start:stop][seen]
            motion[fid] = float(np.nanstd(opening)) if np.isfinite(opening).any() else 0.0
            rows = face.matrix[start:stop][face.usable[start:stop]]
            agreement[fid] = _agreement(rows, score_shift)
        moving = [f for f in motion if motion[f] >= MOTION_MIN]
        ranked = sorted(moving, key=lambda f: -np.inf if agreement[f] is None else agreement[f])
        face = ranked[-1] if ranked else None
        out.append(Stretch(start, stop, shot, face, agreement, motion))
    return out


def _agreement(rows: np.ndarray, score_shift: int) -> float | None:
    if not len(rows) or np.isnan(rows).all():
        return None
    score = video_score(rows, score_shift)
    return None if np.isnan(score) else score


@dataclass
class FaceEvidence:
    """One face over the whole clip (NaN / False outside its shot): what `assign` reads."""

    shot: int  # the shot it is seen in
    seen: np.ndarray  # [T] bool: the face measured (not missing)
    usable: np.ndarray  # [T] bool: speech with the face in view
    opening: np.ndarray  # [T] mouth_opening
    matrix: np.ndarray  # [T, 2*max_shift+1] its lips against the voice (NaN outside its shot)


@dataclass(frozen=True)
class Turn:
    """Consecutive stretches of one face in one shot."""

    start: int
    stop: int
    shot: int
    face: int
    frames: np.ndarray  # [T] bool: the speech frames of its stretches

    @property
    def seconds(self) -> tuple[float, float]:
        return self.start / VIDEO_FPS, self.stop / VIDEO_FPS


def turns(assigned: list[Stretch], frames: int) -> list[Turn]:
    """Consecutive stretches with the same face in the same shot, merged (stretches with no
    visible speaker end a turn)."""
    out: list[Turn] = []
    previous = None
    for s in assigned:
        if s.face is None:
            previous = None
            continue
        if previous is not None and (previous.face, previous.shot) == (s.face, s.shot):
            mask = out[-1].frames.copy()
            mask[s.start : s.stop] = True
            out[-1] = Turn(out[-1].start, s.stop, s.shot, s.face, mask)
        else:
            mask = np.zeros(frames, bool)
            mask[s.start : s.stop] = True
            out.append(Turn(s.start, s.stop, s.shot, s.face, mask))
        previous = s
    return out
