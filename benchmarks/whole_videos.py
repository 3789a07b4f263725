"""Whole videos as they are filmed: the `make-fakes` kinds turns, cuts and long (genuine) and their
-forged versions, judged by `detect` and checked against each video's truth JSON.

    speechforensics make-fakes ../shared/media/dev OUT --kinds turns turns-forged cuts \\
        cuts-forged long long-forged
    python benchmarks/whole_videos.py OUT [--backend lipsync-lite] [--results R.jsonl] \\
        [--cache DIR] [--held-out ../shared/media/dev/MANIFEST.tsv ../shared/media/fit/MANIFEST.tsv]

Per kind, and over all genuine and all forged videos:
- called real (genuine) / called fake (forged);
- forged stretch found: reported low-sync segments cover at least half of the forged span's
  speech (a dubbed voice shorter than its span leaves silence there, which no lip-sync
  evidence can mark);
- speaker found: each truth turn's best-overlapping reported turn is on a face inside that
  turn's panel (the face box's centre in the truth box);
- analysed to the end: the report covers the whole file (duration within 0.1 s);
- false-alarm segments: seconds of reported segments outside forged spans, per second of
  genuine time (genuine videos, and the genuine parts of forged ones).
Results are appended to --results as they come (a rerun skips videos already there).

The shipped lipsync-lite model was fitted on the genuine clips the composites are made of, so
its scores of them are in-sample. With --held-out LIST ... (the lists the model was fitted on)
each video is judged as a new source would be: lipsync-lite is fitted once per fold of
fit_lite.folds (sources held out whole, the shipped settings and distorted copies), the video is
judged by every fold model, and each reported turn and timeline window is taken from the model
that never saw the clip shown at its middle; the video's verdict and segments are recomposed
from those as pipeline.judge makes them. --cache keeps prepared clips (composites and fitted
clips) between runs.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from speechforensics import fit_lite, scoring
from speechforensics.backends import LiteBackend, load_backend
from speechforensics.cache import load_prepared
from speechforensics.errors import describe
from speechforensics.features import VIDEO_FPS
from speechforensics.pipeline import judge, prepare, reported_segments, thresholds_of, video_verdict
from speechforensics.scoring import speech_frames


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def speech_runs(speech: np.ndarray) -> list[tuple[float, float]]:
    """(start_s, end_s) of each run of speech frames."""
    edges = np.flatnonzero(np.diff(np.r_[0, speech.astype(np.int8), 0]))
    return [(a / VIDEO_FPS, b / VIDEO_FPS) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def check(result: dict, truth: dict, speech: np.ndarray) -> dict:
    """The measures of one video against its truth; `speech`: its speech frames (25 fps)."""
    forged = [(f["start_s"], f["end_s"]) for f in truth["forged"]]
    segments = [tuple(s) for s in result.get("segments", [])]
    seg_time = sum(b - a for a, b in segments)
    inside = sum(overlap(s, f) for s in segments for f in forged)
    genuine_time = truth["duration_s"] - sum(b - a for a, b in forged)
    runs = speech_runs(speech)
    found = True
    for f in forged:
        said = [(max(a, f[0]), min(b, f[1])) for a, b in runs if overlap((a, b), f) > 0]
        covered = sum(overlap(s, r) for s in segments for r in said)
        found &= bool(covered >= 0.5 * sum(b - a for a, b in said))
    speakers = []
    for t in truth["turns"]:
        span = (t["start_s"], t["end_s"])
        best = max(result.get("turns", []), key=lambda r: overlap(span, (r["start_s"], r["end_s"])),
                   default=None)  # fmt: skip
        if best is None or overlap(span, (best["start_s"], best["end_s"])) == 0:
            speakers.append(False)
            continue
        x0, y0, x1, y1 = best["box_px"]
        bx0, by0, bx1, by1 = t["box"]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        speakers.append(bx0 <= cx <= bx1 and by0 <= cy <= by1)
    return {
        "verdict": result.get("verdict"),
        "found": found if forged else None,
        "speakers_right": sum(speakers),
        "speakers": len(speakers),
        "to_the_end": abs(result.get("duration_s", 0) - truth["duration_s"]) <= 0.1,
        "false_alarm_s": seg_time - inside,
        "genuine_s": genuine_time,
    }


class HeldOut:
    """lipsync-lite fold models over the genuine clips of `lists` (fit_lite, as the shipped fit)
    and the fold of each clip's source, by file name."""

    def __init__(self, lists: list[Path], cache: Path | None):
        sources = [s for path in lists for s in fit_lite.list_sources(path)]
        clips = fit_lite.read_genuine(sources, fit_lite.AUGMENTATIONS, cache)
        folded = fit_lite.folds(clips)
        self.backends = [LiteBackend(model) for _, model in folded]
        self.fold = {c.name: k for k, (held, _) in enumerate(folded) for c in held}

    def judge(self, clip, truth: dict) -> dict:
        """The report of `clip` with each turn and window from the fold model that never saw
        the clip shown at its middle (truth: the video's truth JSON)."""
        results = [judge(clip, backend) for backend in self.backends]

        def fold(item: dict) -> int:
            middle = (item["start_s"] + item["end_s"]) / 2
            shown = next((t for t in truth["turns"] if middle < t["end_s"]), truth["turns"][-1])
            return self.fold[shown["source"]]

        turns = sorted(
            (t for k, r in enumerate(results) for t in r["turns"] if fold(t) == k),
            key=lambda t: t["start_s"],
        )
        if len(turns) == 1:  # one speaker in one shot: that model's report as it stands
            return results[fold(turns[0])]
        windows = [results[fold(w)]["timeline"][i] for i, w in enumerate(results[0]["timeline"])]
        limits = thresholds_of(self.backends[0])
        first = results[fold(turns[0])] if turns else results[0]
        verdict, decided = video_verdict(
            first["score"], limits, turns, False, first["speech_seconds"]
        )
        low = [scoring.Window(**w) for w in windows]
        segments = reported_segments(low, turns, limits.segment)
        return first | {"verdict": verdict, "decided_by": decided, "turns": turns,
                        "timeline": windows, "segments": segments}  # fmt: skip


