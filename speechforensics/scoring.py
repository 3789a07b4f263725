"""Scores from visual and audio features: is what the lips say what the voice says?

``sync_matrix`` is the original SpeechForensics ``calc_cos_dist``: the cosine similarity of each
visual frame with the audio frames up to 15 frames (600 ms) earlier or later. ``video_score`` is
the published clip score (mean over time, best offset). Around them: the best offset, a simple
energy-based speech detector on the 16 kHz audio, a speech-gated clip score, a sliding-window
timeline and the time ranges where sync breaks down. Pure functions on arrays: no model, no video.

This module is the only home of scoring thresholds; each is a constant below, with its unit.
"""

import itertools
import warnings
from dataclasses import dataclass

import numpy as np

from speechforensics.errors import SpeechForensicsError
from speechforensics.features import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS

# Sync matrix (the original calc_cos_dist)
MAX_SHIFT_FRAMES = 15  # video frames either way (15 x 40 ms = 600 ms): 31 offsets
NORMALIZE_EPS = 1e-12  # floor of a frame's L2 norm before normalising, as F.normalize
COSINE_EPS = 1e-8  # floor of the product of norms, as F.cosine_similarity (zero rows give 0)
FRAME_MS = 1000 / VIDEO_FPS  # ms per video frame (40)
MIN_OVERLAP = 0.5  # share of the best-covered offset's frames an offset needs to be scored


@dataclass(frozen=True)
class Search:
    """Which audio offsets a backend's streams are compared at, and how the clip score reads them.

    The paper's search (the default): offsets up to 15 frames either way, the score is the best
    of them. A search with ``score_shift`` < ``max_shift`` and a ``baseline_from`` scores how
    much better the streams agree near zero offset than far from it: a peak that searching many
    offsets cannot manufacture, and an offset reported from a wider range (a 2 s dub is found).
    """

    max_shift: int = MAX_SHIFT_FRAMES  # frames either way compared, and searched for the offset
    score_shift: int = MAX_SHIFT_FRAMES  # frames either way the clip score may search
    baseline_from: int | None = None  # subtract each frame's mean similarity at |offset| >= this


PAPER = Search()

# Timeline
WINDOW_FRAMES = 25  # video frames per timeline window (1 s)
HOP_FRAMES = 5  # video frames between window starts (0.2 s)
MIN_WINDOW_SPEECH_FRACTION = 0.4  # share of a window's frames that must be speech to score it

# Verdicts: a clip scoring below its backend's threshold is called fake. Each threshold is the 5th
# percentile of that backend's scores on genuine clips only (5 % false alarms on real videos):
# no forgery is used to set it (benchmarks/detect_dev.py prints it).
THRESHOLDS: dict[str, float] = {
    # 40 genuine clips of 17 sources (../shared/media/dev and fit/), each scored by a model fitted
    # without any clip of its source (`speechforensics fit-lite`, 5 folds of whole sources, stored
    # in data/lipsync_lite.npz): 5th percentile 0.2624
    "lipsync-lite": 0.2624,
    # "avhubert": set per checkpoint by `speechforensics calibrate` (calibration.py)
}
# The uncertain band (Thresholds.doubt): a clip scoring from its threshold up to DOUBT /
# sqrt(s of speech) above it is `uncertain`. lipsync-lite's 0.15: held out by source, 15 % of
# genuine clips and 7 % of swapped voices fall in it; 5 % of genuine clips score below it (fake)
# and 2.5 % of swapped voices above it (real). (0.1: 5 % and 5 %, 4 % of swapped voices real;
# 0.2: 22.5 % and 7 %, 2.2 % real.)
DOUBT: dict[str, float] = {"lipsync-lite": 0.15}

# Turns and segments (pipeline.judge, speakers.py). A turn (one face's consecutive speech in one
# shot) with at least speakers.MIN_TURN_SPEECH_S of speech is judged on its own span: fake under
# its backend's turn threshold at its length of speech (interpolated between the listed lengths;
# the last one's beyond it). Each threshold is the mean less 2.05 standard deviations (the 2nd
# percentile of a normal) of genuine turns of that length: the 40 genuine clips' speech cut into
# 1.5, 2 and 4 s pieces (134, 98, 40 pieces), each scored on its own span by the fold model fitted
# without its source (scripts/turn_thresholds.py). The pieces' lower tail is heavier than a
# normal's: 5.2, 4.1 and 7.5 % of them fall under these (a genuine clip's speech judged as
# consecutive 1.5-2 s turns is called fake 13-14 % of the time). Of the same pieces with another
# clip's voice these catch 33 %, 43 % and 71 %. Beyond 4 s the 4-s threshold holds (only 11
# pieces of 8 s: too few to set one).
TURN_THRESHOLDS: dict[str, tuple[tuple[float, float], ...]] = {
    "lipsync-lite": ((1.5, 0.077), (2.0, 0.095), (4.0, 0.140)),  # (s of speech, threshold)
}
# Low-sync segments: runs of timeline windows under the segment threshold lasting at least
# MIN_SEGMENT_SECONDS, plus the turns judged fake. 0.029 is the 5th percentile of genuine
# windows (1,168 windows, held out by source as above), and the run length keeps single low
# windows out.
SEGMENT_THRESHOLDS: dict[str, float] = {"lipsync-lite": 0.029}
MIN_SEGMENT_SECONDS = 1.0  # s: one timeline window


