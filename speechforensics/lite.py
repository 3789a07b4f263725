"""lipsync-lite: the weight-free model behind the default backend, fitted on genuine clips only.

What it compares, per 25 fps frame:
- the lips: 17 measures of the 68 landmarks (lip gaps, widths, thicknesses, jaw and lip
  positions), in a face frame that removes position, in-plane rotation and size (nose tip at the
  origin, eye line horizontal, outer eye corners one unit apart), standardised over the track
  (so face size, the person's mouth shape and the camera do not matter), plus their changes
  from frame to frame;
- the mouth's look: the low 8x8 two-dimensional cosine transform (DCT) of the centre 88x88 of
  the 96x96 mouth crop (mouth.py) shrunk to 32x32, without its mean (63 values): teeth, tongue
  and the dark of an open mouth, which the lip outline does not show; standardised over the
  track (so lighting, skin and camera do not matter), with its changes from frame to frame;
- the open mouth's dark and the teeth's bright (6 values, `mouth_darkness`): shares of the
  crop's centre darker or brighter than grey levels of the frame and the clip, which no linear
  map of the look can compute; standardised and with their changes, as the look;
- the voice: the 26-band log filterbank of features.py at 100 Hz, its 4 frames per video frame
  stacked (104 values), and its onsets: each band's rise from the 10 ms before, where it rises
  (0 where it falls), stacked the same way (104 values) - a burst after closed lips, a vowel
  starting as the mouth opens: a rise and a fall are different events, which no linear map of
  the filterbank alone can tell apart; both standardised over the clip (so level and
  microphone do not matter);
- both over 7 frames (the frame and 3 either side, 0.28 s).

A clip is judged on the mean of what its face and the face's mirror image give
(`judged_visual_input`): the fit sees both.

Canonical correlation analysis, fitted on the speech frames of genuine clips, finds the
CANONICAL_DIMS directions of the two in which lips and voice move together most; the backend's
streams are the two projections, compared by cosine similarity like AV-HuBERT's; over a span
of STREAM_MEAN_MIN_FRAMES or more, each less its running mean over STREAM_MEAN_FRAMES (a slow
drift is not timing; over a shorter span the running mean is little more than the span's own
mean, and taking that off loses sync: measured in the README, "The default backend"). No forged
video is used to fit it. The fitted numbers ship in data/lipsync_lite.npz, with their provenance;
`speechforensics fit-lite` (fit_lite.py) reproduces them.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .errors import SpeechForensicsError
from .features import AUDIO_FEAT_DIM, SAMPLES_PER_FRAME, log_filterbank, stack_frames

CONTEXT_FRAMES = 3  # frames either side stacked with each frame (7 frames, 0.28 s)
CANONICAL_DIMS = 6  # canonical directions kept: the width of both streams
REGULARISATION = 10.0  # share of the mean variance added to each covariance's diagonal
MIN_FIT_FRAMES = 100  # speech frames (4 s) at least to fit on (the covariances are regularised)
STD_FLOOR = 1e-6  # floor of a standard deviation (a measure that never moves)
FRAME_MEDIAN_FRAMES = 25  # frames (1 s): running median of the face frame's size and angle
STREAM_MEAN_FRAMES = 75  # frames (3 s): each stream less its running mean over this many ...
STREAM_MEAN_MIN_FRAMES = 150  # frames (6 s): ... when the judged span is at least this long
PARAMS = Path(__file__).parent / "data" / "lipsync_lite.npz"
FORMAT = 5  # version of the parameter file's inputs (3: the mouth's look; 4: onsets; 5: darkness)
APPEARANCE_PX = 32  # side of the shrunk mouth crop whose cosine transform is taken
APPEARANCE_DCT = 8  # the low APPEARANCE_DCT x APPEARANCE_DCT coefficients kept, less the mean
APPEARANCE = APPEARANCE_DCT**2 - 1
# The mouth's darkness (mouth_darkness), in the centre half (both ways) of the crop's 88x88 centre:
DARK_SHARE = 0.5  # a pixel is dark below this share of its frame's median grey level
CAVITY_ROW_SHARE = 0.3  # a row's middle half is open mouth when this share of it is dark
CLIP_DARK_PERCENTILE = 10  # percent: the clip's grey level below which a pixel is among its darkest
CLIP_BRIGHT_PERCENTILE = 95  # percent: the clip's grey level above which it is among its brightest
DARKNESS = 6
AUDIO = 2 * AUDIO_FEAT_DIM  # the stacked filterbank and its stacked onsets, per video frame
CROP_BORDER_PX = 4  # the centre 88x88 of the 96x96 crop, as AV-HuBERT's input

# The face frame: nose tip at the origin, outer eye corners (36, 45) on the x axis, 1 apart.
NOSE_TIP, EYE_CORNERS = 33, (36, 45)
# Lip measures on the 68-point (iBUG 300-W) layout, in face-frame units.
DISTANCES = (
    (61, 67), (62, 66), (63, 65),  # inner-lip gaps: left, middle, right
    (50, 58), (51, 57), (52, 56),  # outer-lip heights
    (48, 54), (60, 64),  # outer and inner mouth width
    (51, 62), (57, 66),  # upper and lower lip thickness
)  # fmt: skip
HEIGHTS = (8, 51, 57, 62, 66)  # y of the chin and of the upper/lower, outer/inner lip middles
CORNERS = (48, 54)  # mouth corners: their mean y (smile, frown) and x difference (width, signed)
MEASURES = len(DISTANCES) + len(HEIGHTS) + 2
# Each point's left-right mirror partner (jaw, brows, nose bridge, nostrils, eyes, outer and inner
# lips), so that a mirrored face's points keep their meaning.
MIRROR_POINTS = (
    *range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, 35, 34, 33, 32, 31,
    45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
    54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65,
)  # fmt: skip


def face_frame(landmarks: np.ndarray) -> np.ndarray:
    """[T, 68, 2] landmarks moved, rotated and scaled into the face frame. The eye line's length
    and angle are running medians over FRAME_MEDIAN_FRAMES: a head turns and a camera zooms
    slower than that, while the eye corners of a small, blurred or sunglassed face jitter from
    frame to frame (and would shake every lip measure with them)."""
    left, right = landmarks[:, EYE_CORNERS[0]], landmarks[:, EYE_CORNERS[1]]
    eyes = right - left
    scale = running_median(np.maximum(np.linalg.norm(eyes, axis=1), STD_FLOOR))
    angle = running_median(np.unwrap(np.arctan2(eyes[:, 1], eyes[:, 0])))
    cos, sin = np.cos(angle), np.sin(angle)
    rotation = np.stack([np.stack([cos, sin], -1), np.stack([-sin, cos], -1)], -2)  # by -angle
    centred = landmarks - landmarks[:, NOSE_TIP : NOSE_TIP + 1]
    return np.einsum("tij,tkj->tki", rotation, centred) / scale[:, None, None]


def running_median(x: np.ndarray, size: int = FRAME_MEDIAN_FRAMES) -> np.ndarray:
    """[T] median of each value and the size // 2 before and after it (ends repeated)."""
    half = min(size // 2, len(x) - 1) if len(x) else 0
    padded = np.pad(x, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1), axis=1)


