"""A labelled list of videos in, per-video scores and the paper's metrics out.

The list comes from lists.read_list (the original SpeechForensics lists, CSV/TSV manifests,
real/ and fake/ folders). `evaluate` judges every video with `pipeline.judge` (the same
function as `speechforensics detect`), appending each result to RESULTS_DIR as it finishes, so a
crash or Ctrl-C loses nothing and rerunning resumes; preprocessing (faces, crops, audio features)
is cached by file content, settings and perturbation. `summarise` computes the metrics overall
and per category, `robustness` the paper's Table 7 over the DeeperForensics distortions.

Labels follow the paper: 1 = real, 0 = fake; a higher score means more likely real. For AP, the
TPRs and the localisation metrics the positives are the fakes (what a detector looks for); AUC and
EER are the same either way.
"""

import collections
import csv
import dataclasses
import itertools
import json
import multiprocessing
import os
import socket
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from . import cache, media, metrics, paper, perturb, scoring
from .backends import Remembered, choose, load_backend, stream_requests
from .errors import SpeechForensicsError, describe, report_skip
from .features import VIDEO_FPS
from .files import replacing
from .lists import Item, official_parser_keeps
from .pipeline import judge
from .report import write_json

CSV_COLUMNS = (
    "file", "label", "category", "score", "score_untrimmed", "verdict", "offset_frames",
    "speech_seconds", "backend", "perturbation", "error",
)  # fmt: skip
GPU_BATCH = 8  # clips per pass through avhubert on a GPU when --batch is not given
RUN_ONLY = ("device",)  # EvalConfig fields that do not change a result (a run may resume on a GPU)


# --- the run: one record per video, appended as it finishes -------------------------------


@dataclass(frozen=True)
class EvalConfig:
    """How each video is judged; everything that changes a result (the resume check reads it)."""

    backend: str | None = None  # None: backends.load_backend's choice
    checkpoint: str | None = None
    lite_params: str | None = None  # lipsync-lite parameters (None: the shipped ones)
    threshold: float | None = None  # None: the backend's calibrated one
    max_seconds: float | None = media.MAX_SECONDS
    trim_silence: bool = False  # also score with leading/trailing non-speech dropped
    perturbation: str | None = None  # 'TYPE:LEVEL' (perturb.py), seeded per clip
    calibration: str | None = None  # calibration file (None: the one found for the model)
    device: str | None = None  # avhubert: cpu, cuda, cuda:N (None: cuda when there is one)
    dtype: str | None = None  # avhubert: float32 (None), bfloat16, float16
    protocol: str = "ours"  # ours, or paper: the official steps exactly (paper.py; avhubert)
    landmarks: str | None = None  # paper: folder of official landmark JSON files
    rois: str | None = None  # paper: folder of official mouth-ROI .mp4 + .wav pairs


