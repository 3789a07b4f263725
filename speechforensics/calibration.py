"""Calibration files: a backend's verdict thresholds for one model, set on genuine clips only.

`speechforensics calibrate` (calibrate.py) scores genuine clips and `fit` turns the scores into
thresholds: the clip threshold at stated false-alarm rates with bootstrap intervals, the turn
thresholds by seconds of speech (as scoring.TURN_THRESHOLDS) and the segment threshold (as
scoring.SEGMENT_THRESHOLDS). The file also says what they were made from: the model file's name,
size and SHA-256, the backend, the scoring protocol, every clip's name, SHA-256 and score, the
date. Plain JSON, written whole (files.replacing).

`find` picks the calibration of a loaded model (backends.load_backend): the file given
(--calibration), else `<model file>.calibration.json` beside it, else
`<cache>/calibrations/<backend>-<sha256>.json` (the folder `speechforensics download` uses). One
made for another model file, backend or protocol is refused with one line. Calibrations for the
paper's protocol (paper.py: one score per clip, so a clip threshold only) have names of their
own, `<model file>.paper.calibration.json` and `<backend>-<sha256>.paper.json`, so a model can
have one of each.
"""

import dataclasses
import datetime
import json
import statistics
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics, scoring
from .avhubert.download import cache_dir
from .errors import SpeechForensicsError
from .files import file_hash, replacing
from .version import __version__

FORMAT = "speechforensics-calibration"
FORMAT_VERSION = 1
DEFAULT_PROTOCOL = "ours"  # the scoring of `detect` (speech-gated); "paper": the original's
FALSE_ALARM = 0.05  # share of genuine clips the verdict threshold calls fake (the 5th percentile)
REPORTED_RATES = (0.01, 0.05)  # false-alarm rates whose thresholds the file lists, with intervals
# Turns: each length's threshold is the mean less z standard deviations of genuine pieces of that
# length (z for TURN_FALSE_ALARM under a normal), as scoring.TURN_THRESHOLDS were set.
TURN_SECONDS = (1.5, 2.0, 4.0, 8.0)  # s of speech per piece (speakers.MIN_TURN_SPEECH_S first)
TURN_FALSE_ALARM = 0.02  # per judged turn: a video of two or three turns stays near 5 %
MIN_TURN_PIECES = 5  # pieces of a length below which that length gets no threshold
# Segments: this quantile of the genuine timeline windows (lipsync-lite's segment threshold 0.0
# was about its 4th with an earlier fit; the shipped one is the 5th, scoring.SEGMENT_THRESHOLDS).
SEGMENT_FALSE_ALARM = 0.04
MIN_CLIPS = 5  # genuine clips below which no threshold is set at all
# Below this many the file and the command warn: with 29 clips the 5 % threshold gives 2-17 %
# false alarms (90 % of calibrations), with 200 about 3-8 % (scripts/threshold_stability.py).
STABLE_CLIPS = 200
SUFFIX = ".calibration.json"  # beside the model file: <model file>.calibration.json


@dataclass(frozen=True)
class Calibration:
    """What a calibration file holds (`to_dict` is its JSON)."""

    backend: str
    model_file: str  # the model's file name (checkpoint, or lipsync-lite parameters)
    model_size: int  # bytes: a model of another size is refused without hashing it
    model_sha256: str
    protocol: str
    false_alarm: float  # the rate `clip_threshold` was set at
    clip_threshold: float
    rates: tuple[dict, ...]  # {false_alarm, threshold, interval: [low, high]} per REPORTED_RATES
    turns: tuple[dict, ...]  # {seconds, threshold, pieces, mean, std} per length with enough
    segment_threshold: float | None
    clips: tuple[dict, ...]  # {file, sha256, score} per genuine clip scored
    skipped: tuple[dict, ...] = ()  # {file, error} per clip that could not be scored
    created: str = ""  # ISO 8601 date and time, UTC
    settings: dict = dataclasses.field(default_factory=dict)  # device, dtype, max_seconds, ...
    warnings: tuple[str, ...] = ()

    def thresholds(self) -> scoring.Thresholds:
        turns = tuple((t["seconds"], t["threshold"]) for t in self.turns)
        return scoring.Thresholds(self.clip_threshold, turns, self.segment_threshold)

    def to_dict(self) -> dict:
        out = {"format": FORMAT, "version": FORMAT_VERSION, "speechforensics": __version__}
        return out | dataclasses.asdict(self)