def lip_measures(landmarks: np.ndarray) -> np.ndarray:
    """[T, MEASURES] lip geometry of each frame, in face-frame units."""
    p = face_frame(np.asarray(landmarks, np.float64))
    a, b = zip(*DISTANCES)
    distances = np.linalg.norm(p[:, a] - p[:, b], axis=-1)
    heights = p[:, HEIGHTS, 1]
    corners = np.stack([p[:, CORNERS, 1].mean(1), p[:, CORNERS[1], 0] - p[:, CORNERS[0], 0]], 1)
    return np.concatenate([distances, heights, corners], axis=1)


def mirrored(landmarks: np.ndarray, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The face as a mirror shows it: [T, 68, 2] landmarks flipped left-right, each point
    taking its mirror partner's place, and the [T, H, W] mouth crops flipped."""
    return landmarks[:, MIRROR_POINTS] * np.array([-1.0, 1.0]), crops[:, :, ::-1]


def running_mean(x: np.ndarray, size: int) -> np.ndarray:
    """[T, D] mean of each row and the size // 2 rows before and after it (ends repeated)."""
    half = size // 2
    padded = np.pad(np.asarray(x, np.float64), ((half, half), (0, 0)), mode="edge")
    total = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(padded, axis=0)])
    return (total[2 * half + 1 :] - total[: -2 * half - 1]) / (2 * half + 1)


def standardise(x: np.ndarray, rows: np.ndarray | None = None) -> np.ndarray:
    """`x` with each column's mean removed and divided by its spread, measured over `rows`."""
    ref = x if rows is None or not rows.any() else x[rows]
    return (x - ref.mean(0)) / np.maximum(ref.std(0), STD_FLOOR)


def with_context(x: np.ndarray, half: int = CONTEXT_FRAMES) -> np.ndarray:
    """[T, (2*half+1)*D]: each row with the `half` rows before and after it (ends repeated)."""
    padded = np.pad(x, ((half, half), (0, 0)), mode="edge")
    return np.concatenate([padded[i : i + len(x)] for i in range(2 * half + 1)], axis=1)