def evaluate(
    items: list[Item],
    out_dir: Path,
    config: EvalConfig = EvalConfig(),
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: bool = False,
    debug: bool = False,
    batch: int | None = None,
    list_path: Path | None = None,
    engine=None,
) -> dict:
    """Judge every item not yet in `out_dir`/results.jsonl, appending each record as it finishes
    (flushed and fsynced), then write scores.csv (list order), summary.json (returned) and the
    plots. Failed videos get a record with `error` set and count as failures, not as scores;
    each is reported in one line (with `debug`, an unexpected failure's traceback too).
    `batch` > 1: `workers` processes only prepare the clips and this process judges them, `batch`
    clips per pass through the model (None: GPU_BATCH for avhubert on a GPU, else 1).
    `list_path`: the list the items came from; the summary then says how many of its videos
    the official evaluate.py would have read (lists.official_parser_keeps).
    `engine`: where the clips are judged, a callable (items, config, cache_dir, progress, batch)
    -> records in any order (distributed.RayEngine); None: this machine (`workers` processes).
    Either way the records, the resume and the outputs are this function's."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _check_settings(out_dir, config)
    done = {r["file"]: r for r in read_results(out_dir / "results.jsonl")}
    todo = [item for item in items if str(item.path) not in done]
    cache_dir = Path(cache_dir) if cache_dir is not None else out_dir / "cache"
    if engine is None:
        records = judge_items(todo, config, cache_dir, workers, progress, batch)
    else:
        records = engine(todo, config, cache_dir, progress, batch)
    with open(out_dir / "results.jsonl", "a", encoding="utf-8") as log:
        for record in records:
            log.write(json.dumps(record) + "\n")
            log.flush()
            os.fsync(log.fileno())
            done[record["file"]] = record
            if record["error"]:
                report_skip(record["error"])
                if debug and record.get("traceback"):
                    print(record["traceback"], file=sys.stderr, end="")
    records = [done[str(item.path)] for item in items]
    write_scores(records, out_dir / "scores.csv")
    summary = summarise(records, items)
    if list_path is not None:
        summary["official_parser_keeps"] = official_parser_keeps(list_path)
    write_json(summary, out_dir / "summary.json")
    plot(records, summary, out_dir)
    return summary


def _check_settings(out_dir: Path, config: EvalConfig) -> None:
    path = out_dir / "settings.json"
    settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in RUN_ONLY}
    if path.exists():
        previous = json.loads(path.read_text())
        if previous != settings:
            changed = ", ".join(k for k in settings if previous.get(k) != settings[k])
            raise SpeechForensicsError(
                f"{out_dir} holds results of a run with other settings ({changed}); "
                "choose another --out to keep both, or delete it"
            )
    else:
        write_json(settings, path)


def read_results(path: Path) -> list[dict]:
    """The records of a results.jsonl; a torn last line (a crash mid-write) is cut off, so the
    next append starts on a line of its own."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records, good = [], 0
    for line in data[: data.rfind(b"\n") + 1].splitlines(keepends=True):
        try:
            records.append(json.loads(line))
        except ValueError:
            break
        good += len(line)
    if good < len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
    return records


def judge_items(
    items,
    config: EvalConfig,
    cache_dir: Path,
    workers: int,
    progress: bool,
    batch=None,
    calibration=None,
):
    """Records in list order (1 worker, or batched) or as workers finish them. `calibration`:
    backend_of's (calibrate passes False: the scores alone, no thresholds looked up)."""
    bar = _bar(len(items), progress)
    if batch_size(config, batch) > 1:
        for record in batched_records(items, config, cache_dir, workers, batch_size(config, batch)):
            yield record
            bar.update()
        return
    if workers <= 1 or len(items) <= 1:
        backend = backend_of(config, calibration)
        for item in items:
            yield judge_item(item, config, backend, cache_dir)
            bar.update()
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, _start_worker, (config, cache_dir, calibration)) as pool:
        for record in pool.imap_unordered(_worker_judge, items):
            yield record
            bar.update()


def _bar(total: int, enabled: bool):
    return tqdm(total=total, unit="video", disable=not enabled, file=sys.stderr)


def backend_of(config: EvalConfig, calibration=None):
    """The backend `config` names; `calibration` False: its built-in thresholds, none looked up
    (for calibrating it)."""
    calibration = config.calibration if calibration is None else calibration
    return load_backend(
        config.backend,
        config.checkpoint,
        config.lite_params,
        calibration,
        config.device,
        config.dtype,
        config.protocol,
    )


def batch_size(config: EvalConfig, batch: int | None) -> int:
    """`batch`, else GPU_BATCH when avhubert runs on a GPU, else 1 (judged where prepared)."""
    if config.protocol == "paper":  # one clip at a time, as the official evaluate.py
        return 1
    if batch is not None:
        return max(1, batch)
    name, _ = choose(config.backend, config.checkpoint)
    if name != "avhubert" or (config.device or "cuda") == "cpu":
        return 1
    import torch  # avhubert loads it anyway

    gpu = config.device is not None or torch.cuda.is_available()
    return GPU_BATCH if gpu else 1


# --- batched: workers prepare, this process runs the model -------------------------------------


def batched_records(items, config: EvalConfig, cache_dir: Path, workers: int, batch: int):
    """Records in list order: `workers` processes prepare the clips (CPU only: faces, crops,
    audio; through the cache) while this process judges them, `batch` clips per pass through
    the model (backends.Remembered.fill)."""
    backend = backend_of(config)
    prepared = prepared_clips(items, config, cache_dir, workers, backend.needs_crops)
    while group := list(itertools.islice(prepared, batch)):
        yield from judge_group(group, config, backend)


