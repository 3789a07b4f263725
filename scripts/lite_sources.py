"""lipsync-lite on sources it has never seen: cross-validation with whole sources held out.

Every genuine clip, and every pair of it with another held-out clip's voice (repeated to fill the
clip), is judged by a model fitted without any clip of its source (fit_lite.folds; sources from the
lists' `source` column, else their kind). Prints, as Markdown: the figures at the threshold (the
5th percentile of the held-out genuine scores) with intervals over resampled sources; each source's
genuine scores (the spread an `uncertain` band can use); what a band threshold +- d around it would
give; and, with --robustness, how each distortion moves the held-out genuine scores and the AUC.

    python scripts/lite_sources.py ../shared/media/dev/MANIFEST.tsv \
        ../shared/media/fit/MANIFEST.tsv [--augment scale:5 VC:3 ...] [--cache DIR] \
        [--threshold T] [--robustness scale:5 fps:4 ...]
"""

import argparse
from pathlib import Path

import numpy as np

from speechforensics import fit_lite, metrics
from speechforensics.backends import LiteBackend
from speechforensics.cache import load_prepared

BANDS = (0.0, 0.02, 0.04, 0.06, 0.08, 0.10)  # half-widths of the uncertain band tried


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("lists", type=Path, nargs="+", help="lists whose genuine clips are fitted on")
    p.add_argument("--augment", nargs="*", default=list(fit_lite.AUGMENTATIONS))
    p.add_argument("--cache", type=Path, help="preprocessing cache folder (kept between runs)")
    p.add_argument("--dims", type=int, default=None)
    p.add_argument("--regularisation", type=float, default=None)
    p.add_argument("--threshold", type=float, help="also the figures at this threshold")
    p.add_argument(
        "--robustness", nargs="*", default=[], help="distortions of held-out clips (needs --cache)"
    )
    args = p.parse_args()
    settings = {k: v for k in ("dims", "regularisation") if (v := getattr(args, k)) is not None}
    sources = [s for path in args.lists for s in fit_lite.list_sources(path)]
    clips = fit_lite.read_genuine(sources, tuple(args.augment), args.cache)
    models = fit_lite.folds(clips, **settings)
    cv = fit_lite.cross_validate(models)
    of = {c.name: c.source for c in clips}
    summary = fit_lite.summarise(cv, of)
    print(f"clips {len(clips)}, sources {summary['sources']}, augment {args.augment or 'none'}, "
          f"settings {settings or 'default'}\n")  # fmt: skip
    figures_table(summary)
    if args.threshold is not None:
        g, s = (np.array(list(cv[k].values())) for k in ("genuine", "swapped"))
        at = fit_lite._figures(g, s, args.threshold)
        print(f"at {args.threshold}: genuine called fake {at['genuine_called_fake']:.3f}, "
              f"swapped caught {at['swapped_caught']:.3f}\n")  # fmt: skip
    genuine, swapped = (fit_lite._by_source(cv[k], of) for k in ("genuine", "swapped"))
    source_table(genuine, swapped, summary["threshold"])
    band_table(genuine, swapped, summary["threshold"])
    if args.robustness and args.cache:
        robustness_table(models, args.robustness, args.cache, cv, summary["threshold"])


def figures_table(summary: dict) -> None:
    ci = summary["intervals"]
    print("| figure | held out by source | 95 % interval (sources resampled) |")
    print("|---|---|---|")
    print(f"| threshold (5th percentile of genuine) | {summary['threshold']:.3f} | |")
    for key, name in (
        ("genuine_called_fake", "genuine called fake at it"),
        ("held_out_auc_swapped_voice", "AUC genuine vs swapped voice"),
        ("swapped_caught", "swapped voices called fake at it"),
    ):
        low, high = ci[key]
        print(f"| {name} | {summary[key]:.3f} | {low:.3f}–{high:.3f} |")
    new = summary["genuine_called_fake_new_source"]
    print(f"| genuine called fake, threshold set without the clip's source | {new:.3f} | |\n")


def source_table(genuine: dict, swapped: dict, threshold: float) -> None:
    print("| source | clips | genuine min / median / max | called fake | swapped caught |")
    print("|---|---|---|---|---|")
    for k, g in genuine.items():
        s = swapped.get(k, np.zeros(0))
        caught = f"{np.mean(s < threshold):.0%} of {len(s)}" if len(s) else ""
        print(
            f"| {k} | {len(g)} | {g.min():.3f} / {np.median(g):.3f} / {g.max():.3f} | "
            f"{int(np.sum(g < threshold))} | {caught} |"
        )
    medians = np.array([np.median(g) for g in genuine.values()])
    spread = np.concatenate([g - np.median(g) for g in genuine.values()])
    print(f"\nspread of source medians (std): {medians.std():.3f}; within sources (std): "
          f"{spread.std():.3f}\n")  # fmt: skip


def band_table(genuine: dict, swapped: dict, threshold: float) -> None:
    g, s = np.concatenate(list(genuine.values())), np.concatenate(list(swapped.values()))
    print("| band | genuine: fake / uncertain | swapped: fake / uncertain |")
    print("|---|---|---|")
    for d in BANDS:
        low, high = threshold - d, threshold + d
        print(
            f"| {threshold:.3f} ± {d:.2f} | {np.mean(g < low):.1%} / "
            f"{np.mean((g >= low) & (g < high)):.1%} | {np.mean(s < low):.1%} / "
            f"{np.mean((s >= low) & (s < high)):.1%} |"
        )
    print()


def robustness_table(models, specs, cache: Path | None, cv: dict, threshold: float) -> None:
    """Held-out genuine clips distorted (and their swapped pairs), judged by their fold model."""
    print("| distortion | genuine median change | genuine called fake | AUC swapped voice |")
    print("|---|---|---|---|")
    for spec in specs:
        changes, genuine, swapped = [], [], []
        for held, model in models:
            backend = LiteBackend(model)
            distorted = {c.name: load_prepared(c.clip.info.path, cache, None, spec, False)[0]
                         for c in held}  # fmt: skip
            for face in held:
                for voice in held:
                    clip = distorted[face.name]
                    if voice is not face:
                        clip = fit_lite.with_voice(clip, distorted[voice.name])
                    score = fit_lite._score(clip, backend)
                    key = f"{face.name}+{voice.name}"
                    if score is None or key not in cv["genuine" if voice is face else "swapped"]:
                        continue
                    if voice is face:
                        genuine.append(score)
                        changes.append(score - cv["genuine"][key])
                    else:
                        swapped.append(score)
        auc = metrics.auc_real_fake(genuine, swapped)
        print(f"| {spec} | {np.median(changes):+.3f} | {np.mean(np.r_[genuine] < threshold):.1%} "
              f"| {auc:.3f} |")  # fmt: skip
    print()


if __name__ == "__main__":
    main()
