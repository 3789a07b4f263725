"""lipsync-lite on the dev clips, honestly: every genuine clip judged by a model that never saw it.

The shipped model is fitted on the genuine dev clips (and those of --fit lists), so judging
those clips (or forgeries built from them) with it would flatter it. Here the sources of the
genuine clips are split into fit_lite.FOLDS folds (fit_lite.folds: a source is held out whole);
a genuine dev clip, and every constructed forgery made from it, is judged by the model fitted on
the other folds (with the --fit lists' clips of other sources, and the distorted copies, as the
shipped model is fitted). The real forgeries, never used in fitting, are judged by the shipped
model. Prints, as Markdown:

1. constructed forgeries (`speechforensics make-fakes`) by kind: AUC against the held-out
   genuine clips with a bootstrap 95 % interval, the share called fake at the shipped threshold,
   for shifts the share whose reported offset is within 2 frames of the shift plus the genuine
   clip's own reported offset (recordings have offsets of their own), for splices the
   overlap (IoU) of the reported segments with the replaced seconds;
2. real forgeries by kind: AUC with its interval, and the confounds that could fake an AUC
   (clip length, face size) as AUCs of their own.

    speechforensics make-fakes ../shared/media/dev FAKES
    python scripts/lite_dev_tables.py ../shared/media/dev FAKES \
        [--fit ../shared/media/fit/MANIFEST.tsv] [--cache DIR] [--perturb GB:3]
"""

import argparse
import csv
from pathlib import Path

import numpy as np

from speechforensics import fit_lite, metrics, perturb
from speechforensics.backends import LiteBackend
from speechforensics.errors import SpeechForensicsError
from speechforensics.lists import read_list
from speechforensics.pipeline import judge, prepare
from speechforensics.scoring import THRESHOLDS, offset_ms

THRESHOLD = THRESHOLDS["lipsync-lite"]
OFFSET_TOLERANCE_MS = 80  # a shift's offset counts as found within 2 frames of the truth


def judged(path: Path, backend, perturbation) -> dict | None:
    try:
        clip = prepare(path, perturbation=perturbation)
        return judge(clip, backend)
    except SpeechForensicsError as e:
        print(f"skipped: {e}")
        return None


def genuine_results(dev: Path, perturbation, fit_lists, cache) -> tuple[dict, dict]:
    """Held-out results of the genuine dev clips, and each one's fold model (by file name)."""
    own = fit_lite.list_sources(dev / "MANIFEST.tsv")
    more = [s for path in fit_lists for s in fit_lite.list_sources(path)]
    clips = fit_lite.read_genuine(own + more, cache_dir=cache)
    names = {path.name for path, _ in own}
    results, models = {}, {}
    for held, model in fit_lite.folds(clips):
        for clip in (c for c in held if c.name in names):
            models[clip.name] = model
            results[clip.name] = judged(dev / clip.name, LiteBackend(model), perturbation)
    return results, models


def constructed(fakes: Path, models: dict, real: dict, perturbation, kinds) -> list[dict]:
    with open(fakes / "fakes.tsv") as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if r["label"] == "fake"]
    out = []
    for row in rows:
        if row["kind"] not in kinds:
            continue
        result = judged(fakes / row["file"], LiteBackend(models[row["source"]]), perturbation)
        source = real.get(row["source"])
        if result is not None and source is not None:
            out.append(row | {"result": result, "own_offset": source["offset_frames"]})
    return out


def auc_cells(real: list[float], fake: list[float]) -> str:
    labels, scores = [1] * len(real) + [0] * len(fake), real + fake
    low, high = metrics.auc_interval(labels, scores)
    return f"{metrics.auc(labels, scores):.3f} | {low:.2f}–{high:.2f}"


def iou(found: list, truth: tuple[float, float]) -> float:
    """Overlap of the union of `found` ranges with the `truth` range, over their union."""
    inter = sum(max(0.0, min(b, truth[1]) - max(a, truth[0])) for a, b in found)
    total = sum(b - a for a, b in found) + (truth[1] - truth[0]) - inter
    return inter / total if total > 0 else 0.0


