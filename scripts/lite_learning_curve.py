"""How lipsync-lite's held-out figures grow with the genuine footage it is fitted on.

The source-held-out cross-validation of `fit-lite` (the same folds, copies and settings), with
each fold's model fitted on a random share of the other folds' sources instead of all of them,
several draws per share. If the figures still rise at the full share, more genuine sources to fit
on (`../shared/media/fit/` may grow) are worth more than another setting of the model.

    python scripts/lite_learning_curve.py [LIST ...] [--shares 0.4 0.6 0.8 1] [--draws 6] \
        [--cache DIR]

(LIST: default the dev and fit/ manifests, as the shipped fit.)
"""

import argparse
from pathlib import Path

import numpy as np

from speechforensics import fit_lite

MEDIA = Path(__file__).resolve().parents[1].parent / "shared/media"
LISTS = (MEDIA / "dev/MANIFEST.tsv", MEDIA / "fit/MANIFEST.tsv")
SHARES = (0.4, 0.6, 0.8, 1.0)  # of each fold's fitting sources
DRAWS = 6  # random subsets per share (one at the full share: there is only one)


def thinned_folds(clips, share: float, rng: np.random.Generator) -> list:
    """fit_lite.folds, each fold's model fitted on `share` of its fitting sources (at least one)."""
    return fit_lite.folds(
        clips, fitting=lambda others: rng.choice(others, max(1, round(share * len(others))), False)
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lists", type=Path, nargs="*", default=LISTS)
    p.add_argument("--shares", type=float, nargs="+", default=SHARES)
    p.add_argument("--draws", type=int, default=DRAWS)
    p.add_argument("--cache", type=Path, help="prepared clips (as fit-lite --cache)")
    args = p.parse_args()
    sources = [s for path in args.lists for s in fit_lite.list_sources(path)]
    clips = fit_lite.read_genuine(sources, fit_lite.AUGMENTATIONS, args.cache)
    names = {c.name: c.source for c in clips}
    fitting = np.mean([len({c.source for c in clips} - s) for s in fit_lite.source_folds(clips)])
    print("| share of fitting sources | sources per fold | draws | AUC genuine vs swapped voice, "
          "mean (range) | swapped called fake | genuine of a new source called fake |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for share in args.shares:
        draws = 1 if share >= 1.0 else args.draws
        runs = [
            fit_lite.summarise(
                fit_lite.cross_validate(thinned_folds(clips, share, np.random.default_rng(seed))),
                names,
            )
            for seed in range(draws)
        ]
        auc = np.array([r["held_out_auc_swapped_voice"] for r in runs])
        caught = np.mean([r["swapped_caught"] for r in runs])
        fa = np.mean([r["genuine_called_fake_new_source"] for r in runs])
        print(
            f"| {share:g} | {share * fitting:.1f} | {draws} | {auc.mean():.3f} "
            f"({auc.min():.3f}–{auc.max():.3f}) | {caught:.1%} | {fa:.1%} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
