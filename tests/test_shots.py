"""Hard cuts on clips joined from real dev clips (skipped where ../shared is absent)."""

from itertools import islice

import cv2
import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import media, shots
from speechforensics.errors import SpeechForensicsError
from speechforensics.shots import CutDetector

DEV = SHARED / "media/dev"


def frames_of(name: str, start: int = 0, stop: int | None = None) -> list[np.ndarray]:
    """Frames [start, stop) of a dev clip at 25 fps."""
    return list(islice(media.read_frames(need(DEV / name)), start, stop))


def cuts_in(frames) -> list[int]:
    detector = CutDetector()
    for frame in frames:
        detector.update(frame)
    return detector.cuts


def letterboxed(frames, canvas=(640, 360)):
    """Frames scaled to fit `canvas` (width, height), centred on black, as fakes.py joins clips."""
    width, height = canvas
    h, w = frames[0].shape[:2]
    scale = min(width / w, height / h)
    size = (round(w * scale) // 2 * 2, round(h * scale) // 2 * 2)
    x0, y0 = (width - size[0]) // 2, (height - size[1]) // 2
    out = []
    for frame in frames:
        box = np.zeros((height, width, 3), np.uint8)
        box[y0 : y0 + size[1], x0 : x0 + size[0]] = cv2.resize(frame, size)
        out.append(box)
    return out


@pytest.mark.parametrize(
    "first, second, boxed",
    [
        # one studio, one framing, similar colours: among the smallest scores across a cut
        # (0.87 as they are, 0.74 letterboxed, where a cut needs 0.5)
        (("grid_lbax4n.mpg", 0, 40), ("grid_lrwp9a.mpg", 0, 40), False),
        (("grid_lbax4n.mpg", 0, 40), ("grid_lrwp9a.mpg", 0, 40), True),
        # 160x160 face crops that move a lot; frames 60-120 of the first hold its largest
        # score within a clip (0.57 at 91, but 2.2 times the recent mean where a cut needs 4)
        (("lrs2_deepavsr_00016.mp4", 60, 120), ("lrs2_deepavsr_00022.mp4", 0, 40), False),
    ],
)
def test_cut_between_two_clips_is_found_and_nothing_else(tmp_path, first, second, boxed):
    a, b = frames_of(*first), frames_of(*second)
    if boxed:
        a, b = letterboxed(a), letterboxed(b)
    path = media.write_clip(tmp_path / "joined.mp4", a + b)  # H.264, read back as for a video
    detector = CutDetector()
    decoded = list(detector.feed(media.read_frames(path)))
    assert len(decoded) == len(a) + len(b) == detector.frames
    [cut] = detector.cuts
    assert abs(cut - len(a)) <= 1
    assert detector.shots == [(0, cut), (cut, len(decoded))]


def fade(frames, start: int, frames_long: int = 25, to: float = 0.15):
    """Brightness scaled from 1 down to `to` over `frames_long` frames from `start`."""
    for t, frame in enumerate(frames):
        k = 1 - (1 - to) * min(max(t - start, 0) / frames_long, 1)
        yield np.round(frame * k).astype(np.uint8)


def zoom(frames, start: int, frames_long: int = 25, to: float = 1.5):
    """A zoom into the centre, from 1x to `to` over `frames_long` frames from `start`."""
    for t, frame in enumerate(frames):
        s = 1 + (to - 1) * min(max(t - start, 0) / frames_long, 1)
        h, w = frame.shape[:2]
        ch, cw = round(h / s), round(w / s)
        y, x = (h - ch) // 2, (w - cw) // 2
        yield cv2.resize(frame[y : y + ch, x : x + cw], (w, h), interpolation=cv2.INTER_LINEAR)


def pan(frames, start: int, frames_long: int = 25, by: float = 0.4):
    """The picture pans right by `by` of its width over `frames_long` frames (grey fills in)."""
    for t, frame in enumerate(frames):
        dx = round(by * frame.shape[1] * min(max(t - start, 0) / frames_long, 1))
        out = np.full_like(frame, 128)
        out[:, dx:] = frame[:, : frame.shape[1] - dx]
        yield out


@pytest.mark.parametrize("change", [fade, zoom, pan])
def test_gradual_changes_over_a_second_are_not_cuts(change):
    frames = frames_of("hyperlips_video2_video2.mp4", 0, 75)  # 1280x720 interview
    assert cuts_in(change(frames, 20)) == []
    if change is not pan:  # a pan twice as fast (0.8 widths a second) comes near a cut
        assert cuts_in(change(frames, 20, frames_long=12)) == []


def test_a_real_hard_cut_survives_the_gradual_changes():
    # the same shot change, but each part fading or zooming: still one cut, in its place
    a = list(zoom(frames_of("pcavs_Pose_00067.mp4", 0, 50), 10, frames_long=40, to=1.3))
    b = list(fade(frames_of("pcavs_Audio_00104.mp4", 0, 50), 0, frames_long=50, to=0.5))
    assert cuts_in(a + b) == [50]


def test_shots_feed_and_errors():
    detector = CutDetector()
    assert detector.shots == []
    grey = [np.full((90, 160, 3), v, np.uint8) for v in (100, 100, 100, 100, 100, 140)]
    assert [detector.update(f) for f in grey] == [False] * 6  # flat frames: no structure
    assert detector.shots == [(0, 6)]
    frames = frames_of("grid_bbaf2n.mpg", 0, 30) + frames_of("pcavs_Pose_00067.mp4", 0, 30)
    detector = CutDetector()
    assert [f is g for f, g in zip(detector.feed(frames), frames, strict=True)] == [True] * 60
    assert detector.cuts == [30] and detector.shots == [(0, 30), (30, 60)]
    with pytest.raises(SpeechForensicsError, match="uint8 RGB"):
        CutDetector().update(np.zeros((32, 32), np.uint8))


def test_work_size_keeps_the_aspect_and_never_enlarges():
    assert shots.work_size(1920, 1080) == (85, 48)
    assert shots.work_size(1080, 1920) == (48, 85)
    assert shots.work_size(160, 160) == (64, 64)
    assert shots.work_size(40, 30) == (40, 30)
