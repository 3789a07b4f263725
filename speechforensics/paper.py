"""The paper's published protocol, step by step (``--protocol paper``): what the official
SpeechForensics code (Eleven4AI/SpeechForensics 70ff45b: ``preprocessing/align_mouth.py``,
``preprocessing/utils.py``, ``evaluate.py``) computes for one video, with the AV-HuBERT model.

1. Frames as OpenCV decodes them (BGR), at the source frame rate, every frame.
2. Landmarks: an official landmark JSON (``{"0000.jpg": [[x, y] x 68] | null, ...}``, one entry
   per source frame), else ours: dlib's highest-scoring face in each frame, no tracks.
3. Missing frames filled, 12-frame forward smoothing, similarity transform to the mean face and
   a 96x96 crop around the mouth, at the source rate (mouth.py); the crop is sampled in colour,
   in float64, exactly as scikit-image's ``warp(order=1)`` then ``(x * 255).astype(uint8)``.
4. The crops go through H.264 as the official ``write_video_ffmpeg`` does (PNG frames, ``ffmpeg
   -r FPS -i ... -r 25 -crf 20``): the 25 fps frames ffmpeg's rate conversion keeps
   (`frame_map`), libx264 at crf 20 in yuv444p with its default settings (here PyAV's: 3 frame
   threads as x264 picks them on any machine of 2+ cores, AVX-512 off, `x264_params`), decoded
   and converted to grey as OpenCV does. 1-2 grey levels of loss, as in the paper.
5. The audio as ``ffmpeg -ar 16000 -ac 1`` writes it (media.read_pcm16), unaligned to the video.
6. The first 50 s of each; visual features index-resampled to the audio's length when the counts
   differ; cosine similarity of every frame (silence included) at offsets -15..15 with zeros
   beyond the ends; the mean over frames at each offset; the best offset's mean is the score.

Or, with the official intermediate files: a mouth-ROI ``.mp4`` + 16 kHz ``.wav`` (`read_rois`)
enter at step 6 directly.
"""

import json
import math
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from . import face, media, scoring
from .errors import SpeechForensicsError
from .features import SAMPLE_RATE, VIDEO_FPS, audio_features, video_features
from .mouth import LANDMARK_POINTS, MOUTH_CROP_PX, interpolate_landmarks, mouth_transforms

PAPER_SECONDS = media.PAPER_SECONDS  # s: the official evaluate.py reads the first 50 s
ROI_CRF = 20  # H.264 quality of the official mouth-ROI videos (write_video_ffmpeg)
ROI_PIX_FMT = "yuv444p"  # what ffmpeg's libx264 makes of PNG (RGB) input
ROI_X264_THREADS = 3  # x264's own choice for a 96-pixel-high video on 2+ cores (official runs)
RATE_MAX = 1001000  # largest numerator/denominator ffmpeg gives a frame rate typed as a number
VSYNC_EXTRA_BITS = 16  # extra bits of precision ffmpeg keeps in a frame's output timestamp
VSYNC_DROP = -1.1  # output frames: a frame arriving this much too early is dropped (vsync cfr)
VSYNC_DUP = 1.1  # output frames: a frame arriving this much too late is duplicated
VSYNC_DUP_PREV = 0.6  # frames of the gap before a late frame that repeat the previous one
GREY_LEVELS = 255.0  # scikit-image's float images are uint8 / 255


# --- 25 fps as ffmpeg -r 25 picks frames --------------------------------------------------------


