"""`speechforensics calibrate`: a backend's verdict thresholds for one model, from genuine clips.

Each genuine clip is prepared as `evaluate` prepares it (its cache, its worker processes, clips
batched through the model) and judged by pipeline.judge exactly as `detect` judges it (the score
does not depend on any threshold). Three things are kept per clip: its score (the clip
threshold), the judged face's speech cut into consecutive pieces of 1.5, 2, 4 and 8 s, each
scored on its own span as judge scores a turn (the turn thresholds, as
scripts/turn_thresholds.py set lipsync-lite's), and its timeline windows (the segment
threshold). calibration.fit makes the thresholds and the file records what they were made from.
No forgery is used: the method asks for none.

Under the paper's protocol (EvalConfig.protocol "paper": avhubert, paper.py) each clip is scored
as `evaluate --protocol paper` scores it (evaluate.judge_items -> paper_item: the official steps,
official landmark or mouth-ROI files where given). That protocol scores whole clips only (every
frame, no speech gating, no turns, no timeline), so its calibration has a clip threshold and no
turn or segment thresholds.
"""

import itertools
import sys
from pathlib import Path

import numpy as np

from . import calibration, scoring, speakers
from .backends import choose, torch_settings
from .errors import SpeechForensicsError, describe, report_skip
from .evaluate import (
    EvalConfig,
    backend_of,
    batch_size,
    judge_items,
    prepared_clips,
    remembered,
)
from .files import file_hash
from .lists import VIDEO_SUFFIXES, Item, read_list
from .pipeline import face_evidence, judge, track_excerpt, turn_score


def genuine_items(source: Path, root: Path | None = None) -> list[Item]:
    """The genuine videos of a list (label 1; the formats lists.read_list reads), or of a folder:
    its real/ subfolder when it has real/ and fake/ ones, else every video in it (searched
    recursively), all taken as genuine."""
    source = Path(source)
    if source.is_dir() and not (source / "real").is_dir():
        paths = sorted(p for p in source.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES)
        items = [Item(p, 1, "real") for p in paths]
    else:
        items = [i for i in read_list(source, root) if i.label == 1]
    if not items:
        raise SpeechForensicsError(f"{source}: no genuine videos to calibrate on")
    return items


def calibrate(
    items: list[Item],
    config: EvalConfig | None = None,
    out: Path | None = None,
    cache_dir: Path | None = None,
    workers: int = 1,
    batch: int | None = None,
    false_alarm: float = calibration.FALSE_ALARM,
    progress: bool = False,
) -> tuple[calibration.Calibration, Path]:
    """Score the genuine `items` with the backend `config` describes and write the calibration
    to `out` (default: the cache, where detect finds it by the model's SHA-256). A clip that
    cannot be judged is reported in one line, listed in the file's `skipped`, and left out.
    `config` (evaluate's): backend, model, device, dtype, max_seconds, protocol (with paper:
    landmarks, rois). Returns the calibration and where it was written."""
    config = config or EvalConfig()
    if not 0 < false_alarm < 0.5:
        raise SpeechForensicsError(f"false-alarm rate {false_alarm:g}: choose one in (0, 0.5)")
    if config.protocol == "paper":
        return _calibrate_paper(items, config, out, workers, false_alarm, progress)
    backend = backend_of(config, calibration=False)  # its own thresholds play no part
    model = getattr(backend, "model_file", None)
    if model is None:
        raise SpeechForensicsError(f"the {backend.name} backend was given no model file")
    cache_dir = Path(cache_dir) if cache_dir is not None else _default_cache(out, backend.name)
    clips = prepared_clips(items, config, cache_dir, workers, backend.needs_crops)
    evidence = _evidence(
        iter(_bar(clips, len(items), progress)), backend, batch_size(config, batch)
    )
    fitted = calibration.fit(
        evidence["scores"], evidence["pieces"], evidence["windows"], false_alarm
    )
    settings = {"device": getattr(backend, "device", "cpu"), "max_seconds": config.max_seconds}
    settings["dtype"] = str(getattr(backend, "dtype", "float64")).removeprefix("torch.")
    made = calibration.make(
        backend.name, model, config.protocol, fitted, evidence["skipped"], settings
    )
    where = out or calibration.in_cache(backend.name, made.model_sha256)
    return made, calibration.write(made, where)


def _calibrate_paper(
    items: list[Item], config: EvalConfig, out: Path | None, workers: int, false_alarm, progress
) -> tuple[calibration.Calibration, Path]:
    """`calibrate` under the paper's protocol: each clip's paper score (evaluate.judge_items,
    which loads the model in this process or in each of `workers`), a clip threshold only."""
    from .paper import PAPER_SECONDS

    name, checkpoint = choose(config.backend, config.checkpoint)
    if name != "avhubert" or not checkpoint:
        raise SpeechForensicsError("--protocol paper needs the avhubert backend: --checkpoint FILE")
    scores, skipped = {}, []
    no_cache = Path()  # paper_item prepares each clip afresh, as the official code does
    records = judge_items(items, config, no_cache, workers, progress, calibration=False)
    for item, record in zip(items, _in_order(records, items), strict=True):
        if record["error"]:
            report_skip(record["error"])
            skipped.append({"file": item.path.name, "error": record["error"]})
        else:
            scores[item.path.name] = (file_hash(item.path), record["score"])
    fitted = calibration.fit(scores, {}, [], false_alarm)  # no turns, no timeline windows
    device, dtype = torch_settings(config.device, config.dtype)
    settings = {"device": device, "dtype": str(dtype).removeprefix("torch.")}
    settings |= {"max_seconds": PAPER_SECONDS, "landmarks": config.landmarks, "rois": config.rois}
    settings["note"] = PAPER_NOTE
    made = calibration.make(name, Path(checkpoint), "paper", fitted, skipped, settings)
    where = out or calibration.in_cache(name, made.model_sha256, protocol="paper")
    return made, calibration.write(made, where)