def mouth_appearance(crops: np.ndarray) -> np.ndarray:
    """[T, APPEARANCE] the look of each [96, 96] uint8 mouth crop: the low cosine-transform
    coefficients of its centre, shrunk to APPEARANCE_PX, without the first (the mean)."""
    border = CROP_BORDER_PX
    out = np.empty((len(crops), APPEARANCE), np.float64)
    for i, crop in enumerate(crops):
        centre = crop[border:-border, border:-border].astype(np.float32) / 255.0
        small = cv2.resize(centre, (APPEARANCE_PX, APPEARANCE_PX), interpolation=cv2.INTER_AREA)
        out[i] = cv2.dct(small)[:APPEARANCE_DCT, :APPEARANCE_DCT].ravel()[1:]
    return out


def mouth_darkness(crops: np.ndarray) -> np.ndarray:
    """[T, DARKNESS] of [T, 96, 96] uint8 mouth crops, in the centre half (both ways) of each
    crop's 88x88 centre: the share of pixels darker than DARK_SHARE of the frame's median grey
    level (the open mouth), darker than the clip's CLIP_DARK_PERCENTILE grey level, brighter than
    its CLIP_BRIGHT_PERCENTILE (teeth); the mean grey level over the frame's median plus one; the
    share of the 88 rows whose middle half is at least CAVITY_ROW_SHARE dark (the open mouth's
    height); log(1 + the grey levels' spread)."""
    b = CROP_BORDER_PX
    centres = np.asarray(crops)[:, b:-b, b:-b]
    counts = np.zeros(256, np.int64)
    for centre in centres:
        counts += np.bincount(centre.ravel(), minlength=256)
    darkest = grey_percentile(counts, CLIP_DARK_PERCENTILE)
    brightest = grey_percentile(counts, CLIP_BRIGHT_PERCENTILE)
    out = np.empty((len(centres), DARKNESS), np.float64)
    for i, centre in enumerate(centres):
        grey = centre.astype(np.float32)
        h, w = grey.shape
        box = grey[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4]
        median = np.median(grey)
        dark_rows = (grey[:, w // 4 : 3 * w // 4] < DARK_SHARE * median).mean(1)
        out[i] = (
            (box < DARK_SHARE * median).mean(),
            (box < darkest).mean(),
            (box > brightest).mean(),
            box.mean() / (median + 1),
            (dark_rows > CAVITY_ROW_SHARE).mean(),
            np.log1p(box.std()),
        )
    return out


def grey_percentile(counts: np.ndarray, q: float) -> float:
    """The q-th percentile (numpy's linear rule) of grey levels given by their `counts`."""
    cumulative = np.cumsum(counts)
    at = q / 100 * (cumulative[-1] - 1)
    low, high = (
        int(np.searchsorted(cumulative, k, side="right")) for k in (np.floor(at), np.ceil(at))
    )
    return float(low + (at - np.floor(at)) * (high - low))


def visual_input(
    landmarks: np.ndarray,
    crops: np.ndarray,
    measured: np.ndarray | None = None,
    darkness: np.ndarray | None = None,
) -> np.ndarray:
    """[T, 2*(MEASURES+APPEARANCE+DARKNESS)*7] from a track's (interpolated) landmarks and
    mouth crops; `measured` marks the frames whose face was seen, over which each is
    standardised; `darkness`: mouth_darkness(crops) when already known."""
    if darkness is None:
        darkness = mouth_darkness(crops)
    parts = (lip_measures(landmarks), mouth_appearance(crops), darkness)
    both = np.concatenate([standardise(x, measured) for x in parts], axis=1)
    return with_context(np.concatenate([both, np.gradient(both, axis=0)], axis=1))


def judged_visual_input(
    landmarks: np.ndarray, crops: np.ndarray, measured: np.ndarray | None = None
) -> np.ndarray:
    """What a clip is judged on: the mean of visual_input of the face and of its mirror image.
    The fit sees both (fit_lite.MIRROR), so each is an estimate of the same lips; their mean
    halves what is noise on one side only (a landmark slipping at one mouth corner, a shadow).
    The darkness is measured once: its regions are symmetric, so the mirror's is the same."""
    darkness = mouth_darkness(crops)
    return 0.5 * (
        visual_input(landmarks, crops, measured, darkness)
        + visual_input(*mirrored(landmarks, crops), measured, darkness)
    )


def audio_input(audio: np.ndarray) -> np.ndarray:
    """[T, AUDIO*7] from 16 kHz mono audio with 640 samples per video frame (media.read_audio)."""
    frames = len(audio) // SAMPLES_PER_FRAME
    bank = log_filterbank(audio).astype(np.float64)
    rises = np.maximum(np.diff(bank, axis=0, prepend=bank[:1]), 0.0)
    both = [standardise(stack_frames(x)[:frames]) for x in (bank, rises)]
    return with_context(np.concatenate(both, axis=1))


@dataclass(frozen=True)
class LiteModel:
    """Fitted means and canonical projections of both inputs, and where they came from."""

    visual_mean: np.ndarray  # [Dv]
    visual_projection: np.ndarray  # [Dv, CANONICAL_DIMS]
    audio_mean: np.ndarray  # [Da]
    audio_projection: np.ndarray  # [Da, CANONICAL_DIMS]
    correlations: np.ndarray  # [CANONICAL_DIMS] canonical correlations on the fitting frames
    provenance: dict  # clips, frames, settings, date, cross-validation: JSON-ready

    def streams(self, visual: np.ndarray, audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The two [T, CANONICAL_DIMS] streams from visual_input and audio_input; over
        STREAM_MEAN_MIN_FRAMES or more, each less its running mean over STREAM_MEAN_FRAMES: what
        drifts slower than that (a head settling, a voice warming up, speech against pause) is
        not timing, yet it would tilt every frame's direction and so the cosine comparing them."""
        visual = (visual - self.visual_mean) @ self.visual_projection
        audio = (audio - self.audio_mean) @ self.audio_projection
        if len(visual) < STREAM_MEAN_MIN_FRAMES:
            return visual, audio
        return tuple(x - running_mean(x, STREAM_MEAN_FRAMES) for x in (visual, audio))

    def save(self, path: str | Path) -> None:
        arrays = {k: getattr(self, k) for k in ARRAYS}
        meta = json.dumps({"format": FORMAT, "provenance": self.provenance})
        np.savez(path, **arrays, meta=np.array(meta))


ARRAYS = ("visual_mean", "visual_projection", "audio_mean", "audio_projection", "correlations")


def load(path: str | Path = PARAMS) -> LiteModel:
    """The fitted model in `path` (default: the one shipped); no pickle is read."""
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in ARRAYS}
            meta = json.loads(str(f["meta"]))
    except (OSError, ValueError, KeyError) as e:
        raise SpeechForensicsError(f"{path}: not a lipsync-lite parameter file ({e})") from e
    if meta.get("format") != FORMAT:
        raise SpeechForensicsError(
            f"{path}: lipsync-lite format {meta.get('format')}, this version reads {FORMAT}"
        )
    window = 2 * CONTEXT_FRAMES + 1
    dims = (2 * (MEASURES + APPEARANCE + DARKNESS) * window, AUDIO * window)
    if (arrays["visual_projection"].shape[0], arrays["audio_projection"].shape[0]) != dims:
        raise SpeechForensicsError(f"{path}: fitted for other inputs than this version's")
    return LiteModel(**arrays, provenance=meta["provenance"])


def fit(examples, dims: int = CANONICAL_DIMS, regularisation: float = REGULARISATION, **prov):
    """A LiteModel from (visual_input, audio_input, frames) triples of genuine clips, `frames`
    marking the rows to fit on (speech with the face in view); `prov` goes into its provenance."""
    x = np.concatenate([v[rows] for v, _, rows in examples])
    y = np.concatenate([a[rows] for _, a, rows in examples])
    if len(x) < MIN_FIT_FRAMES:
        raise SpeechForensicsError(f"{len(x)} speech frames are too few to fit lipsync-lite")
    mx, my = x.mean(0), y.mean(0)
    wx, wy = (
        _inverse_sqrt(_covariance(x - mx, regularisation)),
        _inverse_sqrt(_covariance(y - my, regularisation)),
    )
    u, s, vt = np.linalg.svd(wx @ ((x - mx).T @ (y - my) / len(x)) @ wy)
    settings = {
        "context_frames": CONTEXT_FRAMES,
        "dims": dims,
        "regularisation": regularisation,
        "stream_mean_frames": STREAM_MEAN_FRAMES,
        "stream_mean_min_frames": STREAM_MEAN_MIN_FRAMES,
    }
    provenance = {"frames": len(x), "settings": settings, **prov}
    return LiteModel(
        mx.astype(np.float32),
        (wx @ u[:, :dims]).astype(np.float32),
        my.astype(np.float32),
        (wy @ vt.T[:, :dims]).astype(np.float32),
        s[:dims].astype(np.float32),
        provenance,
    )


def _covariance(centred: np.ndarray, regularisation: float) -> np.ndarray:
    c = centred.T @ centred / len(centred)
    return c + regularisation * np.trace(c) / len(c) * np.eye(len(c))


def _inverse_sqrt(c: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(c)
    return (v / np.sqrt(w)) @ v.T