def fit(
    scores: dict[str, tuple[str, float]],
    pieces: dict[float, list[float]],
    windows: list[float],
    false_alarm: float = FALSE_ALARM,
) -> dict:
    """The thresholds from genuine scores: `scores` {file: (sha256, clip score)}, `pieces`
    {seconds: genuine piece scores}, `windows` (genuine timeline window scores). The fields of a
    Calibration that come from scores (`make` adds the rest)."""
    values = np.array([s for _, s in scores.values()], np.float64)
    if len(values) < MIN_CLIPS:
        raise SpeechForensicsError(
            f"{len(values)} genuine clip(s) scored, at least {MIN_CLIPS} needed to set a "
            f"threshold (and {STABLE_CLIPS} or more for a stable one)"
        )
    rates = sorted(set(REPORTED_RATES) | {false_alarm})
    table = tuple(
        {
            "false_alarm": r,
            "threshold": float(np.quantile(values, r)),
            "interval": metrics.quantile_interval(values, r),
        }
        for r in rates
    )
    z = statistics.NormalDist().inv_cdf(1 - TURN_FALSE_ALARM)
    turns = []
    for seconds in sorted(pieces):
        got = np.asarray(pieces[seconds], np.float64)
        if len(got) >= MIN_TURN_PIECES:
            mean, std = float(got.mean()), float(got.std())
            turns.append(
                {"seconds": seconds, "threshold": mean - z * std, "pieces": len(got)}
                | {"mean": mean, "std": std}
            )
    segment = float(np.quantile(windows, SEGMENT_FALSE_ALARM)) if windows else None
    warnings = ()
    if len(values) < STABLE_CLIPS:
        few = f"only {len(values)} genuine clips: the false-alarm rate this threshold gives may "
        warnings = (
            few + f"be far from {false_alarm:.0%}; {STABLE_CLIPS} or more keep it close "
            "(README: Calibrating)",
        )
    return {
        "false_alarm": false_alarm,
        "clip_threshold": float(np.quantile(values, false_alarm)),
        "rates": table,
        "turns": tuple(turns),
        "segment_threshold": segment,
        "clips": tuple({"file": f, "sha256": h, "score": s} for f, (h, s) in scores.items()),
        "warnings": warnings,
    }


def make(
    backend: str, model: Path, protocol: str, fitted: dict, skipped=(), settings=None
) -> Calibration:
    """A Calibration of `model` (the file the backend loaded) from `fit`'s fields."""
    model = Path(model)
    return Calibration(
        backend=backend,
        model_file=model.name,
        model_size=model.stat().st_size,
        model_sha256=file_hash(model),
        protocol=protocol,
        skipped=tuple(skipped),
        created=datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        settings=dict(settings or {}),
        **fitted,
    )


def write(calibration: Calibration, path: Path) -> Path:
    with replacing(path) as tmp:
        tmp.write_text(json.dumps(calibration.to_dict(), indent=1) + "\n", encoding="utf-8")
    return Path(path)