def ffmpeg_rate(fps: float) -> Fraction:
    """The frame rate ffmpeg reads from ``-r str(fps)`` (av_parse_video_rate -> av_d2q)."""
    _, exponent = math.frexp(fps)
    den = 1 << (62 - max(exponent - 1, 0))
    num = math.floor(fps * den + 0.5)
    g = math.gcd(num, den)
    num, den = num // g, den // g
    if num <= RATE_MAX and den <= RATE_MAX:
        return Fraction(num, den)
    a0, a1 = (0, 1), (1, 0)  # av_reduce: continued fraction, bounded terms
    while den:
        x = num // den
        a2 = (x * a1[0] + a0[0], x * a1[1] + a0[1])
        if a2[0] > RATE_MAX or a2[1] > RATE_MAX:
            x = (RATE_MAX - a0[0]) // a1[0] if a1[0] else x
            x = min(x, (RATE_MAX - a0[1]) // a1[1]) if a1[1] else x
            if den * (2 * x * a1[1] + a0[1]) > num * a1[1]:
                a1 = (x * a1[0] + a0[0], x * a1[1] + a0[1])
            break
        a0, a1, (num, den) = a1, a2, (den, num - den * x)
    return Fraction(*a1)


def frame_map(frames: int, fps: float) -> np.ndarray:
    """Which source frame each frame of ``ffmpeg -r FPS -i frames -r 25 out.mp4`` shows: FFmpeg
    5.1's constant-frame-rate sync (fftools ``do_video_out``), checked against the official
    ``write_video_ffmpeg`` with index-coded frames at 10-60 fps. From 29.97/30 fps the first 13
    frames pass 1:1, then every 6th is dropped; below 25 fps frames are repeated."""
    rate = ffmpeg_rate(fps)
    scale = VIDEO_FPS << VSYNC_EXTRA_BITS
    out, next_pts, history = [], 0, [0, 0, 0]
    for k in range(frames):
        num, den = k * rate.denominator * scale, rate.numerator
        pts = (num // den + (2 * (num % den) >= den)) / (1 << VSYNC_EXTRA_BITS)
        if pts != round(pts):
            pts += 1.0 / (1 << (VSYNC_EXTRA_BITS + 1))  # ffmpeg steers clear of exact halves
        delta0 = pts - next_pts
        delta = delta0 + 1.0  # each input frame lasts one output frame here
        copies, previous = 1, 0
        if delta < VSYNC_DROP:
            copies = 0
        elif delta > VSYNC_DUP:
            copies = round(delta)
            if delta0 > VSYNC_DUP:
                previous = min(round(delta0 - VSYNC_DUP_PREV), copies)
        history = [previous, *history[:2]]
        out += [k - 1 if i < previous and k > 0 else k for i in range(copies)]
        next_pts += copies
    out += [frames - 1] * sorted(history)[1]  # at the end: the median of the last repeats
    return np.array(out, dtype=np.int64)


# --- source frames and landmarks -----------------------------------------------------------------


def _capture(path: Path) -> cv2.VideoCapture:
    if not path.exists():
        raise SpeechForensicsError(f"{path}: no such file; check the path")
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        raise SpeechForensicsError(f"{path}: OpenCV cannot read it as a video")
    return capture


def source_frames(path: Path):
    """(fps, BGR frames): the frame rate OpenCV reports and a generator of every frame as the
    official scripts read them (cv2.VideoCapture)."""
    capture = _capture(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    if not fps > 0:
        capture.release()
        raise SpeechForensicsError(f"{path}: OpenCV reports no frame rate; re-encode it")

    def frames():
        try:
            while True:
                ok, frame = capture.read()
                if not ok:
                    return
                yield frame
        finally:
            capture.release()

    return fps, frames()


def read_landmark_json(path: Path) -> np.ndarray:
    """An official landmark file -> [T, 68, 2] float64, all-NaN rows where it says null. The
    entries are taken in the file's order, as align_mouth.py takes them."""
    try:
        entries = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SpeechForensicsError(f"{path}: not a readable landmark JSON file ({e})") from e
    if not isinstance(entries, dict) or not entries:
        raise SpeechForensicsError(
            f'{path}: a landmark file is an object {{"0000.jpg": [[x, y] x 68] or null, ...}}'
        )
    out = np.full((len(entries), LANDMARK_POINTS, 2), np.nan)
    for i, (key, value) in enumerate(entries.items()):
        if value is None:
            continue
        try:
            points = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            points = None
        if points is None or points.shape != (LANDMARK_POINTS, 2) or not np.isfinite(points).all():
            raise SpeechForensicsError(
                f"{path}: entry {key!r} is not {LANDMARK_POINTS} [x, y] points or null"
            )
        out[i] = points
    return out


def own_landmarks(path: Path) -> np.ndarray:
    """[T, 68, 2] landmarks of every source frame: dlib's highest-scoring face, NaN without one
    (the official code takes one detection per frame, never a track)."""
    _, frames = source_frames(path)
    config, rows = face.FaceConfig(), []
    for frame in frames:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        found = face.detect_faces(grey, config)
        if not found:
            rows.append(np.full((LANDMARK_POINTS, 2), np.nan))
            continue
        box, _ = max(found, key=lambda f: f[1])
        rows.append(face.predict_landmarks(grey, box))
    if not rows:
        raise SpeechForensicsError(f"{path}: OpenCV decodes no frames from it")
    return np.stack(rows)


# --- mouth crops at the source rate --------------------------------------------------------------


def _warp_crop(frame: np.ndarray, inverse: np.ndarray, origin) -> np.ndarray:
    """The 96x96 window at ``origin`` (row, col) of scikit-image's ``warp(frame, inverse,
    output_shape=(256, 256), order=1)`` (the frame as float64 uint8 * (1 / 255)), as uint8 after
    ``* 255`` and truncation; the arithmetic of its _warp_fast and bilinear kernel, on the part
    of the frame the window reads."""
    rows = np.arange(MOUTH_CROP_PX, dtype=np.float64)[:, None] + origin[0]
    cols = np.arange(MOUTH_CROP_PX, dtype=np.float64)[None, :] + origin[1]
    m = inverse
    x = m[0, 0] * cols + m[0, 1] * rows + m[0, 2]
    y = m[1, 0] * cols + m[1, 1] * rows + m[1, 2]
    if not (m[2, 0] == 0 and m[2, 1] == 0 and m[2, 2] == 1):
        z = m[2, 0] * cols + m[2, 1] * rows + m[2, 2]
        x, y = x / z, y / z
    h, w = frame.shape[:2]
    r0, c0 = np.floor(y), np.floor(x)
    r1, c1 = np.ceil(y), np.ceil(x)
    dr, dc = (y - r0)[..., None], (x - c0)[..., None]
    top_row, left = (int(np.clip(v.min(), 0, n - 1)) for v, n in ((r0, h), (c0, w)))
    bottom_row, right = (int(np.clip(v.max(), 0, n - 1)) + 1 for v, n in ((r1, h), (c1, w)))
    part = frame[top_row:bottom_row, left:right]
    image = np.multiply(part, 1.0 / GREY_LEVELS, dtype=np.float64)

    def pixel(r, c):  # mode 'constant', cval 0: every neighbour outside the image reads 0
        inside = (r >= 0) & (r < h) & (c >= 0) & (c < w)
        rr = np.where(inside, r - top_row, 0).astype(np.intp)
        cc = np.where(inside, c - left, 0).astype(np.intp)
        return np.where(inside[..., None], image[rr, cc], 0.0)

    top = (1 - dc) * pixel(r0, c0) + dc * pixel(r0, c1)
    bottom = (1 - dc) * pixel(r1, c0) + dc * pixel(r1, c1)
    warped = (1 - dr) * top + dr * bottom
    return (warped * GREY_LEVELS).astype(np.uint8)


def colour_crops(frames, landmarks: np.ndarray, what: Path) -> np.ndarray:
    """BGR frames and their [T, 68, 2] landmarks (NaN rows: no face) -> [T, 96, 96, 3] uint8
    BGR crops, the official ``crop_patch``. The counts must agree: SpeechForensicsError
    otherwise (the original cropped the frames it had landmarks for, or wrote no ROI)."""
    affines, origins = mouth_transforms(interpolate_landmarks(landmarks))
    total = len(landmarks)
    out = np.empty((total, MOUTH_CROP_PX, MOUTH_CROP_PX, 3), np.uint8)
    seen = 0
    for seen, frame in enumerate(frames, start=1):
        if seen <= total:
            inverse = np.linalg.inv(np.vstack([affines[seen - 1], (0.0, 0.0, 1.0)]))
            out[seen - 1] = _warp_crop(frame, inverse, origins[seen - 1])
    if seen != total:
        raise SpeechForensicsError(
            f"{what}: the landmarks cover {total} frames but the video has {seen}; they belong "
            "to another video or another decoding"
        )
    return out


# --- the H.264 round trip at 25 fps --------------------------------------------------------------


def h264_round_trip(crops: np.ndarray, fps: float) -> np.ndarray:
    """[T, 96, 96, 3] BGR crops at ``fps`` -> [T25, 96, 96] uint8 grey: the official ROI video
    written (write_roi_video) and read back (read_roi_video)."""
    with tempfile.TemporaryDirectory(prefix="speechforensics-roi-") as tmp:
        path = write_roi_video(crops, fps, Path(tmp) / "roi.mp4")
        return read_roi_video(path)


def write_roi_video(crops: np.ndarray, fps: float, path: Path) -> Path:
    """[T, 96, 96, 3] BGR crops at ``fps`` -> the mouth-ROI video as the official
    ``write_video_ffmpeg`` writes it: the frames of `frame_map`, libx264 crf 20 with its default
    settings, yuv444p, 25 fps, with `x264_params`: the same bytes every time, and the frames FFmpeg
    5.1's command gives with AVX-512 off (README: Reproducing the paper)."""
    chosen = crops[frame_map(len(crops), fps)]
    options = {"crf": str(ROI_CRF), "x264-params": x264_params()}
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=VIDEO_FPS, options=options)
        stream.width, stream.height, stream.pix_fmt = MOUTH_CROP_PX, MOUTH_CROP_PX, ROI_PIX_FMT
        stream.codec_context.time_base = Fraction(1, VIDEO_FPS)  # as ffmpeg's: x264 reads it
        for i, crop in enumerate(chosen):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(crop[..., ::-1]), "rgb24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return Path(path)


def x264_params() -> str:
    """x264's settings for the ROI encode beyond crf: the frame threads x264 itself picks for
    96x96 on any machine of 2+ cores (the official ROI files say ``threads=3 lookahead_threads=1
    sliced_threads=0``; PyAV would slice and fall to 1 thread), and the instruction sets of
    media.x264_repeatable (all x264 finds on this CPU but AVX-512): an encode then depends on its
    input alone, and gives the frames of FFmpeg 5.1's command with the same instruction sets (the
    official FFmpeg 5.1 repeats itself only because each run is a fresh process)."""
    threads = f"threads={ROI_X264_THREADS}:sliced-threads=0:lookahead-threads=1"
    return f"{threads}:{media.x264_repeatable()}"


def read_roi_video(path: Path) -> np.ndarray:
    """A mouth-ROI video -> [T, H, W] uint8 grey, as av_hubert's ``load_video`` reads it
    (decoded to BGR with FFmpeg's default conversion, then OpenCV's BGR -> grey)."""
    with media._open(path) as container:
        stream = media._video_stream(container, Path(path))
        grey = [
            cv2.cvtColor(f.to_ndarray(format="bgr24"), cv2.COLOR_BGR2GRAY)
            for f in media._decoded(container, stream, Path(path))
        ]
    if not grey:
        raise SpeechForensicsError(f"{path}: no frames could be decoded from this mouth ROI")
    return np.stack(grey)


# --- the official intermediate files --------------------------------------------------------------


def find_file(folder: Path | None, video: Path, suffix: str) -> Path | None:
    """The official file for ``video`` in ``folder`` (which mirrors the videos' folders, as the
    official scripts write it): the longest tail of the video's path that exists there with
    ``suffix`` (``a/b/clip.mp4``: ``b/clip.json`` before ``clip.json``); None if none does."""
    if folder is None:
        return None
    parts = Path(video).with_suffix(suffix).parts
    for start in range(len(parts)):
        candidate = Path(folder, *parts[start:])
        if not Path(parts[start]).is_absolute() and candidate.is_file():
            return candidate
    return None


def read_rois(mp4: Path) -> tuple[np.ndarray, np.ndarray]:
    """An official mouth-ROI pair: (grey frames [T, 96, 96], int16 16 kHz samples) from
    ``clip.mp4`` and the ``clip.wav`` beside it."""
    wav = Path(mp4).with_suffix(".wav")
    if not wav.is_file():
        raise SpeechForensicsError(f"{mp4}: the mouth ROI has no {wav.name} beside it")
    grey = read_roi_video(mp4)
    if grey.shape[1] < MOUTH_CROP_PX - 8 or grey.shape[2] < MOUTH_CROP_PX - 8:
        raise SpeechForensicsError(f"{mp4}: {grey.shape[2]}x{grey.shape[1]} is no mouth ROI")
    pcm = media.read_pcm16(wav)
    return grey, pcm


# --- scoring -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class PaperInputs:
    """Where the official intermediate files are, if any (matched by the video's path)."""

    landmarks: Path | None = None  # folder of landmark JSON files
    rois: Path | None = None  # folder of mouth-ROI .mp4 + .wav pairs


def model_inputs(video: Path, inputs: PaperInputs = PaperInputs()):
    """(grey ROI frames at 25 fps, int16 16 kHz audio, where the ROI came from) for one video."""
    roi = find_file(inputs.rois, video, ".mp4")
    if roi is not None:
        grey, pcm = read_rois(roi)
        return grey, pcm, f"official ROI {roi}"
    found = find_file(inputs.landmarks, video, ".json")
    landmarks = read_landmark_json(found) if found else own_landmarks(Path(video))
    fps, frames = source_frames(Path(video))
    crops = colour_crops(frames, landmarks, found or Path(video))
    source = f"landmarks {found}" if found else "our landmarks (dlib)"
    return h264_round_trip(crops, fps), media.read_pcm16(video), source


def score(model, grey: np.ndarray, pcm: np.ndarray) -> tuple[float, np.ndarray, int, int]:
    """(score, the 31 offset means, visual frames, audio frames) of the official evaluate.py:
    first 50 s of each, every frame, zeros beyond the ends, best offset of the means."""
    import torch

    grey = grey[: int(VIDEO_FPS * PAPER_SECONDS)]
    pcm = pcm[: int(SAMPLE_RATE * PAPER_SECONDS)]
    with torch.inference_mode():
        visual = model.extract_features(video=video_features(grey)[None, None])[0]
        audio = model.extract_features(audio=audio_features(pcm).T[None])[0]
    matrix = scoring.sync_matrix(visual.cpu().numpy(), audio.cpu().numpy())
    curve = matrix.mean(axis=0)
    return float(curve.max()), curve, len(visual), len(audio)


def judge(video, model, inputs: PaperInputs = PaperInputs(), threshold=None) -> dict:
    """One video's report under the paper's protocol (no speech gating, no tracks, no timeline).
    ``model``: the AVHubert of an AVHubertBackend; ``threshold``: the score below which the
    video is called fake (a calibration made under this protocol sets one; None: inconclusive)."""
    try:
        grey, pcm, source = model_inputs(Path(video), inputs)
    except SpeechForensicsError as e:  # a bad official file: the line names the video too
        if str(video) in str(e):
            raise
        raise SpeechForensicsError(f"{video}: {e}") from e
    value, curve, frames_video, frames_audio = score(model, grey, pcm)
    offset = int(np.argmax(curve)) - scoring.MAX_SHIFT_FRAMES
    verdict = "inconclusive" if threshold is None else ("fake" if value < threshold else "real")
    warnings = [] if threshold is not None else [NO_THRESHOLD]
    return {
        "file": str(video),
        "protocol": "paper",
        "backend": "avhubert",
        "score": value,
        "verdict": verdict,
        "threshold": threshold,
        "offset_frames": offset,
        "offset_ms": scoring.offset_ms(offset),
        "offset_means": [float(x) for x in curve],
        "frames_video": frames_video,
        "frames_audio": frames_audio,
        "roi_source": source,
        "duration_s": round(min(len(pcm) / SAMPLE_RATE, PAPER_SECONDS), 3),
        "speech_seconds": None,
        "segments": [],
        "timeline": [],
        "warnings": warnings,
    }


NO_THRESHOLD = (
    "no calibrated threshold for the paper's protocol: calibrate the checkpoint on genuine clips "
    "(`speechforensics calibrate GENUINE --protocol paper --checkpoint FILE`) or pass --threshold"
)
