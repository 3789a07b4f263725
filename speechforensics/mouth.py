"""Mouth crops: 68-point face landmarks -> one aligned 96x96 grayscale mouth crop per frame.

The algorithm of SpeechForensics' ``preprocessing/utils.py`` (``landmarks_interpolate`` and
``crop_patch``), reproduced to within a few thousandths of a grey level on average:

1. Frames without a face (all-NaN landmark rows) are filled linearly between the detected frames
   around them; leading and trailing gaps copy the first and last detection.
2. The landmarks are averaged over a forward-looking window of 12 frames (the frame and the 11
   after it). A similarity transform (rotation, uniform scale, translation; Umeyama's least
   squares, as scikit-image's ``estimate_transform('similarity')``) maps the 5 stable points of
   the averaged landmarks (nose tip, eye corners) onto a reference face in a 256x256 canvas. The
   last 11 frames, which have no full window, reuse the transform of the last full window; a clip
   shorter than 12 frames uses one window of all its frames.
3. The crop is the 96x96 window of the canvas centred on the mean of the frame's own (unsmoothed)
   mouth points 48..67 after the transform, rounded to whole pixels and clamped to stay inside the
   canvas (the original could raise there; this never does).
4. Pixels are sampled bilinearly with black outside the frame, truncated to uint8 like the
   original's ``(warp(...) * 255).astype(uint8)``, then converted to grey (ITU-R 601 weights).

Only the 96x96 window is warped, straight from the frame (OpenCV, float32), so a crop costs the
same whatever the frame size.
"""

from collections.abc import Iterable

import cv2
import numpy as np

from speechforensics.errors import SpeechForensicsError

MOUTH_CROP_PX = 96  # pixels, side of the square grayscale mouth crop
CROP_MARGIN_FRAMES = 50  # frames (2 s) cut either side of a face's landmarks (crop_tracks)
CANVAS_PX = 256  # pixels, side of the square reference-face canvas the frames are aligned to
SMOOTHING_FRAMES = 12  # frames averaged per transform: the frame itself and the 11 after it
LANDMARK_POINTS = 68  # points per face (dlib / iBUG 300-W layout), each (x, y) in frame pixels
STABLE_POINTS = (33, 36, 39, 42, 45)  # nose tip, outer/inner right eye, inner/outer left eye
MOUTH_POINTS = slice(48, 68)  # the 20 lip points; their mean is the centre of the crop
# Where STABLE_POINTS land in the canvas: (x, y) pixels of the TCN lip-reading mean face
# (SpeechForensics' data/20words_mean_face.npy, every digit of its float64 values).
REFERENCE_POINTS = np.array(
    [
        [128.87017960974802, 137.30253355584708],
        [92.52245552947952, 94.36876013925871],
        [112.7724172413806, 94.94360869870115],
        [145.52511509158018, 94.5349986248377],
        [166.67710071343456, 93.56562295717796],
    ]
)
REFERENCE_POINTS.flags.writeable = False

_MAX_ORIGIN_PX = CANVAS_PX - MOUTH_CROP_PX  # pixels, largest crop origin inside the canvas
_ROI_MARGIN_PX = 2  # pixels of frame kept around the sampled area (bilinear reads 1 beyond)


def _check_landmarks(landmarks) -> np.ndarray:
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 3 or lm.shape[1:] != (LANDMARK_POINTS, 2) or len(lm) == 0:
        raise SpeechForensicsError(
            f"landmarks must be [frames, {LANDMARK_POINTS}, 2] (x, y) with at least one frame, "
            f"got shape {lm.shape}"
        )
    return lm