def read(path: Path) -> Calibration:
    """The calibration in `path`; one line naming the file when it is not one."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpeechForensicsError(f"{path}: no such calibration file") from None
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SpeechForensicsError(f"{path}: not a calibration file ({e})") from e
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SpeechForensicsError(
            f"{path}: not a calibration file (write one with `speechforensics calibrate`)"
        )
    if data.get("version") != FORMAT_VERSION:
        raise SpeechForensicsError(
            f"{path}: calibration format version {data.get('version')}, this speechforensics "
            f"reads {FORMAT_VERSION}; calibrate again"
        )
    names = {f.name for f in dataclasses.fields(Calibration)}
    try:
        fields = {k: v for k, v in data.items() if k in names}
        for key in ("rates", "turns", "clips", "skipped", "warnings"):
            fields[key] = tuple(fields.get(key, ()))
        calibration = Calibration(**fields)
        calibration.thresholds().turn(0.0)  # the numbers are numbers
        float(calibration.clip_threshold)
    except (TypeError, ValueError, KeyError) as e:
        raise SpeechForensicsError(f"{path}: damaged calibration file ({e})") from e
    return calibration


def _infix(protocol: str) -> str:
    """What a calibration file's name adds for `protocol` ("" for ours, ".paper" for paper)."""
    return "" if protocol == DEFAULT_PROTOCOL else f".{protocol}"


def beside(model: Path, protocol: str = DEFAULT_PROTOCOL) -> Path:
    """Where a calibration of `model` for `protocol` is looked for next to it."""
    model = Path(model)
    return model.with_name(model.name + _infix(protocol) + SUFFIX)


def in_cache(
    backend: str, sha256: str, cache: Path | None = None, protocol: str = DEFAULT_PROTOCOL
) -> Path:
    """Where a calibration of the model with this SHA-256 for `protocol` is looked for in the
    cache."""
    name = f"{backend}-{sha256}{_infix(protocol)}.json"
    return Path(cache or cache_dir()) / "calibrations" / name


def check(
    calibration: Calibration,
    path: Path,
    backend: str,
    model: Path,
    protocol: str,
    sha256: str | None = None,
) -> None:
    """Raise one line when `calibration` (read from `path`) was not made for `backend` running
    the model file `model` (whose SHA-256 is `sha256`, if known) under `protocol`."""
    model = Path(model)
    if calibration.backend != backend:
        raise SpeechForensicsError(
            f"{path}: a calibration of the {calibration.backend} backend, not of {backend}; "
            f"calibrate {backend} with `speechforensics calibrate`"
        )
    if calibration.protocol != protocol:
        raise SpeechForensicsError(
            f"{path}: calibrated with the {calibration.protocol!r} protocol, this run scores "
            f"with {protocol!r}; make one with `speechforensics calibrate --protocol {protocol}`"
        )
    if (
        model.stat().st_size != calibration.model_size
        or (sha256 or file_hash(model)) != calibration.model_sha256
    ):
        raise SpeechForensicsError(
            f"{path}: made for another model file ({calibration.model_file}, SHA-256 "
            f"{calibration.model_sha256[:12]}...), not {model}; calibrate this one with "
            "`speechforensics calibrate`"
        )


def find(
    backend: str,
    model: Path,
    protocol: str = DEFAULT_PROTOCOL,
    given: Path | None = None,
    cache: Path | None = None,
) -> tuple[Calibration, Path] | None:
    """The calibration of `backend` running the model file `model` under `protocol`, and where
    it was found: `given`, else the one beside the model, else the cache's one keyed by the
    model's SHA-256 (each under `protocol`'s name: `beside`, `in_cache`); None when there is
    none, or when the one found was made under another protocol. A file found for another model
    or backend, or given for anything else, is refused (SpeechForensicsError), never skipped.
    The model is hashed only when there is a candidate."""
    model, path, sha256 = Path(model), given, None
    if path is None and beside(model, protocol).exists():
        path = beside(model, protocol)
    if path is None:
        folder = in_cache(backend, "", cache).parent
        if not any(folder.glob(f"{backend}-*{_infix(protocol)}.json")):
            return None
        sha256 = file_hash(model)
        path = in_cache(backend, sha256, cache, protocol)
        if not path.exists():
            return None
    calibration = read(path)
    if given is None and calibration.protocol != protocol:
        return None  # found for the model, but its thresholds are for the other protocol's scores
    check(calibration, path, backend, model, protocol, sha256)
    return calibration, path
