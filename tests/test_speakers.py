"""speakers.py: speech stretches cut at pauses, shots and length; a still mouth is never the
speaker; turns merge one face's consecutive stretches. On a real clip's speech and landmarks."""

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import scoring, speakers
from speechforensics.backends import LiteBackend
from speechforensics.pipeline import face_evidence, prepare

DEV = SHARED / "media/dev"


@pytest.fixture(scope="module")
def clip():
    return prepare(need(DEV / "lrs2_deepavsr_00016.mp4"))


def test_stretches_follow_the_speech_and_are_cut_at_shots_and_length():
    speech = np.zeros(300, bool)
    speech[10:40] = speech[45:60] = True  # a 5-frame pause: one stretch
    speech[100:230] = True  # 130 frames: cut into 3 equal pieces of at most 50
    spans = speakers.stretches(speech, [(0, 120), (120, 300)])
    assert spans[0] == (10, 60, 0)
    assert spans[1] == (100, 120, 0)  # the shot ends it
    rest = spans[2:]
    assert [s for *_, s in rest] == [1, 1, 1] and rest[0][0] == 120 and rest[-1][1] == 230
    assert all(b - a <= speakers.MAX_STRETCH_FRAMES for a, b, _ in rest)
    assert speakers.stretches(np.zeros(50, bool), [(0, 50)]) == []


def test_a_speaking_mouth_moves_and_a_still_picture_does_not(clip):
    landmarks = clip.tracks[0].face.landmarks
    speech = scoring.speech_frames(clip.audio)
    opening = speakers.mouth_opening(landmarks)
    assert np.nanstd(opening[speech]) > 2 * speakers.MOTION_MIN
    still = np.repeat(landmarks[:1], len(landmarks), axis=0)
    assert np.nanstd(speakers.mouth_opening(still)) < 1e-9


def test_the_moving_face_gets_the_speech_and_a_still_one_never(clip):
    backend, speech = LiteBackend(), scoring.speech_frames(clip.audio)
    shots = [(0, clip.info.frames)]
    real = face_evidence(backend, clip, clip.tracks[0], speech, shots)
    still = speakers.FaceEvidence(
        real.shot, real.seen, real.usable, np.full_like(real.opening, 0.3), real.matrix
    )
    spans = speakers.stretches(speech, shots)
    assigned = speakers.assign(spans, {0: real, 1: still}, backend.search.score_shift)
    assert all(s.face != 1 for s in assigned) and {s.face for s in assigned} <= {0, None}
    assert sum(s.face == 0 for s in assigned) >= 0.8 * len(assigned)
    (turn,) = speakers.turns([s for s in assigned if s.face == 0], clip.info.frames)
    assert turn.face == 0 and turn.frames.sum() >= 0.8 * speech.sum()