@dataclass(frozen=True)
class Thresholds:
    """One backend's verdict thresholds: the clip's, the turns' by seconds of speech (as
    TURN_THRESHOLDS), the timeline segments'. None or () where not known. A backend carries the
    built-in ones (`thresholds(name)`) or those of a calibration file (calibration.py).

    `doubt`: a clip scoring from the clip threshold up to `doubt` / sqrt(its seconds of speech)
    above it says neither real nor fake: `uncertain` (`band`). The scores of short clips spread
    most, so their band is widest. `genuine` and `forged`: held-out clip scores of genuine and
    forged (swapped-voice) clips, from which `error_rates` reads how often either call would be
    wrong at a score."""

    clip: float | None = None
    turns: tuple[tuple[float, float], ...] = ()  # (s of speech, threshold), by length
    segment: float | None = None
    doubt: float | None = None  # the uncertain band's width at 1 s of speech
    genuine: tuple[float, ...] = ()  # held-out scores of genuine clips
    forged: tuple[float, ...] = ()  # held-out scores of forged clips

    def turn(self, speech_seconds: float) -> float | None:
        """The threshold of a turn with this much speech (None: none known, or too short)."""
        if not self.turns or speech_seconds < self.turns[0][0]:
            return None
        seconds, thresholds = zip(*self.turns, strict=True)
        return float(np.interp(speech_seconds, seconds, thresholds))

    def band(self, speech_seconds: float) -> tuple[float, float] | None:
        """[low, high): the clip scores called uncertain with this much speech (None: none)."""
        if self.clip is None or not self.doubt:
            return None
        width = self.doubt / np.sqrt(max(speech_seconds, MIN_SPEECH_SECONDS))
        return self.clip, float(self.clip + width)

    def verdict(self, score: float, speech_seconds: float = np.inf) -> str:
        """real, fake, uncertain (inside `band`) or inconclusive (no clip threshold)."""
        if self.clip is None:
            return "inconclusive"
        band = self.band(speech_seconds)
        if band is not None and band[0] <= score < band[1]:
            return "uncertain"
        return "real" if score >= self.clip else "fake"

    def error_rates(self, score: float) -> dict | None:
        """At `score`: the share of held-out genuine clips scoring as low or lower (how often
        calling it fake would be wrong) and of forged clips scoring as high or higher (how often
        calling it real would be); None where no held-out scores are known."""
        if not self.genuine or not self.forged:
            return None
        return {
            "genuine_at_or_below": float(np.mean(np.asarray(self.genuine) <= score)),
            "forged_at_or_above": float(np.mean(np.asarray(self.forged) >= score)),
        }


def thresholds(backend: str) -> Thresholds:
    """The built-in thresholds of the backend called `backend` (empty where none is set here)."""
    return Thresholds(
        THRESHOLDS.get(backend),
        TURN_THRESHOLDS.get(backend, ()),
        SEGMENT_THRESHOLDS.get(backend),
        DOUBT.get(backend),
    )


def turn_threshold(backend: str, speech_seconds: float) -> float | None:
    """The built-in threshold of a turn with this much speech (None: none known, or too short)."""
    return thresholds(backend).turn(speech_seconds)


# Speech-gated clip score
MIN_SPEECH_SECONDS = 1.0  # s of speech below which a clip is "too little speech" (no score)