def judge_group(group: list[tuple], config: EvalConfig, backend) -> list[dict]:
    """The records of prepare_item's (item, clip, outcome) triples, the model run on all their
    clips in one batch when there are several."""
    clips = [clip for _, clip, _ in group if clip is not None]
    memory = remembered(backend, clips) if len(clips) > 1 else backend
    return [record_of(item, config, memory, clip, outcome) for item, clip, outcome in group]


def remembered(backend, clips: list) -> Remembered:
    """`backend` with the streams judge will ask of `clips` computed now, in one batch."""
    memory = Remembered(backend)
    try:
        memory.fill([r for clip in clips for r in stream_requests(clip)])
    except Exception as e:  # noqa: BLE001 - each clip then computes its own and fails alone
        warnings.warn(f"a batch of {len(clips)} clips failed ({describe(e)}); judged one by one")
    return memory


def prepared_clips(items, config: EvalConfig, cache_dir: Path, workers: int, crops: bool):
    """(item, clip or None, {cached, seconds} or {error, traceback}) per item, in order; prepared
    in `workers` processes (at most a few clips ahead) or here when `workers` <= 1."""
    if workers <= 1 or len(items) <= 1:
        _WORKER.update(config=config, cache_dir=cache_dir, crops=crops)
        yield from map(_prepare_item, items)
        return
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers, _start_preparer, (config, cache_dir, crops)) as pool:
        ahead, pending = iter(items), collections.deque()
        for item in itertools.islice(ahead, 2 * workers):
            pending.append(pool.apply_async(_prepare_item, (item,)))
        while pending:
            result = pending.popleft().get()
            for item in itertools.islice(ahead, 1):
                pending.append(pool.apply_async(_prepare_item, (item,)))
            yield result


def _start_preparer(config: EvalConfig, cache_dir: Path, crops: bool) -> None:
    cv2.setNumThreads(1)  # the workers share the cores
    _WORKER.update(config=config, cache_dir=cache_dir, crops=crops)


def _prepare_item(item: Item) -> tuple:
    return prepare_item(item, _WORKER["config"], _WORKER["cache_dir"], _WORKER["crops"])


def prepare_item(item: Item, config: EvalConfig, cache_dir: Path, crops: bool) -> tuple:
    """(item, clip, {cached, seconds}), or (item, None, {error, traceback, seconds}) when the
    video cannot be prepared: the CPU half of judging it, through the cache."""
    started = time.perf_counter()
    try:
        clip, cached = cache.load_prepared(
            item.path, cache_dir, config.max_seconds, config.perturbation, crops
        )
    except Exception as e:  # noqa: BLE001 - the record says why; the run goes on
        clip, outcome = None, _failure(e, item)
    else:
        outcome = {"cached": cached}
    return item, clip, outcome | {"seconds": time.perf_counter() - started}


def record_of(item: Item, config: EvalConfig, backend, clip, outcome: dict) -> dict:
    """The record of a clip prepare_item made: judged by `backend`, or its failure."""
    started = time.perf_counter()
    record = _new_record(item, config)
    if clip is None:
        record |= {k: v for k, v in outcome.items() if k != "seconds"}
    else:
        try:
            _judge_into(record, clip, outcome["cached"], config, backend)
        except Exception as e:  # noqa: BLE001 - one line in the record; the run goes on
            record |= _failure(e, item)
    judged = time.perf_counter() - started
    stages = {"prepare_s": round(outcome["seconds"], 3), "judge_s": round(judged, 3)}
    return record | stages | {"seconds": round(outcome["seconds"] + judged, 3)}


_WORKER: dict = {}  # per worker process: the config, the cache folder and the loaded backend


def _start_worker(config: EvalConfig, cache_dir: Path, calibration=None) -> None:
    cv2.setNumThreads(1)  # the workers share the cores
    backend = backend_of(config, calibration)
    if backend.name == "avhubert":  # torch is loaded then (lipsync-lite never needs it)
        import torch

        torch.set_num_threads(1)
    _WORKER.update(config=config, cache_dir=cache_dir, backend=backend)


