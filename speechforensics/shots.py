"""Hard cuts between shots, found frame by frame while a clip is read once.

Each frame is shrunk to about WORK_PIXELS pixels of luma, normalised by its own mean and standard
deviation (so fades and changes of exposure do not count), and compared with the previous frame
block by block: every block may move up to SHIFT_PX (camera motion, a moving head, a zoom) and
keeps its best match. A cut starts frame t when that difference is large both in itself and
against the mean difference over the shot's recent frames (busy footage moves more): at least
CUT_SCORE and CUT_RATIO times that mean, or, after a still stretch, at least STILL_CUT_SCORE
and STILL_CUT_RATIO times it. Memory is two small images and RECENT_FRAMES numbers.

Thresholds come from the 51 dev clips, as they are and letterboxed into 640x360 (as
fakes.py joins them): within a clip, a difference of 0.18 or more is at most 2.6 times its
recent mean, one of 0.10 or more at most 11.1 times; across a cut from the last frame of one
clip to the first of another (3,680 pairs) it is at least 6.6 times the recent mean, and at
least 20 times where it is under 0.18 (letterboxed GRID speakers, one studio, as little as
0.11).
"""

from collections import deque
from collections.abc import Iterable, Iterator
from itertools import pairwise

import cv2
import numpy as np

from speechforensics.errors import SpeechForensicsError

WORK_PIXELS = 4096  # px: frames are compared at about this size (64x64, 85x48 for 16:9)
BLOCKS = 4  # the work image is matched in BLOCKS x BLOCKS blocks, each on its own
SHIFT_PX = 2  # px at work size: how far a block may move between frames (3% of the width)
LUMA_NOISE = 4.0  # grey levels added to the frame's std, so flat frames do not amplify noise
CUT_SCORE = 0.18  # mean block difference (luma in frame std units) a cut needs at least ...
CUT_RATIO = 4.0  # ... and this many times the mean difference over the shot's recent frames,
STILL_CUT_SCORE = 0.10  # ... or at least this much ...
STILL_CUT_RATIO = 16.0  # ... and this many times the recent mean (a cut after still footage)
RECENT_FRAMES = 25  # frames of the current shot behind that mean (1 s at 25 fps)
MIN_SHOT_FRAMES = 4  # frames: no cut this soon after the start of a shot (0.16 s)


class CutDetector:
    """Feed every frame of a clip in order to `update`; `cuts` and `shots` say what was found.

    `update(frame)` is True when a hard cut comes just before `frame` (it starts a new shot);
    `feed(frames)` does the same for a stream and yields the frames on, so one pass over a
    clip can find its shots and its faces together.
    """

    def __init__(self):
        self.frames = 0  # frames seen so far
        self.cuts: list[int] = []  # index of the first frame of every shot after the first
        self.score = 0.0  # block difference between the last two frames (for inspection)
        self._size: tuple[int, int] | None = None  # work size (width, height)
        self._previous: np.ndarray | None = None  # previous frame, normalised luma
        self._recent: deque = deque(maxlen=RECENT_FRAMES)  # differences in the current shot

    @property
    def shots(self) -> list[tuple[int, int]]:
        """Half-open [start, stop) frame ranges of the shots seen so far, in order."""
        bounds = [0, *self.cuts, self.frames]
        return [(a, b) for a, b in pairwise(bounds) if b > a]

    def update(self, frame: np.ndarray) -> bool:
        """Take the next [H, W, 3] uint8 RGB frame; True if a cut comes just before it."""
        luma = self._luma(frame)
        t, previous, self._previous = self.frames, self._previous, luma
        self.frames += 1
        if previous is None:
            return False
        self.score = block_difference(previous, luma)
        shot_start = self.cuts[-1] if self.cuts else 0
        recent = np.mean(self._recent) if self._recent else 0.0
        if t - shot_start >= MIN_SHOT_FRAMES and is_cut(self.score, recent):
            self.cuts.append(t)
            self._recent.clear()
            return True
        self._recent.append(self.score)
        return False

    def feed(self, frames: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        """The same frames, each passed to `update` before it is yielded."""
        for frame in frames:
            self.update(frame)
            yield frame

    def _luma(self, frame: np.ndarray) -> np.ndarray:
        frame = np.asarray(frame)
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise SpeechForensicsError(
                f"frame {self.frames} is {frame.dtype} {frame.shape}; cut detection needs "
                "[H, W, 3] uint8 RGB frames (decode with speechforensics.media)"
            )
        if self._size is None:
            self._size = work_size(frame.shape[1], frame.shape[0])
        return normalised_luma(frame, self._size)


def is_cut(score: float, recent: float) -> bool:
    """Whether a block difference of `score`, after a shot whose recent frames differed by
    `recent` on average, is a cut."""
    if score >= CUT_SCORE and score >= CUT_RATIO * recent:
        return True
    return score >= STILL_CUT_SCORE and score >= STILL_CUT_RATIO * recent


def work_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of about WORK_PIXELS with the frame's aspect, never larger than it."""
    scale = min(1.0, (WORK_PIXELS / (width * height)) ** 0.5)
    return max(1, round(width * scale)), max(1, round(height * scale))


def normalised_luma(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Luma of an RGB frame at `size`, minus its mean, over its std (+LUMA_NOISE): float32.

    Shrinking samples bilinearly at 2x the work size, then averages 2x2 (area): 0.05 ms for a
    1080p frame, where area averaging of the whole frame takes 6 ms."""
    w, h = size
    if frame.shape[1] > 2 * w:
        frame = cv2.resize(frame, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return (luma - luma.mean()) / (luma.std() + LUMA_NOISE)


def block_difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over BLOCKS x BLOCKS blocks of `b` of the mean absolute difference to the best
    match in `a` within SHIFT_PX (same-sized float images of normalised luma)."""
    r = SHIFT_PX
    h, w = a.shape
    bh, bw = (h - 2 * r) // BLOCKS, (w - 2 * r) // BLOCKS
    if min(bh, bw) < 1:
        return float(np.abs(a - b).mean())
    hh, ww = bh * BLOCKS, bw * BLOCKS
    inner = b[r : r + hh, r : r + ww]
    best = None
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            diff = cv2.absdiff(a[dy : dy + hh, dx : dx + ww], inner)
            blocks = cv2.resize(diff, (BLOCKS, BLOCKS), interpolation=cv2.INTER_AREA)  # means
            best = blocks if best is None else np.minimum(best, blocks, out=best)
    return float(best.mean())
