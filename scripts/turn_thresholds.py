"""The turn and segment thresholds of lipsync-lite (scoring.TURN_THRESHOLDS, SEGMENT_THRESHOLDS),
from genuine clips only, each judged by the fold model that never saw it (fit_lite.folds).

- turns: every genuine clip's speech cut into consecutive pieces of TURN_SECONDS of speech (as a
  speaker's turn in an interview), each scored as pipeline.judge scores a turn; the threshold is
  the FALSE_ALARMS quantile of those scores. The same pieces with another clip's voice (same
  fold) show what the threshold catches.
- segments: the timeline windows of the genuine clips; for each candidate threshold, the share
  of genuine speech time that runs of low windows lasting scoring.MIN_SEGMENT_SECONDS cover.

    python scripts/turn_thresholds.py [--list ../shared/media/dev/MANIFEST.tsv]
"""

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from speechforensics import fit_lite, scoring
from speechforensics.backends import LiteBackend
from speechforensics.lists import read_list
from speechforensics.media import pad_or_trim
from speechforensics.pipeline import face_evidence, judge

DEV = Path(__file__).resolve().parents[1].parent / "shared/media/dev"
TURN_SECONDS = (1.0, 2.0, 4.0, 8.0)  # s of speech per piece
FALSE_ALARMS = (0.005, 0.01, 0.02)


def pieces(face, seconds: float) -> list[np.ndarray]:
    """Masks of consecutive runs of `seconds` of usable speech."""
    frames = np.flatnonzero(face.usable)
    size = round(seconds * scoring.VIDEO_FPS)
    out = []
    for i in range(0, len(frames) - size + 1, size):
        mask = np.zeros(len(face.usable), bool)
        mask[frames[i : i + size]] = True
        out.append(mask)
    return out


def turn_scores(clip, backend, seconds: float) -> list[float]:
    speech = scoring.speech_frames(clip.audio)
    face = face_evidence(backend, clip, clip.tracks[0], speech, [(0, clip.info.frames)])
    shift = backend.search.score_shift
    scores = [scoring.gated_score(face.matrix, m, shift) for m in pieces(face, seconds)]
    return [s for s in scores if s is not None]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--list", type=Path, default=DEV / "MANIFEST.tsv")
    args = p.parse_args()
    paths = [i.path for i in read_list(args.list) if i.label == 1]
    clips = fit_lite.read_genuine(paths)
    genuine = {s: [] for s in TURN_SECONDS}
    swapped = {s: [] for s in TURN_SECONDS}
    windows = []
    for held, model in fit_lite.folds(clips):
        backend = LiteBackend(model)
        for i, c in enumerate(held):
            other = held[(i + 1) % len(held)]
            dubbed = dataclasses.replace(
                c.clip, audio=pad_or_trim(other.clip.audio, len(c.clip.audio))
            )
            for s in TURN_SECONDS:
                genuine[s] += turn_scores(c.clip, backend, s)
                swapped[s] += turn_scores(dubbed, backend, s)
            windows += [(w["score"], w) for w in judge(c.clip, backend)["timeline"]]
    print("| speech per turn | genuine turns | mean, std | swapped turns | threshold @ false "
          "alarms (swapped caught) | mean - 2.33 std (swapped caught) |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for s in TURN_SECONDS:
        g, w = np.array(genuine[s]), np.array(swapped[s])
        cells = [
            f"{q:.1%}: {np.quantile(g, q):.3f} ({np.mean(w < np.quantile(g, q)):.0%})"
            for q in FALSE_ALARMS
        ]
        normal = g.mean() - 2.33 * g.std()
        print(
            f"| {s:g} s | {len(g)} | {g.mean():.3f}, {g.std():.3f} | {len(w)} | "
            f"{'; '.join(cells)} | {normal:.3f} ({np.mean(w < normal):.0%}) |"
        )
    scored = [sc for sc, _ in windows if sc is not None]
    print(f"\ngenuine timeline windows: {len(scored)}; quantiles 1/2/5 %: "
          f"{np.quantile(scored, [0.01, 0.02, 0.05]).round(3).tolist()}")  # fmt: skip


if __name__ == "__main__":
    main()
