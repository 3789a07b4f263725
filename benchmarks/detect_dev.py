"""Detection on the dev clips: scores, the genuine-only threshold, AUC, time per clip.

Runs `detect` on every clip of ../shared/media/dev (or --clips) with a backend and no threshold,
then prints per clip the score, speech seconds and wall time against the clip's duration; the
threshold the backend would get from the genuine clips alone (their 5th percentile: 5 % false
alarms, no forgery used); and the AUC of real vs fake, overall and per kind of forgery.

    python benchmarks/detect_dev.py [--backend lipsync-lite|avhubert] [--checkpoint CKPT]
"""

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch

from speechforensics.backends import BACKENDS, load_backend
from speechforensics.errors import SpeechForensicsError
from speechforensics.metrics import auc_real_fake
from speechforensics.pipeline import detect

DEV = Path(__file__).resolve().parents[1].parent / "shared/media/dev"
FALSE_ALARMS = 0.05  # share of genuine clips the threshold calls fake


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=DEV)
    parser.add_argument("--backend", choices=BACKENDS, default=BACKENDS[0])
    parser.add_argument("--checkpoint", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--fakes", type=Path, help="also score fakes from speechforensics make-fakes"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    backend = load_backend(args.backend, args.checkpoint)
    rows = manifest(args.clips)
    if args.fakes:
        made = manifest(args.fakes, "fakes.tsv")  # it lists the genuine clips too
        rows = [r for r in rows if r["label"] == "real"] + [r for r in made if r["label"] == "fake"]
    print("| clip | label | kind | score | offset | speech s | seconds / clip seconds |")
    print("|---|---|---|---|---|---|---|")
    scores = {}
    for row in rows:
        start = time.perf_counter()
        try:
            result = detect(row["path"], backend)
        except SpeechForensicsError as e:
            print(f"| {row['file']} | {row['label']} | {row['kind']} | error: {e} | | | |")
            continue
        wall = time.perf_counter() - start
        score = result["score"]
        if score is not None:
            scores[row["file"]] = (row["label"], row["kind"], score)
        shown = "too little speech" if score is None else f"{score:.3f}"
        print(
            f"| {row['file']} | {row['label']} | {row['kind']} | {shown} "
            f"| {result['offset_frames']:+d} | {result['speech_seconds']:.1f} "
            f"| {wall:.1f} / {result['duration_s']:.1f} = {wall / result['duration_s']:.2f} |"
        )
    summarise(scores)


def manifest(folder: Path, name: str = "MANIFEST.tsv") -> list[dict]:
    with open(folder / name) as f:
        return [r | {"path": folder / r["file"]} for r in csv.DictReader(f, delimiter="\t")]


def summarise(scores: dict) -> None:
    real = [s for label, _, s in scores.values() if label == "real"]
    fake = {}
    for label, kind, s in scores.values():
        if label == "fake":
            fake.setdefault(kind.split(" ")[0], []).append(s)
    threshold = float(np.quantile(real, FALSE_ALARMS))
    everything = [s for ss in fake.values() for s in ss]
    print(f"\nthreshold (5th percentile of {len(real)} genuine clips): {threshold:.4f}")
    print(f"AUC real vs all {len(everything)} fakes: {auc_real_fake(real, everything):.3f}")
    caught = np.mean(np.asarray(everything) < threshold)
    print(f"fakes below the threshold: {caught:.0%}")
    for kind, ss in sorted(fake.items()):
        print(f"AUC real vs {kind} ({len(ss)}): {auc_real_fake(real, ss):.3f}")


if __name__ == "__main__":
    main()
