"""Pretraining on the 29 genuine dev clips, iterations 1 and 2, and what the result can score.

Iteration 1 clusters MFCCs, iteration 2 clusters layer `target_layer` of iteration 1's model;
both train the tiny model from scratch for --steps updates each. Then each model (and, as the
baseline, the same architecture untrained) scores every genuine clip and its audio-swapped twin
(its video with the next genuine clip's voice, as `speechforensics make-fakes` pairs them, here
taken from the cached features rather than re-encoded) with the paper's score: the sync matrix
of the visual-only and audio-only features, the best offset's mean over all frames.

    flock /tmp/sf-cpu.lock python benchmarks/pretrain_dev.py --steps 150 --out /tmp/sf-pt-dev
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speechforensics import pretrain, pretrain_config, pretrain_data, scoring
from speechforensics.avhubert.checkpoint import load_checkpoint
from speechforensics.avhubert.model import AVHubert
from speechforensics.features import video_features
from speechforensics.metrics import auc_real_fake

DEV = ROOT.parent / "shared/media/dev"


@torch.no_grad()
def streams(model, data, i: int, j: int) -> tuple[np.ndarray, np.ndarray]:
    """Visual features of clip i and audio features of clip j (j == i: the genuine clip)."""
    n = min(data.frames(i), data.frames(j))
    video = video_features(np.asarray(data.crops(i)[:n]))[None, None]
    audio = torch.from_numpy(data.audio(j)[:n].astype(np.float32)).T[None]
    return (
        model.extract_features(video=video)[0].numpy(),
        model.extract_features(audio=audio)[0].numpy(),
    )


def sync_scores(model, data) -> dict:
    n = len(data)
    real = [scoring.video_score(scoring.sync_matrix(*streams(model, data, i, i))) for i in range(n)]
    swap = [
        scoring.video_score(scoring.sync_matrix(*streams(model, data, i, (i + 1) % n)))
        for i in range(n)
    ]
    return {
        "real_mean": float(np.mean(real)),
        "swapped_mean": float(np.mean(swap)),
        "auc_real_vs_swapped": auc_real_fake(real, swap),
        "pairs": n,
    }


def curve(lines: list[dict]) -> list[dict]:
    keys = ("step", "loss", "accuracy_masked", "heldout_accuracy_masked", "heldout_chance")
    return [{k: x[k] for k in keys} for x in lines if "heldout_accuracy_masked" in x]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("/tmp/sf-pt-dev"))
    p.add_argument("--steps", type=int, default=150, help="updates per iteration")
    p.add_argument("--clusters2", type=int, default=32, help="clusters of iteration 2")
    args = p.parse_args()
    common = (f"max_steps={args.steps}", "batch_windows=2", "eval_every=25", "checkpoint_every=50")
    cache, results = args.out / "data", {}
    manifest = DEV / "MANIFEST.tsv"
    iterations = (
        ("iter1", None, ()),
        ("iter2", args.out / "iter1" / pretrain.CHECKPOINT_NAME, (f"clusters={args.clusters2}",)),
    )
    for name, source, extra in iterations:
        t0 = time.perf_counter()
        out = args.out / name
        resume = (out / pretrain.CHECKPOINT_NAME).exists()
        pretrain.run(
            manifest, out, "tiny", cache=cache, overrides=common + extra, resume=resume,
            targets_from=source, report=lambda m: print(m, file=sys.stderr),
        )  # fmt: skip
        lines = [json.loads(x) for x in (out / pretrain.METRICS_NAME).read_text().splitlines()]
        results[name] = {"seconds": time.perf_counter() - t0, "curve": curve(lines)}
        print(name, json.dumps(results[name]), flush=True)
    paths = pretrain.genuine_videos(manifest, None)
    data = pretrain_data.open_cache(paths, cache)
    torch.manual_seed(pretrain_config.TINY.seed)
    untrained = AVHubert(pretrain_config.TINY_MODEL).prepare_for_inference()
    results["untrained"] = {"sync": sync_scores(untrained, data)}
    for name in ("iter1", "iter2"):
        model = load_checkpoint(args.out / name / pretrain.CHECKPOINT_NAME)
        results[name]["sync"] = sync_scores(model, data)
    for name in ("untrained", "iter1", "iter2"):
        print(name, "sync", json.dumps(results[name]["sync"]))
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
