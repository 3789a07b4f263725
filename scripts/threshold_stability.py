"""How many genuine clips does a stable threshold need? Bootstrap subsets of the dev clips.

For each n (5, 10, 15, 20, 29): DRAWS bootstrap samples of n clips (drawn with replacement from
the 29), the threshold `calibrate` would set on each (the 5th percentile of its scores,
calibration.FALSE_ALARM), and the false-alarm rate that threshold gives on the clips the sample
left out (out of bag: about a third of them even at n = 29). Beyond 29, where the dev set has
no more clips, a normal fitted to the scores stands in for genuine clips: samples of n from it,
the same threshold, and the false-alarm rate that threshold has on the normal itself. Two sets of
scores:

- held-out: each clip scored by the lipsync-lite model fitted without it (the five folds of
  `fit-lite`, stored in the shipped parameters): what calibrating on genuine clips the model never
  saw faces, as a user calibrating a checkpoint does;
- calibrate: the clips scored by `speechforensics calibrate`'s own code with the shipped model
  (fitted on these very clips, so its scores sit higher and closer together).

    python scripts/threshold_stability.py [--list ../shared/media/dev/MANIFEST.tsv] [--cache DIR]
"""

import argparse
import json
from pathlib import Path

import numpy as np

from speechforensics import calibration, lite
from speechforensics.backends import LiteBackend
from speechforensics.calibrate import clip_evidence, genuine_items
from speechforensics.evaluate import EvalConfig, prepared_clips

DEV = Path(__file__).resolve().parents[1].parent / "shared/media/dev"
SIZES = (5, 10, 15, 20, 29)  # genuine clips per calibration
NORMAL_SIZES = (10, 29, 50, 100, 200, 400)  # ... drawn from a normal fitted to the 29 scores
DRAWS = 4000  # bootstrap samples per size
SEED = 0


def held_out_scores() -> dict[str, float]:
    """{clip: score} from the shipped parameters' cross-validation (each clip held out)."""
    with np.load(lite.PARAMS, allow_pickle=False) as z:
        meta = json.loads(str(z["meta"]))
    genuine = meta["provenance"]["cross_validation"]["scores"]["genuine"]
    return {name.split("+")[0]: score for name, score in genuine.items()}


def calibrate_scores(list_path: Path, cache: Path) -> dict[str, float]:
    """{clip: score} as `speechforensics calibrate` scores the list's genuine clips."""
    items = genuine_items(list_path)
    backend, scores = LiteBackend(), {}
    for item, clip, outcome in prepared_clips(items, EvalConfig(), cache, 1, backend.needs_crops):
        if clip is None:
            print(f"skipped: {outcome['error']}")
            continue
        scores[item.path.name] = clip_evidence(clip, backend)[0]
    return scores


def stability(scores: np.ndarray, rate: float = calibration.FALSE_ALARM) -> list[dict]:
    rng, rows = np.random.default_rng(SEED), []
    for n in SIZES:
        thresholds, alarms = [], []
        for _ in range(DRAWS):
            drawn = rng.integers(0, len(scores), n)
            left = np.setdiff1d(np.arange(len(scores)), drawn)
            threshold = np.quantile(scores[drawn], rate)
            thresholds.append(threshold)
            alarms.append(np.mean(scores[left] < threshold))
        t, a = np.array(thresholds), np.array(alarms)
        rows.append(
            {"n": n, "median": np.median(t), "low": np.quantile(t, 0.05)}
            | {"high": np.quantile(t, 0.95), "std": t.std(), "alarms": a.mean()}
            | {"alarms_high": np.quantile(a, 0.95), "over_10": np.mean(a > 0.10)}
        )
    return rows


def normal_stability(scores: np.ndarray, rate: float = calibration.FALSE_ALARM) -> list[dict]:
    from statistics import NormalDist

    rng, rows = np.random.default_rng(SEED), []
    normal = NormalDist(scores.mean(), scores.std())
    for n in NORMAL_SIZES:
        thresholds = np.quantile(rng.normal(normal.mean, normal.stdev, (DRAWS, n)), rate, axis=1)
        alarms = np.array([normal.cdf(t) for t in thresholds])
        rows.append(
            {"n": n, "alarms": np.median(alarms), "low": np.quantile(alarms, 0.05)}
            | {"high": np.quantile(alarms, 0.95), "within": np.mean(abs(alarms - rate) <= 0.02)}
        )
    return rows


def table(name: str, scores: dict[str, float]) -> None:
    values = np.array(list(scores.values()))
    rate = calibration.FALSE_ALARM
    print(
        f"\n{name}: {len(values)} genuine clips, 5th percentile of all "
        f"{np.quantile(values, rate):.3f}, scores {values.min():.3f} to {values.max():.3f}\n"
    )
    print(
        "| clips | threshold: median [90% of draws] | std | false alarms on left-out clips: "
        "mean | 95th percentile of draws | draws with over 10 % |"
    )
    print("|---|---|---|---|---|---|")
    for r in stability(values, rate):
        print(
            f"| {r['n']} | {r['median']:.3f} [{r['low']:.3f}, {r['high']:.3f}] | {r['std']:.3f} "
            f"| {r['alarms']:.1%} | {r['alarms_high']:.1%} | {r['over_10']:.0%} |"
        )
    print(
        f"\nnormal fitted (mean {values.mean():.3f}, std {values.std():.3f}): false-alarm rate "
        "of the threshold set on n clips drawn from it\n"
    )
    print("| clips | false alarms: median [90% of draws] | draws within 3-7 % |")
    print("|---|---|---|")
    for r in normal_stability(values, rate):
        print(
            f"| {r['n']} | {r['alarms']:.1%} [{r['low']:.1%}, {r['high']:.1%}] "
            f"| {r['within']:.0%} |"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", type=Path, default=DEV / "MANIFEST.tsv")
    p.add_argument("--cache", type=Path, default=Path("/tmp/speechforensics-stability-cache"))
    args = p.parse_args()
    table("held-out scores (fit-lite folds)", held_out_scores())
    table("calibrate's scores (shipped model)", calibrate_scores(args.list, args.cache))


if __name__ == "__main__":
    main()