def _worker_judge(item: Item) -> dict:
    return judge_item(item, _WORKER["config"], _WORKER["backend"], _WORKER["cache_dir"])


def judge_item(item: Item, config: EvalConfig, backend, cache_dir: Path) -> dict:
    """One video's record: pipeline.judge's report (full-clip, and trimmed when asked) plus the
    label, category and settings; `error` set instead when the video cannot be judged (for
    any reason: one file never ends the run)."""
    if config.protocol == "paper":
        return paper_item(item, config, backend)
    item, clip, outcome = prepare_item(item, config, cache_dir, backend.needs_crops)
    return record_of(item, config, backend, clip, outcome)


def paper_item(item: Item, config: EvalConfig, backend) -> dict:
    """One video's record under the paper's protocol (paper.judge; no cache, no perturbation).
    The verdict's threshold: `config.threshold`, else the backend's calibrated one (a
    calibration made under the paper's protocol: load_backend looks for that one)."""
    started = time.perf_counter()
    record = _new_record(item, config)
    try:
        if backend.name != "avhubert":
            raise SpeechForensicsError("--protocol paper needs the avhubert backend: --checkpoint")
        folders = (None if d is None else Path(d) for d in (config.landmarks, config.rois))
        inputs = paper.PaperInputs(*folders)
        threshold = backend.thresholds.clip if config.threshold is None else config.threshold
        report = paper.judge(item.path, backend.model, inputs, threshold)
        record |= {k: report[k] for k in REPORT_KEYS + PAPER_KEYS}
        record["score_untrimmed"] = report["score"]
    except Exception as e:  # noqa: BLE001 - one line in the record; the run goes on
        record |= _failure(e, item)
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


PAPER_KEYS = ("protocol", "roi_source", "frames_video", "frames_audio", "offset_means")


def official_parser_line(summary: dict) -> str:
    """The printout's note on the official list parser (lists.official_parser_keeps)."""
    kept, n = summary["official_parser_keeps"], summary["n"]
    if kept == n:
        return f"The official evaluate.py would read all {n} videos of this list."
    return (
        f"The official evaluate.py would read only {kept} of these {n} videos: it cuts each line "
        "at its first space (split(' ')[0]) and silently skips paths that hold one."
    )


def _new_record(item: Item, config: EvalConfig) -> dict:
    record = {"file": str(item.path), "label": item.label, "category": item.category}
    record |= {"perturbation": config.perturbation, "error": None}
    return record | {"node": socket.gethostname()}  # where it was judged (Ray: the node's id)


def _judge_into(record: dict, clip, cached: bool, config: EvalConfig, backend) -> None:
    report = judge(clip, backend, config.threshold)
    record |= {k: report[k] for k in REPORT_KEYS} | {"cached": cached}
    record["score_untrimmed"] = report["score"]
    if config.trim_silence:  # score, verdict and offset trimmed; timeline and segments not
        trimmed, start = trim_silence(clip)
        report = judge(trimmed, backend, config.threshold)
        record |= {k: report[k] for k in ("score", "verdict", "offset_frames")}
        record["trim_start_s"] = start


def _failure(e: Exception, item: Item) -> dict:
    """The record's `error` (one line) and, for a failure we did not foresee, `traceback`."""
    out = {"error": describe(e, item.path)}
    if not isinstance(e, SpeechForensicsError):
        out["traceback"] = "".join(traceback.format_exception(e))
    return out


REPORT_KEYS = (
    "score", "verdict", "threshold", "offset_frames", "speech_seconds", "backend", "segments",
    "timeline", "duration_s",
)  # fmt: skip


def trim_silence(clip):
    """The clip without its leading and trailing non-speech frames, and the seconds cut from its
    start (scoring ignores non-speech frames, but a backend's features may see them)."""
    speech = np.flatnonzero(scoring.speech_frames(clip.audio))
    if len(speech) == 0:
        return clip, 0.0
    a, b = int(speech[0]), int(speech[-1]) + 1
    seen = [t for t in clip.tracks if t.face.detected[a:b].any()]
    return clip.excerpt(a, b, seen or clip.tracks), a / VIDEO_FPS