PAPER_NOTE = (
    "paper protocol: every frame of the first 50 s scored as one clip, so a clip threshold only; "
    "turn and segment thresholds do not apply (turns empty, segment_threshold null)"
)


def _in_order(records, items: list[Item]) -> list[dict]:
    """judge_items' records (in any order with several workers) in the order of `items`."""
    by_file = {r["file"]: r for r in records}
    return [by_file[str(item.path)] for item in items]


def _evidence(clips, backend, batch: int) -> dict:
    """The genuine clips' scores {name: (sha256, score)}, piece scores by length, window scores,
    and the clips skipped [{file, error}], judging `batch` clips per pass through the model."""
    out = {"scores": {}, "pieces": {s: [] for s in calibration.TURN_SECONDS}, "windows": []}
    out["skipped"] = []
    while group := list(itertools.islice(clips, batch)):
        memory = remembered(backend, [clip for _, clip, _ in group if clip is not None])
        for item, clip, outcome in group:
            try:
                if clip is None:
                    raise SpeechForensicsError(outcome["error"])
                score, pieces, windows = clip_evidence(clip, memory)
            except Exception as e:  # noqa: BLE001 - one file never ends the run
                message = describe(e, item.path)
                report_skip(message)
                out["skipped"].append({"file": item.path.name, "error": message})
                continue
            out["scores"][item.path.name] = (file_hash(item.path), score)
            for seconds, values in pieces.items():
                out["pieces"][seconds] += values
            out["windows"] += windows
    return out


def clip_evidence(clip, backend) -> tuple[float, dict[float, list[float]], list[float]]:
    """One genuine clip: its score as detect reports it, its judged face's speech pieces'
    scores by length (calibration.TURN_SECONDS; each scored on its own span, as judge scores a
    turn: pipeline.turn_score), its timeline windows' scores."""
    report = judge(clip, backend)
    track = next(t for t in clip.tracks if t.face.id == report["face"])
    pieces = piece_scores(clip, backend, track, calibration.TURN_SECONDS)
    windows = [w["score"] for w in report["timeline"] if w["score"] is not None]
    return report["score"], pieces, windows


def piece_scores(clip, backend, track, lengths) -> dict[float, list[float]]:
    """For each length in `lengths` (s): the face's speech cut into consecutive pieces of that
    much (speech_pieces), each scored as judge scores a turn (pipeline.turn_score: on its own
    span)."""
    speech = scoring.speech_frames(clip.audio)
    shots = clip.shots or [(0, clip.info.frames)]
    face = face_evidence(backend, clip, track, speech, shots)
    shot, out = track_excerpt(clip, track, shots)[0], {}
    for seconds in lengths:
        out[seconds] = []
        for mask in speech_pieces(face.usable, seconds):
            frames = np.flatnonzero(mask)
            turn = speakers.Turn(int(frames[0]), int(frames[-1]) + 1, shot, track.face.id, mask)
            score, _ = turn_score(backend, clip, turn, speech, shots, face)
            if score is not None:
                out[seconds].append(score)
    return out


def speech_pieces(usable: np.ndarray, seconds: float) -> list[np.ndarray]:
    """Masks of consecutive runs of `seconds` of usable speech frames (a turn of that length)."""
    frames = np.flatnonzero(usable)
    size = round(seconds * scoring.VIDEO_FPS)
    masks = []
    for start in range(0, len(frames) - size + 1, size):
        mask = np.zeros(len(usable), bool)
        mask[frames[start : start + size]] = True
        masks.append(mask)
    return masks


def _default_cache(out: Path | None, backend: str) -> Path:
    """The preprocessing cache beside the output (or in the model cache's calibrations/)."""
    base = Path(out).parent if out is not None else calibration.in_cache(backend, "").parent
    return base / "calibration-cache"


def _bar(iterable, total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(iterable, total=total, unit="video", disable=not enabled, file=sys.stderr)


def summary(made: calibration.Calibration, where: Path) -> str:
    """What `speechforensics calibrate` prints: the thresholds and where they were written."""
    protocol = " (paper protocol)" if made.protocol == "paper" else ""
    lines = [
        f"{where}: {made.backend} calibration{protocol} of {made.model_file} (SHA-256 "
        f"{made.model_sha256[:12]}...) on {len(made.clips)} genuine clips"
        + (f" ({len(made.skipped)} skipped)" if made.skipped else ""),
        f"clip threshold {made.clip_threshold:.4f} at {made.false_alarm:.0%} false alarms",
    ]
    for r in made.rates:
        low, high = r["interval"]
        lines.append(
            f"  at {r['false_alarm']:.0%}: {r['threshold']:.4f} "
            f"(95% bootstrap interval {low:.4f} to {high:.4f})"
        )
    for t in made.turns:
        lines.append(
            f"turns of {t['seconds']:g} s: {t['threshold']:.4f} ({t['pieces']} genuine pieces)"
        )
    if made.segment_threshold is not None:
        lines.append(f"segments: windows under {made.segment_threshold:.4f}")
    if made.protocol == "paper":
        lines.append("turns and segments: none (the paper's protocol scores whole clips only)")
    return "\n".join(lines)