def table(rows: list[dict]) -> str:
    kinds = sorted({r["kind"] for r in rows})
    out = [
        (
            "| kind | videos | called right | forged stretch found | speaker found | to the end "
            "| false-alarm segments |"
        ),
        "|---|---|---|---|---|---|---|",
    ]
    groups = [(k, [r for r in rows if r["kind"] == k]) for k in kinds]
    groups += [("all genuine", [r for r in rows if r["label"] == "real"])]
    groups += [("all forged", [r for r in rows if r["label"] == "fake"])]
    for name, group in groups:
        ok = [r for r in group if not r.get("error")]
        if not group:
            continue
        right = sum(r["verdict"] == ("real" if r["label"] == "real" else "fake") for r in ok)
        forged = [r for r in ok if r["found"] is not None]
        found = f"{sum(r['found'] for r in forged)}/{len(forged)}" if forged else "–"
        spk = f"{sum(r['speakers_right'] for r in ok)}/{sum(r['speakers'] for r in ok)}"
        end = f"{sum(r['to_the_end'] for r in ok)}/{len(ok)}"
        fa = sum(r["false_alarm_s"] for r in ok) / max(sum(r["genuine_s"] for r in ok), 1e-9)
        errors = len(group) - len(ok)
        cell = f"{right}/{len(group)} ({right / len(group):.0%})" + (
            f", {errors} failed" if errors else ""
        )
        out.append(f"| {name} | {len(group)} | {cell} | {found} | {spk} | {end} | {fa:.1%} |")
    return "\n".join(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folder", type=Path, help="make-fakes output with *.truth.json")
    p.add_argument("--backend", default=None)
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--results", type=Path, help="results .jsonl (default FOLDER/whole.jsonl)")
    p.add_argument("--cache", type=Path, help="keep prepared clips here (evaluate's cache)")
    p.add_argument(
        "--held-out", type=Path, nargs="+", metavar="LIST",
        help="judge lipsync-lite held out by source: fold models fitted on these lists' genuine "
        "clips (those the shipped model was fitted on)",
    )  # fmt: skip
    args = p.parse_args()
    results = args.results or args.folder / "whole.jsonl"
    done = {}
    if results.exists():
        done = {r["file"]: r for r in map(json.loads, results.read_text().splitlines())}
    backend = load_backend(args.backend, args.checkpoint)
    if args.held_out and backend.name != "lipsync-lite":
        p.error("--held-out refits lipsync-lite; it says nothing of another backend")
    held_out = HeldOut(args.held_out, args.cache) if args.held_out else None
    with open(results, "a") as log:
        for truth_path in sorted(args.folder.glob("*.truth.json")):
            truth = json.loads(truth_path.read_text())
            video = truth_path.parent / truth["file"]
            if str(video) in done:
                continue
            row = {"file": str(video), "kind": truth["kind"], "label": truth["label"]}
            started = time.perf_counter()
            try:
                if args.cache:
                    clip = load_prepared(video, args.cache, None, crops=backend.needs_crops)[0]
                else:
                    clip = prepare(video, None, crops=backend.needs_crops)
                result = held_out.judge(clip, truth) if held_out else judge(clip, backend)
                speech = speech_frames(clip.audio)
                row |= check(result, truth, speech) | {"turns": result["turns"]}
            except Exception as e:  # noqa: BLE001 - measured, not fatal
                row["error"] = describe(e, video)
            row["seconds"] = round(time.perf_counter() - started, 2)
            print(row["file"], row.get("verdict"), row.get("error", ""), file=sys.stderr)
            log.write(json.dumps(row) + "\n")
            log.flush()
            done[str(video)] = row
    print(table(list(done.values())))


if __name__ == "__main__":
    main()