# --- outputs ---------------------------------------------------------------------------------


def write_scores(records: list[dict], path: Path) -> None:
    with replacing(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(records)


# --- metrics over the records ------------------------------------------------------------------


def summarise(records: list[dict], items: list[Item] | None = None) -> dict:
    """n, failures and the detection metrics (metrics.detection) overall and per category; a
    category holding one class is measured against every video of the other class (the paper's
    per-manipulation protocol). With trimmed scores, `untrimmed` holds the full-clip metrics;
    with true segments in the list, `localisation` the temporal metrics."""
    scored = [r for r in records if not r["error"]]
    threshold = next((r["threshold"] for r in scored), None)
    out = {"n": len(records), "failures": len(records) - len(scored)}
    out |= {"backend": next((r["backend"] for r in scored), None), "threshold": threshold}
    out |= {"perturbation": records[0]["perturbation"] if records else None}
    out |= _detection(scored, "score", threshold)
    if any(r.get("trim_start_s") is not None for r in scored):
        out["untrimmed"] = _detection(scored, "score_untrimmed", threshold)
    out["per_category"] = {}
    for category in sorted({r["category"] for r in records}):
        mine = [r for r in records if r["category"] == category]
        ok = [r for r in mine if not r["error"]]
        labels = {r["label"] for r in ok}
        rest = [r for r in scored if r["label"] not in labels] if len(labels) == 1 else []
        counts = {"n": len(mine), "failures": len(mine) - len(ok)}
        out["per_category"][category] = counts | _detection(ok + rest, "score", threshold)
    truths = {str(i.path): i.segments for i in items or []}
    if any(truths.values()):
        out["localisation"] = metrics.of_reports(scored, truths)
    return out


def _detection(records: list[dict], key: str, threshold) -> dict:
    labels = [r["label"] for r in records]
    return metrics.detection(labels, [r[key] for r in records], threshold)


def table(summary: dict) -> str:
    """The summary as a Markdown table: overall, then per category."""
    head = "| | n | failures | AUC [95% CI] | AP | EER | accuracy | TPR | TPR@1%FPR | TPR@5%FPR |"
    rows = [head, "|" + "---|" * 10]
    named = [("all", summary)]
    if "untrimmed" in summary:
        named.append(
            (
                "all, untrimmed",
                summary["untrimmed"] | {"n": summary["n"], "failures": summary["failures"]},
            )
        )
    for name, m in named + list(summary["per_category"].items()):
        ci = "" if m.get("auc_ci") is None else " [{:.3f}, {:.3f}]".format(*m["auc_ci"])
        cells = [name, str(m["n"]), str(m.get("failures", "")), _num(m.get("auc")) + ci]
        keys = ("ap", "eer", "accuracy", "tpr", "tpr_at_1fpr", "tpr_at_5fpr")
        cells += [_num(m.get(k)) for k in keys]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _num(value) -> str:
    return "–" if value is None else f"{value:.3f}"


def plot(records: list[dict], summary: dict, out_dir: Path) -> None:
    """roc.png (overall and per fake category) and scores.png (score distributions by
    category, the threshold dashed)."""
    from matplotlib.figure import Figure  # here: matplotlib takes a while to import

    scored = [r for r in records if not r["error"]]
    if not {0, 1} <= {r["label"] for r in scored}:
        return
    reals = [r for r in scored if r["label"] == 1]
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    curves = [("all", scored)] + [
        (c, reals + [r for r in scored if r["category"] == c and r["label"] == 0])
        for c in sorted({r["category"] for r in scored if r["label"] == 0})
    ]
    for name, group in curves:
        fpr, tpr, _ = metrics.roc([r["label"] for r in group], [r["score"] for r in group])
        auc = metrics.auc([r["label"] for r in group], [r["score"] for r in group])
        ax.plot(fpr, tpr, lw=2 if name == "all" else 1, label=f"{name[:30]} ({auc:.2f})")
    ax.plot([0, 1], [0, 1], "k:", lw=0.5)
    ax.set(xlabel="real videos called fake (FPR)", ylabel="fakes caught (TPR)", title="ROC")
    ax.legend(fontsize=6, loc="lower right")
    fig.savefig(out_dir / "roc.png", dpi=120, bbox_inches="tight")
    _plot_scores(Figure, scored, summary["threshold"], out_dir / "scores.png")


def _plot_scores(figure, scored: list[dict], threshold, path: Path) -> None:
    categories = sorted({(r["label"], r["category"]) for r in scored}, reverse=True)
    fig = figure(figsize=(7, 0.35 * len(categories) + 1.2))
    ax = fig.subplots()
    for y, (label, category) in enumerate(categories):
        xs = [r["score"] for r in scored if (r["label"], r["category"]) == (label, category)]
        jitter = np.random.default_rng(y).uniform(-0.15, 0.15, len(xs))
        ax.scatter(xs, y + jitter, s=10, c="tab:green" if label else "tab:red")
    if threshold is not None:
        ax.axvline(threshold, color="k", ls="--", lw=1)
    ax.set_yticks(range(len(categories)), [c[:40] for _, c in categories], fontsize=6)
    ax.set(xlabel="score (higher: lips match the voice)", title="scores: real green, fake red")
    fig.savefig(path, dpi=120, bbox_inches="tight")


# --- robustness: the paper's Table 7 -----------------------------------------------------------


def robustness(
    items: list[Item],
    out_dir: Path,
    config: EvalConfig,
    conditions: list[perturb.Perturbation],
    cache_dir: Path | None = None,
    workers: int = 1,
    progress: bool = False,
    debug: bool = False,
    batch: int | None = None,
    engine=None,
) -> dict:
    """The clean run and one run per perturbation (out_dir/clean, out_dir/GB-3, ...), each an
    `evaluate` (on `engine`); the AUC per condition, per type averaged over its levels, their
    average and the drop from clean, in out_dir/robustness.json and robustness.md (also
    returned)."""
    out_dir = Path(out_dir)
    cache_dir = cache_dir or out_dir / "cache"
    common = (cache_dir, workers, progress, debug, batch)
    runs = {"clean": evaluate(items, out_dir / "clean", config, *common, engine=engine)}
    for p in conditions:
        run = dataclasses.replace(config, perturbation=p.spec)
        folder = out_dir / p.spec.replace(":", "-")
        runs[p.spec] = evaluate(items, folder, run, *common, engine=engine)
    result = {"auc": {name: s["auc"] for name, s in runs.items()}}
    result["failures"] = {name: s["failures"] for name, s in runs.items()}
    kinds = list(dict.fromkeys(p.kind for p in conditions))
    by_kind = {k: _mean([runs[p.spec]["auc"] for p in conditions if p.kind == k]) for k in kinds}
    result["by_type"] = by_kind
    result["average"] = _mean(list(by_kind.values()))
    clean = runs["clean"]["auc"]
    result["drop"] = None if None in (clean, result["average"]) else clean - result["average"]
    write_json(result, out_dir / "robustness.json")
    (out_dir / "robustness.md").write_text(robustness_table(result) + "\n")
    return result


def _mean(values: list) -> float | None:
    return None if not values or None in values else float(np.mean(values))


def robustness_table(result: dict) -> str:
    """| | clean | CS | CC | ... | average | drop |: AUCs like the paper's Table 7, then the
    videos that could not be judged (e.g. no face found), summed over each type's levels."""
    kinds = list(result["by_type"])
    names = ["", "clean", *kinds, "average", "drop"]
    aucs = [result["auc"]["clean"], *result["by_type"].values(), result["average"]]
    fails = result["failures"]
    lost = [
        fails["clean"],
        *(sum(n for c, n in fails.items() if c.split(":")[0] == k) for k in kinds),
    ]
    rows = [names, ["AUC", *map(_num, aucs), _num(result["drop"])]]
    rows.append(["not judged", *map(str, lost), str(sum(fails.values()) - fails["clean"]), ""])
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join([lines[0], "|" + "---|" * len(names), *lines[1:]])