def constructed_table(real: list[float], fakes: list[dict]) -> None:
    print("| kind | n | AUC | 95 % CI | called fake | offset found | splice IoU |")
    print("|---|---|---|---|---|---|---|")
    for kind in sorted({f["kind"] for f in fakes}):
        group = [f for f in fakes if f["kind"] == kind]
        scores = [f["result"]["score"] for f in group]
        caught = np.mean([s < THRESHOLD for s in scores])
        found = ious = ""
        if kind.startswith("shift"):
            hits = [  # against the shift plus the genuine clip's own offset
                abs(offset_ms(f["result"]["offset_frames"] - f["own_offset"]) - t)
                <= OFFSET_TOLERANCE_MS
                for f, t in zip(group, [float(f["offset_s"]) * 1000 for f in group], strict=True)
            ]
            found = f"{np.mean(hits):.0%}"
        if kind == "splice":
            values = [iou(f["result"]["segments"], _segment(f["segments"])) for f in group]
            ious = f"mean {np.mean(values):.2f}, found in {np.mean([v > 0 for v in values]):.0%}"
        cells = auc_cells(real, scores)
        print(f"| {kind} | {len(group)} | {cells} | {caught:.0%} | {found} | {ious} |")


def _segment(text: str) -> tuple[float, float]:
    start, end = text.split(";")[0].split("-")
    return float(start), float(end)


def real_forgeries(dev: Path, real: dict, perturbation) -> None:
    backend = LiteBackend()
    items = [i for i in read_list(dev / "MANIFEST.tsv") if i.label == 0]
    fakes = [(i, judged(i.path, backend, perturbation)) for i in items]
    fakes = [(i, r) for i, r in fakes if r is not None]
    genuine = [r for r in real.values() if r is not None]
    kinds = sorted({i.category.split(" ")[0] for i, _ in fakes})
    print("| forgeries | n | AUC | 95 % CI |")
    print("|---|---|---|---|")
    for kind in ["all", *kinds]:
        group = [r for i, r in fakes if kind == "all" or i.category.startswith(kind)]
        cells = auc_cells([r["score"] for r in genuine], [r["score"] for r in group])
        print(f"| {kind} | {len(group)} | {cells} |")
    print("\nConfounds, as scores of their own (AUC real vs all forgeries, same clips):")
    for name, key in (("clip length", _duration), ("face size", _face_size)):
        cells = auc_cells([key(r) for r in genuine], [key(r) for _, r in fakes])
        print(f"- {name}: AUC {cells}")


def _duration(result: dict) -> float:
    return result["duration_s"]


def _face_size(result: dict) -> float:
    box = next(t for t in result["tracks"] if t["id"] == result["face"])["box_px"]
    return float(np.hypot(box[2] - box[0], box[3] - box[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dev", type=Path, help="folder with MANIFEST.tsv")
    parser.add_argument("fakes", type=Path, help="make-fakes output folder (fakes.tsv)")
    parser.add_argument("--perturb", help="TYPE:LEVEL applied to every clip (perturb.py)")
    parser.add_argument("--kinds", nargs="+", help="constructed kinds to judge (default: all)")
    parser.add_argument("--no-real-forgeries", action="store_true")
    parser.add_argument("--fit", type=Path, nargs="*", default=[], help="more genuine lists")
    parser.add_argument("--cache", type=Path, help="preprocessing cache of the genuine clips")
    args = parser.parse_args()
    perturbation = perturb.parse(args.perturb) if args.perturb else None
    real, models = genuine_results(args.dev, perturbation, args.fit, args.cache)
    genuine = [r["score"] for r in real.values() if r is not None]
    print(
        f"genuine held out: {len(genuine)}, called fake: {np.mean(np.r_[genuine] < THRESHOLD):.0%}"
    )
    print(f"perturbation: {args.perturb or 'none'}\n")
    kinds = args.kinds or ["swap", "shift0.5s", "shift1s", "shift2s", "splice"]
    constructed_table(genuine, constructed(args.fakes, models, real, perturbation, kinds))
    if not args.no_real_forgeries:
        print()
        real_forgeries(args.dev, real, perturbation)


if __name__ == "__main__":
    main()