# Speech activity (energy in the speech band against the clip's own noise floor)
VAD_WIN_SAMPLES = 320  # samples per analysis window (20 ms at 16 kHz), Hann
VAD_HOP_SAMPLES = 160  # samples between windows (10 ms): 4 windows centred in each video frame
VAD_BAND_HZ = (100.0, 4000.0)  # Hz, the speech band whose energy is measured
VAD_NOISE_PERCENTILE = 10  # percent: this percentile of the frame energies is the noise floor
VAD_MARGIN_DB = 10.0  # dB above the noise floor for a frame to count as speech
VAD_ABS_FLOOR_DB = -50.0  # dB full scale (band mean square): quieter frames are never speech
VAD_LOUD_DB = -30.0  # dB full scale: louder frames are speech even when the clip has no pause
VAD_POWER_FLOOR = 1e-12  # mean square added before the log: digital silence is -120 dB
VAD_MEDIAN_FRAMES = 3  # video frames of the median filter that removes one-frame blips
VAD_HANGOVER_FRAMES = 2  # video frames (80 ms) of speech kept on each side of detected speech


# Inputs


def _as_numpy(x, name: str) -> np.ndarray:
    """A 2-D float64 copy of a numpy array or torch tensor of features."""
    if hasattr(x, "detach"):  # a torch tensor (torch itself is not imported here)
        x = x.detach().cpu().float().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise SpeechForensicsError(f"{name} features must be [T, D] with T > 0, got {x.shape}")
    return x


def _check_matrix(matrix) -> np.ndarray:
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] % 2 == 0:
        raise SpeechForensicsError(
            f"sync matrix must be [T, 2*max_shift+1] with T > 0, got {matrix.shape}"
        )
    return matrix


def _check_speech(speech, frames: int) -> np.ndarray:
    speech = np.asarray(speech, dtype=bool)
    if speech.shape != (frames,):
        raise SpeechForensicsError(
            f"speech mask has shape {speech.shape} but the sync matrix has {frames} frames; "
            "compute both from the same audio"
        )
    return speech


# Sync matrix, clip score, offset


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), NORMALIZE_EPS)


def sync_matrix(visual, audio, max_shift: int = MAX_SHIFT_FRAMES, fill: float = 0.0) -> np.ndarray:
    """[T, 2*max_shift+1] float32 cosine similarities, exactly the original ``calc_cos_dist``.

    ``visual`` [Tv, D] and ``audio`` [Ta, D] (numpy or torch). When Tv != Ta the visual frames
    are index-resampled to T = Ta. Entry [i, k] compares visual frame i with audio frame
    i + k - max_shift (``fill`` beyond the audio's ends: 0 as the original, NaN to leave those
    out of every mean): k > max_shift means audio later than video.
    """
    v, a = _as_numpy(visual, "visual"), _as_numpy(audio, "audio")
    if v.shape[1] != a.shape[1]:
        raise SpeechForensicsError(
            f"visual and audio features differ in width ({v.shape[1]} vs {a.shape[1]})"
        )
    v, a = _l2_normalise(v), _l2_normalise(a)
    if len(v) != len(a):
        v = v[np.linspace(0, len(v) - 1, len(a), dtype=int)]
    frames = len(a)
    padded = np.pad(a, ((max_shift, max_shift), (0, 0)))
    v_norm, a_norm = np.linalg.norm(v, axis=1), np.linalg.norm(padded, axis=1)
    out = np.empty((frames, 2 * max_shift + 1), np.float32)
    for k in range(2 * max_shift + 1):  # a loop over the 31 offsets, vectorised over frames
        dot = np.einsum("td,td->t", v, padded[k : k + frames])
        out[:, k] = dot / np.maximum(v_norm * a_norm[k : k + frames], COSINE_EPS)
    if fill != 0.0:
        for k in range(max_shift):  # the corners that compare with audio beyond the ends
            out[: max_shift - k, k] = fill
            out[max(frames - max_shift + k, 0) :, 2 * max_shift - k] = fill
    return out


def relative(matrix, baseline_from: int) -> np.ndarray:
    """The matrix less each frame's mean similarity at offsets of ``baseline_from`` frames or
    more either way (NaN entries left out): how much better than chance each offset agrees."""
    matrix = _check_matrix(matrix)
    c = matrix.shape[1] // 2
    far = np.r_[0 : max(c - baseline_from + 1, 0), c + baseline_from : 2 * c + 1]
    if not len(far):
        raise SpeechForensicsError(f"no offsets of {baseline_from} frames or more to compare")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a frame with no far offset: NaN
        baseline = np.nanmean(matrix[:, far], axis=1, keepdims=True)
    return (matrix - baseline).astype(np.float32)


