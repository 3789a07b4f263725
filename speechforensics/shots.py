"""Hard cuts between shots, found frame by frame while a clip is read once.

Each frame is shrunk to about WORK_PIXELS pixels of luma and put in units of its own contrast
(minus the mean, over the standard deviation, both taken where the picture is not flat, so fades
and letterbox bars do not count). It is compared with the previous frame block by block: each
block may move up to SHIFT_PX (camera motion, a moving head, a zoom) and keeps its best match.
The mean block difference, over the frames' mean gradient (motion shows as differences where
the picture has edges), is the frame's score. A cut starts frame t when its score is at least
CUT_SCORE and CUT_RATIO times the mean score over the shot's recent frames (busy footage moves
more). Memory is two small images and RECENT_FRAMES numbers.

Thresholds come from the 51 dev clips, as they are and letterboxed into 640x360 (as fakes.py
joins them): within a clip a score reaches 0.56 (2.2 times its recent mean), but no more than
0.38 where it is 4 times the recent mean; from the last frame of one clip to the first of
another (3,680 pairs) it is at least 0.69 (letterboxed GRID speakers, one studio), and at least
7 times the recent mean.
"""

from collections import deque
from collections.abc import Iterable, Iterator
from itertools import pairwise

import cv2
import numpy as np

from speechforensics.media import rgb_frame

WORK_PIXELS = 4096  # px: frames are compared at about this size (64x64, 85x48 for 16:9)
BLOCKS = 4  # the work image is matched in BLOCKS x BLOCKS blocks, each on its own
SHIFT_PX = 2  # px at work size: how far a block may move between frames (3% of the width)
FLAT_RANGE = 2.0  # grey levels: a pixel whose 3x3 neighbourhood varies less is flat (bars)
LUMA_NOISE = 4.0  # grey levels added to the std, so nearly flat frames do not amplify noise
GRADIENT_FLOOR = 0.02  # std units per px added to the mean gradient, for flat frames
CUT_SCORE = 0.5  # a cut's score (mean block difference over mean gradient) is at least this
CUT_RATIO = 4.0  # ... and this many times the mean score over the shot's recent frames
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
        self.score = 0.0  # score of the last frame against the one before (for inspection)
        self._size: tuple[int, int] | None = None  # work size (width, height)
        self._previous: tuple[np.ndarray, float] | None = None  # normalised luma, gradient
        self._recent: deque = deque(maxlen=RECENT_FRAMES)  # differences in the current shot

    @property
    def shots(self) -> list[tuple[int, int]]:
        """Half-open [start, stop) frame ranges of the shots seen so far, in order."""
        bounds = [0, *self.cuts, self.frames]
        return [(a, b) for a, b in pairwise(bounds) if b > a]

    def update(self, frame: np.ndarray) -> bool:
        """Take the next [H, W, 3] uint8 RGB frame; True if a cut comes just before it."""
        luma = self._luma(frame)
        current = luma, mean_gradient(luma)
        t, previous, self._previous = self.frames, self._previous, current
        self.frames += 1
        if previous is None:
            return False
        gradient = (previous[1] + current[1]) / 2 + GRADIENT_FLOOR
        self.score = block_difference(previous[0], luma) / gradient
        shot_start = self.cuts[-1] if self.cuts else 0
        recent = np.mean(self._recent) if self._recent else 0.0
        if (
            t - shot_start >= MIN_SHOT_FRAMES
            and self.score >= CUT_SCORE
            and self.score >= CUT_RATIO * recent
        ):
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
        frame = rgb_frame(frame, self.frames, "cut detection")
        if self._size is None:
            self._size = work_size(frame.shape[1], frame.shape[0])
        return normalised_luma(frame, self._size)


def work_size(width: int, height: int) -> tuple[int, int]:
    """(width, height) of about WORK_PIXELS with the frame's aspect, never larger than it."""
    scale = min(1.0, (WORK_PIXELS / (width * height)) ** 0.5)
    return max(1, round(width * scale)), max(1, round(height * scale))


def normalised_luma(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Luma of an RGB frame at `size`, minus its mean, over its std (+LUMA_NOISE), both over
    the pixels that are not flat: float32.

    Shrinking samples bilinearly at 2x the work size, then averages 2x2 (area): 0.05 ms for a
    1080p frame, where area averaging of the whole frame takes 6 ms."""
    w, h = size
    if frame.shape[1] > 2 * w:
        frame = cv2.resize(frame, (2 * w, 2 * h), interpolation=cv2.INTER_LINEAR)
    small = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
    luma = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    square = np.ones((3, 3), np.uint8)
    busy = luma[cv2.dilate(luma, square) - cv2.erode(luma, square) > FLAT_RANGE]
    ref = busy if busy.size >= 0.05 * luma.size else luma
    return (luma - ref.mean()) / (ref.std() + LUMA_NOISE)


def mean_gradient(luma: np.ndarray) -> float:
    """Mean absolute difference between neighbouring pixels, across and down."""
    across = cv2.absdiff(luma[:, 1:], luma[:, :-1]).mean()
    down = cv2.absdiff(luma[1:], luma[:-1]).mean()
    return float(across + down)


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