def interpolate_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """[T, 68, 2] landmarks with all-NaN rows where no face was found -> a filled float64 copy.

    Gaps between two detections are filled linearly, exactly as the original
    (``lm[s] + k / (e - s) * (lm[e] - lm[s])``); leading rows copy the first detection and
    trailing rows the last. Raises SpeechForensicsError when no frame has landmarks.
    """
    lm = _check_landmarks(landmarks).copy()
    nan = np.isnan(lm)
    missing = nan.all(axis=(1, 2))
    if (nan.any(axis=(1, 2)) & ~missing).any():
        bad = int(np.flatnonzero(nan.any(axis=(1, 2)) & ~missing)[0])
        raise SpeechForensicsError(
            f"landmarks of frame {bad} are partly NaN; mark a frame without a face by NaN in all "
            "of its points"
        )
    found = np.flatnonzero(~missing)
    if found.size == 0:
        raise SpeechForensicsError(
            f"no face landmarks in any of the {len(lm)} frames; check that the clip shows a face"
        )
    inner = np.flatnonzero(missing[found[0] : found[-1]]) + found[0]
    after = np.searchsorted(found, inner)
    start, stop = found[after - 1], found[after]
    frac = ((inner - start) / (stop - start))[:, None, None]
    lm[inner] = lm[start] + frac * (lm[stop] - lm[start])
    lm[: found[0]] = lm[found[0]]
    lm[found[-1] + 1 :] = lm[found[-1]]
    return lm


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transforms: src [..., N, 2] points onto dst [N, 2] -> [..., 2, 3].

    Umeyama (PAMI 1991), as scikit-image's ``estimate_transform('similarity', src, dst)``: each
    result maps an (x, y, 1) column of its src to dst. Degenerate src points give NaN.
    """
    src_mean = src.mean(axis=-2, keepdims=True)
    dst_mean = dst.mean(axis=0)
    src_demean, dst_demean = src - src_mean, dst - dst_mean
    # The operations in scikit-image's order, so that the results agree to the last bit.
    cov = dst_demean.T @ src_demean / src.shape[-2]
    u, s, vt = np.linalg.svd(cov)
    d = np.ones_like(s)
    d[..., -1] = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    rotation = u @ (d[..., :, None] * vt)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = 1.0 / src_demean.var(axis=-2).sum(axis=-1) * (s * d).sum(axis=-1)
    shift = dst_mean - scale[..., None] * (rotation @ src_mean[..., 0, :, None])[..., 0]
    linear = rotation * scale[..., None, None]
    return np.concatenate([linear, shift[..., None]], axis=-1)


def _smoothed_stable_points(lm: np.ndarray) -> np.ndarray:
    """Mean stable points of every full window [i, i + window): [T - window + 1, 5, 2]."""
    window = min(len(lm), SMOOTHING_FRAMES)
    count = len(lm) - window + 1
    stable = lm[:, STABLE_POINTS]
    total = stable[:count].copy()
    for k in range(1, window):  # the same order of additions as the original's np.mean
        total += stable[k : k + count]
    return total / window


def mouth_transforms(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Filled [T, 68, 2] landmarks -> (affines [T, 2, 3] float64, origins [T, 2] int64).

    ``affines[i]`` maps frame i's pixel (x, y, 1) to the 256x256 canvas; ``origins[i]`` is the
    (row, col) of the top-left corner of frame i's 96x96 mouth crop in that canvas.
    """
    lm = _check_landmarks(landmarks)
    if not np.isfinite(lm).all():
        raise SpeechForensicsError(
            "landmarks must be finite; fill frames without a face (NaN rows) with "
            "interpolate_landmarks first"
        )
    full = umeyama(_smoothed_stable_points(lm), REFERENCE_POINTS)
    if not np.isfinite(full).all():
        bad = int(np.flatnonzero(~np.isfinite(full).all(axis=(1, 2)))[0])
        raise SpeechForensicsError(
            f"the stable face points (nose tip, eye corners) around frame {bad} collapse to one "
            "point; check the landmarks"
        )
    affines = full[np.minimum(np.arange(len(lm)), len(full) - 1)]
    mouth = lm[:, MOUTH_POINTS]
    canvas = np.einsum("tij,tnj->tni", affines[:, :, :2], mouth) + affines[:, None, :, 2]
    centre_rc = canvas.mean(axis=1)[:, ::-1]  # (row, col) = (y, x)
    origins = np.clip(np.round(centre_rc) - MOUTH_CROP_PX // 2, 0, _MAX_ORIGIN_PX)
    return affines, origins.astype(np.int64)


def _source_box(inverse: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1): the part of the frame that the crop samples, with a margin, clipped."""
    last = MOUTH_CROP_PX - 1
    corners = np.array([[0, 0, 1], [last, 0, 1], [0, last, 1], [last, last, 1]], np.float64)
    xy = corners @ inverse.T
    x0, y0 = np.floor(xy.min(axis=0)).astype(int) - _ROI_MARGIN_PX
    x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + _ROI_MARGIN_PX + 1
    return max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)


def crop_mouth(frame: np.ndarray, affine: np.ndarray, origin) -> np.ndarray:
    """One RGB uint8 frame [H, W, 3] -> its [96, 96] uint8 grayscale mouth crop.

    ``affine`` (2x3, frame -> canvas) and ``origin`` ((row, col) in the canvas) come from
    ``mouth_transforms``. Where the crop reaches outside the frame it is black.
    """
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise SpeechForensicsError(
            f"a frame must be RGB uint8 [height, width, 3], got {frame.dtype} {frame.shape}"
        )
    row, col = origin
    to_crop = np.array(affine, np.float64)
    to_crop[:, 2] -= (col, row)
    x0, y0, x1, y1 = _source_box(cv2.invertAffineTransform(to_crop), *frame.shape[:2])
    if x0 >= x1 or y0 >= y1:  # the crop lies wholly outside the frame
        return np.zeros((MOUTH_CROP_PX, MOUTH_CROP_PX), np.uint8)
    to_crop[:, 2] += to_crop[:, :2] @ (x0, y0)  # from the sampled box instead of the whole frame
    box = frame[y0:y1, x0:x1].astype(np.float32)
    # Float warp, then truncation as the original's (warped * 255).astype(uint8): a uint8 warp
    # would round instead and come out half a grey level brighter on average.
    warped = cv2.warpAffine(
        box,
        to_crop,
        (MOUTH_CROP_PX, MOUTH_CROP_PX),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return cv2.cvtColor(warped.astype(np.uint8), cv2.COLOR_RGB2GRAY)


def _cropped_span(landmarks: np.ndarray, total: int) -> tuple[int, int]:
    """[lo, hi): the frames whose crops are cut for a face with these landmarks."""
    found = np.flatnonzero(~np.isnan(np.asarray(landmarks, np.float64)).all(axis=(1, 2)))
    if found.size == 0:
        return 0, total
    margin = CROP_MARGIN_FRAMES
    return max(0, int(found[0]) - margin), min(total, int(found[-1]) + 1 + margin)


def crop_mouths(frames: Iterable[np.ndarray], landmarks: np.ndarray) -> np.ndarray:
    """RGB uint8 frames and their [T, 68, 2] landmarks (all-NaN rows: no face) -> [T, 96, 96].

    ``frames`` is a [T, H, W, 3] array or any iterable of [H, W, 3] frames, consumed lazily one
    frame at a time. There must be exactly one frame per landmark row: SpeechForensicsError
    otherwise (an array is checked before any work, a stream as soon as it runs long or ends
    short). The original ignored extra frames and gave no crops for too few.
    """
    return crop_tracks(frames, [landmarks])[0]


def crop_tracks(frames: Iterable[np.ndarray], landmarks: list[np.ndarray]) -> list[np.ndarray]:
    """`crop_mouths` for several faces of the same frames (one [T, 68, 2] array each), in one
    pass over the frames. A face's crops are cut from CROP_MARGIN_FRAMES before its first
    landmarks to as many after its last (the rest stay black): in a long video of many shots
    each face costs the memory of its own stretch, not of the whole video."""
    plans = [mouth_transforms(interpolate_landmarks(lm)) for lm in landmarks]
    total = len(landmarks[0])
    if isinstance(frames, np.ndarray) and len(frames) != total:
        raise SpeechForensicsError(f"got {len(frames)} frames for {total} rows of landmarks")
    # zeros: the operating system gives memory to the pages written only, so a face seen for a
    # few seconds of a long video costs a few seconds of crops
    crops = [np.zeros((total, MOUTH_CROP_PX, MOUTH_CROP_PX), np.uint8) for _ in plans]
    spans = [_cropped_span(lm, total) for lm in landmarks]
    seen = 0
    for seen, frame in enumerate(frames, start=1):
        if seen > total:
            raise SpeechForensicsError(f"got more frames than the {total} rows of landmarks")
        i = seen - 1
        for out, (affines, origins), (lo, hi) in zip(crops, plans, spans, strict=True):
            if lo <= i < hi:
                out[i] = crop_mouth(frame, affines[i], origins[i])
    if seen != total:
        raise SpeechForensicsError(f"got {seen} frames for {total} rows of landmarks")
    return crops