def offset_curve(matrix) -> np.ndarray:
    """[2*max_shift+1] each offset's mean similarity over the frames; NaN entries are left out,
    and an offset with under MIN_OVERLAP of the valid entries of the best-covered offset is NaN
    (a mean over a few frames at the ends would be noise)."""
    matrix = _check_matrix(matrix)
    valid = (~np.isnan(matrix)).sum(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an offset with no frames: NaN
        curve = np.nanmean(matrix, axis=0)
    curve[valid < MIN_OVERLAP * valid.max()] = np.nan
    return curve


def partner_gated(matrix, speech) -> np.ndarray:
    """The matrix with NaN wherever the audio frame compared is not speech: entry [i, k] holds
    audio frame i + k - max_shift, so a wide offset search compares the lips with the speech
    that frame's offset brings, not with whatever sits at frame i."""
    matrix = _check_matrix(matrix).copy()
    speech = _check_speech(speech, len(matrix))
    shift = matrix.shape[1] // 2
    padded = np.pad(speech, shift)  # beyond the ends: not speech
    partner = np.lib.stride_tricks.sliding_window_view(padded, 2 * shift + 1)
    matrix[~partner] = np.nan
    return matrix


def _best(curve: np.ndarray, within: int | None) -> int:
    """Index of the curve's highest value among offsets within ``within`` frames of zero."""
    c = len(curve) // 2
    lo = 0 if within is None else max(c - within, 0)
    part = curve[lo : len(curve) - lo]
    if np.isnan(part).all():
        return c
    return lo + int(np.nanargmax(part))


def video_score(matrix, within: int | None = None) -> float:
    """The published clip score: the time-mean of each offset's column, at the best offset (of
    those within ``within`` frames of zero; all by default)."""
    curve = offset_curve(matrix)
    return float(curve[_best(curve, within)])


def best_offset(matrix, within: int | None = None) -> int:
    """Offset in video frames with the highest time-mean (of those within ``within`` frames of
    zero; all by default); positive = audio later than video."""
    return curve_offset(offset_curve(matrix), within)


def curve_offset(curve: np.ndarray, within: int | None = None) -> int:
    """``best_offset`` from an ``offset_curve`` already computed."""
    return _best(curve, within) - len(curve) // 2


def offset_ms(frames: int) -> float:
    """An offset in video frames as milliseconds (40 ms per frame)."""
    return frames * FRAME_MS


# Speech activity


def _band_energy_db(audio: np.ndarray, frames: int) -> np.ndarray:
    """[frames] dB: mean square of the 100-4000 Hz band over the 4 windows of each frame."""
    half = (VAD_WIN_SAMPLES - VAD_HOP_SAMPLES) // 2  # centres windows in their frame
    padded = np.pad(audio.astype(np.float64), (half, half))
    windows = np.lib.stride_tricks.sliding_window_view(padded, VAD_WIN_SAMPLES)
    windows = windows[::VAD_HOP_SAMPLES][: frames * SAMPLES_PER_FRAME // VAD_HOP_SAMPLES]
    taper = np.hanning(VAD_WIN_SAMPLES)
    spectrum = np.abs(np.fft.rfft(windows * taper, axis=1)) ** 2
    hz = np.fft.rfftfreq(VAD_WIN_SAMPLES, 1 / SAMPLE_RATE)
    band = (hz >= VAD_BAND_HZ[0]) & (hz <= VAD_BAND_HZ[1])
    # One-sided Parseval: the band's share of the windowed signal's mean square.
    power = 2 * spectrum[:, band].sum(axis=1) / (VAD_WIN_SAMPLES * np.sum(taper**2))
    power = power.reshape(frames, -1).mean(axis=1)
    return 10 * np.log10(power + VAD_POWER_FLOOR)


def _smooth(speech: np.ndarray) -> np.ndarray:
    """Median filter (drops one-frame blips and fills one-frame holes), then hangover."""
    half = VAD_MEDIAN_FRAMES // 2
    padded = np.pad(speech, half, mode="edge")
    votes = np.lib.stride_tricks.sliding_window_view(padded, VAD_MEDIAN_FRAMES).sum(axis=1)
    speech = votes > half
    padded = np.pad(speech, VAD_HANGOVER_FRAMES)
    window = 2 * VAD_HANGOVER_FRAMES + 1
    return np.lib.stride_tricks.sliding_window_view(padded, window).any(axis=1)


def speech_frames(audio) -> np.ndarray:
    """[T] bool: which 25 fps video frames hold speech, from 16 kHz mono float audio.

    ``audio`` has exactly 640 samples per video frame, as ``media.read_audio`` returns it. A
    frame is speech when its 100-4000 Hz energy is 10 dB above the clip's noise floor (the
    10th percentile of its frame energies) or, for clips without a pause, above -30 dB full
    scale; never below -50 dB full scale (digital silence, faint hiss). A 3-frame median
    filter and an 80 ms hangover on each side then smooth the decisions. No model, no download.
    Loud stationary noise (over -30 dB in the speech band) counts as speech: energy alone cannot
    tell them apart.
    """
    audio = np.asarray(audio)
    if audio.ndim != 1 or audio.size % SAMPLES_PER_FRAME:
        raise SpeechForensicsError(
            f"audio must be mono with {SAMPLES_PER_FRAME} samples per video frame, got shape "
            f"{audio.shape}; read it with speechforensics.media.read_audio"
        )
    frames = audio.size // SAMPLES_PER_FRAME
    if frames == 0:
        return np.zeros(0, bool)
    energy = _band_energy_db(audio, frames)
    floor = np.percentile(energy, VAD_NOISE_PERCENTILE)
    speech = energy > max(min(floor + VAD_MARGIN_DB, VAD_LOUD_DB), VAD_ABS_FLOOR_DB)
    return _smooth(speech)


def speech_seconds(speech) -> float:
    """Seconds of speech in a per-video-frame speech mask."""
    return float(np.count_nonzero(speech)) / VIDEO_FPS


# Speech-gated score, timeline, segments


def gated_score(matrix, speech, within: int | None = None) -> float | None:
    """``video_score`` over the speech frames only; None below MIN_SPEECH_SECONDS of speech.

    The seconds judged are ``speech_seconds(speech)``. None means "too little speech to judge":
    say so rather than guess.
    """
    matrix = _check_matrix(matrix)
    speech = _check_speech(speech, len(matrix))
    if speech_seconds(speech) < MIN_SPEECH_SECONDS:
        return None
    return video_score(matrix[speech], within)


@dataclass(frozen=True)
class Window:
    """One timeline window: its span, its sync score (None: too little speech), speech share."""

    start_s: float
    end_s: float
    score: float | None
    speech_fraction: float


def _window_starts(frames: int, window_frames: int, hop_frames: int) -> list[int]:
    """Starts every hop; one more window ending at the last frame when the hops miss it."""
    last = max(frames - window_frames, 0)
    starts = list(range(0, last + 1, hop_frames))
    if starts[-1] != last:
        starts.append(last)
    return starts


def timeline(
    matrix,
    speech,
    offset: int,
    window_frames: int = WINDOW_FRAMES,
    hop_frames: int = HOP_FRAMES,
) -> list[Window]:
    """Sliding windows over the clip, each scored at ``offset`` (frames) over its speech frames.

    A window's score is the mean of the matrix column at ``offset`` (use ``best_offset``) over
    the window's speech frames, or None when under MIN_WINDOW_SPEECH_FRACTION of it is speech.
    A clip shorter than one window gives one window over the whole clip.
    """
    matrix = _check_matrix(matrix)
    speech = _check_speech(speech, len(matrix))
    max_shift = matrix.shape[1] // 2
    if not -max_shift <= offset <= max_shift or window_frames < 1 or hop_frames < 1:
        raise SpeechForensicsError(
            f"offset {offset} must lie in [-{max_shift}, {max_shift}] frames and window "
            f"{window_frames} and hop {hop_frames} frames must be positive"
        )
    column = matrix[:, offset + max_shift]
    windows = []
    for start in _window_starts(len(matrix), window_frames, hop_frames):
        stop = min(start + window_frames, len(matrix))
        voiced = speech[start:stop]
        fraction = float(voiced.mean())
        values = column[start:stop][voiced]
        values = values[~np.isnan(values)]
        score = float(values.mean()) if len(values) else None
        if fraction < MIN_WINDOW_SPEECH_FRACTION:
            score = None
        windows.append(Window(start / VIDEO_FPS, stop / VIDEO_FPS, score, fraction))
    return windows


def segments(windows: list[Window], threshold: float) -> list[tuple[float, float]]:
    """Merged (start_s, end_s) ranges where consecutive windows score below ``threshold``.

    Windows overlap, so each window stands for the time nearer its centre than its neighbours'
    centres (the first and last reach the clip's ends). A window without a score (too little
    speech) ends a range: low sync is reported only where there is speech to judge.
    """
    if not windows:
        return []
    centres = [(w.start_s + w.end_s) / 2 for w in windows]
    bounds = [windows[0].start_s]
    bounds += [(a + b) / 2 for a, b in itertools.pairwise(centres)]
    bounds.append(windows[-1].end_s)
    ranges: list[tuple[float, float]] = []
    previous_low = False
    for i, window in enumerate(windows):
        low = window.score is not None and window.score < threshold
        if low and previous_low:
            ranges[-1] = (ranges[-1][0], bounds[i + 1])
        elif low:
            ranges.append((bounds[i], bounds[i + 1]))
        previous_low = low
    return ranges
