"""The turn and segment thresholds of lipsync-lite (scoring.TURN_THRESHOLDS, SEGMENT_THRESHOLDS),
from genuine clips only, each judged by a fold model fitted without any clip of its source, as the
shipped parameters are cross-validated (fit_lite: the same lists, distorted copies and folds).

- turns: every genuine clip's speech cut into consecutive pieces of TURN_SECONDS of speech (as a
  speaker's turn in an interview), each scored as pipeline.judge scores a turn (on its own span
  with speakers.TURN_CONTEXT_FRAMES either side); the threshold is the mean less NORMAL_Z
  standard deviations of those scores (the TURN_FALSE_ALARMS quantile of a normal fitted to
  them; the empirical quantiles are printed beside it). The same pieces with another clip's
  voice (same fold) show what the threshold catches, and how well the turn score tells the two
  apart at each length (AUC): the evidence a turn of that length carries. A second table holds
  the shipped thresholds (scoring.TURN_THRESHOLDS) against the same pieces: the share of genuine
  pieces under them, and of genuine clips with at least one piece under them (the clip's speech
  judged as consecutive turns of that length, as in an interview of short exchanges).
- segments: the timeline windows of the genuine clips; for each candidate threshold, the share
  of genuine speech time that runs of low windows lasting scoring.MIN_SEGMENT_SECONDS cover.

    python scripts/turn_thresholds.py [LIST ...] [--cache DIR]

(LIST: default the dev and fit/ manifests, as the shipped fit.)
"""

import argparse
from pathlib import Path

import numpy as np

from speechforensics import calibrate, fit_lite, metrics, scoring
from speechforensics.backends import LiteBackend
from speechforensics.pipeline import judge

MEDIA = Path(__file__).resolve().parents[1].parent / "shared/media"
LISTS = (MEDIA / "dev/MANIFEST.tsv", MEDIA / "fit/MANIFEST.tsv")
TURN_SECONDS = (1.0, 1.5, 2.0, 4.0, 8.0)  # s of speech per piece
FALSE_ALARMS = (0.01, 0.02, 0.05)
TURN_FALSE_ALARMS = 0.02  # per judged turn: a video of two or three turns stays near 5 %
NORMAL_Z = 2.054  # standard normal quantile of TURN_FALSE_ALARMS


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("lists", type=Path, nargs="*", default=LISTS)
    p.add_argument("--cache", type=Path, help="prepared clips (as fit-lite --cache)")
    args = p.parse_args()
    sources = [s for path in args.lists for s in fit_lite.list_sources(path)]
    clips = fit_lite.read_genuine(sources, fit_lite.AUGMENTATIONS, args.cache)
    per_clip = {s: [] for s in TURN_SECONDS}  # each genuine clip's piece scores (if any)
    swapped = {s: [] for s in TURN_SECONDS}
    windows = []
    for held, model in fit_lite.folds(clips):
        backend = LiteBackend(model)
        for i, c in enumerate(held):
            other = held[(i + 1) % len(held)]
            dubbed = fit_lite.with_voice(c.clip, other.clip)
            own = calibrate.piece_scores(c.clip, backend, c.clip.tracks[0], TURN_SECONDS)
            other_voice = calibrate.piece_scores(dubbed, backend, dubbed.tracks[0], TURN_SECONDS)
            for s in TURN_SECONDS:
                per_clip[s] += [own[s]] if own[s] else []
                swapped[s] += other_voice[s]
            windows += [(w["score"], w) for w in judge(c.clip, backend)["timeline"]]
    genuine = {s: [x for scores in per_clip[s] for x in scores] for s in TURN_SECONDS}
    print("| speech per turn | genuine turns | mean, std | swapped turns | AUC | threshold @ false "
          "alarms (swapped caught) | mean - 2.05 std (swapped caught) |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for s in TURN_SECONDS:
        g, w = np.array(genuine[s]), np.array(swapped[s])
        cells = [
            f"{q:.1%}: {np.quantile(g, q):.3f} ({np.mean(w < np.quantile(g, q)):.0%})"
            for q in FALSE_ALARMS
        ]
        normal = g.mean() - NORMAL_Z * g.std()
        print(
            f"| {s:g} s | {len(g)} | {g.mean():.3f}, {g.std():.3f} | {len(w)} | "
            f"{metrics.auc_real_fake(g, w):.3f} | "
            f"{'; '.join(cells)} | {normal:.3f} ({np.mean(w < normal):.0%}) |"
        )
    print("\n| speech per turn | shipped threshold | genuine pieces under it | genuine clips "
          "with a piece under it | swapped pieces caught |")  # fmt: skip
    print("|---|---|---|---|---|")
    for s in TURN_SECONDS:
        shipped = scoring.turn_threshold("lipsync-lite", s)
        if shipped is None:
            continue
        g, w = np.array(genuine[s]), np.array(swapped[s])
        clips_under = [min(scores) < shipped for scores in per_clip[s]]
        print(
            f"| {s:g} s | {shipped:.3f} | {np.mean(g < shipped):.1%} of {len(g)} | "
            f"{np.mean(clips_under):.0%} of {len(clips_under)} | {np.mean(w < shipped):.0%} |"
        )
    scored = [sc for sc, _ in windows if sc is not None]
    print(f"\ngenuine timeline windows: {len(scored)}; quantiles 1/2/5 %: "
          f"{np.quantile(scored, [0.01, 0.02, 0.05]).round(3).tolist()}")  # fmt: skip


if __name__ == "__main__":
    main()
