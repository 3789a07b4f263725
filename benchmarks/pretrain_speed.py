"""Pretraining throughput (frames/s), side by side with inference of the same model.

For each size: a few real training steps (data loading, masking, forward, backward, AdamW) on
the cached dev clips, timed after one warm-up step; then the baseline, the same model prepared
for inference (`extract_features` on audio and video together) on as many frames. The ratio
says what one training frame costs in inference frames.

    flock /tmp/sf-cpu.lock python benchmarks/pretrain_speed.py --configs tiny base
    python benchmarks/pretrain_speed.py --configs base --device cuda --batch 16 --window 250

The cache (default /tmp/sf-pretrain-bench) is built once from the first --clips genuine dev
clips; `--cache DIR` reuses any pretraining cache (every clip in it).
"""

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from speechforensics import pretrain, pretrain_config, pretrain_data
from speechforensics.avhubert.model import AVHubert
from speechforensics.features import video_features

DEV = ROOT.parent / "shared/media/dev"


def open_data(cache: Path, clips: int) -> pretrain_data.DataCache:
    index = cache / "index.json"
    if index.exists() and clips == 0:
        entries = list(json.loads(index.read_text())["clips"].values())
        return pretrain_data.DataCache(cache, entries)
    rows = [r.split("\t") for r in (DEV / "MANIFEST.tsv").read_text().splitlines()[1:]]
    paths = [DEV / r[0] for r in rows if r[4] == "real"][: clips or None]
    data, errors = pretrain_data.build_cache(paths, cache, progress=True)
    for e in errors:
        print("skipped:", e, file=sys.stderr)
    return data


def train_speed(name: str, data, args, device: str) -> dict:
    model_config, config = pretrain_config.PRESETS[name]
    config = dataclasses.replace(
        config,
        batch_windows=args.batch,
        window_frames=args.window,
        min_frames=min(args.window, config.min_frames),
        max_steps=args.steps,
        warmup_steps=1,
        log_every=1,
        eval_every=10**9,
        checkpoint_every=10**9,
        dtype=args.dtype,
        clusters=min(config.clusters, 50),
        kmeans_frames=5000,
    )
    with tempfile.TemporaryDirectory() as tmp:
        labels, _ = pretrain_data.prepare_targets(data, config, Path(tmp) / "t.npz", None)
        lines = pretrain.train(model_config, config, data, labels, Path(tmp), device=device)
    timed = lines[1:]  # after the warm-up step
    seconds = timed[-1]["elapsed_s"] - lines[0]["elapsed_s"]
    frames = sum(x["frames"] for x in timed)
    return {
        "config": name,
        "device": device,
        "steps_timed": len(timed),
        "frames_per_step": frames / len(timed),
        "train_frames_per_s": frames / seconds,
        "loss_first_last": [lines[0]["loss"], lines[-1]["loss"]],
        "infer_frames_per_s": infer_speed(model_config, data, args, device),
    }


@torch.no_grad()
def infer_speed(model_config, data, args, device: str) -> float:
    torch.manual_seed(0)
    dtype = torch.float32 if device == "cpu" else torch.bfloat16
    model = AVHubert(model_config).prepare_for_inference(dtype).to(device)
    n = min(args.window, data.frames(0))
    video = video_features(np.asarray(data.crops(0)[:n]))[None, None].to(device)
    audio = torch.from_numpy(data.audio(0)[:n].astype(np.float32)).T[None].to(device)
    reps = max(1, args.batch)
    model.extract_features(video=video, audio=audio)  # warm-up
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        model.extract_features(video=video, audio=audio)
    _sync(device)
    return reps * n / (time.perf_counter() - t0)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--configs", nargs="+", default=["tiny", "base"], choices=list(pretrain_config.PRESETS)
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--cache", type=Path, default=Path("/tmp/sf-pretrain-bench"))
    p.add_argument("--clips", type=int, default=4, help="genuine dev clips to cache (0: cached)")
    p.add_argument("--batch", type=int, default=2, help="windows per step")
    p.add_argument("--window", type=int, default=50, help="frames per window")
    p.add_argument("--steps", type=int, default=4, help="steps, the first one not timed")
    p.add_argument("--dtype", default="auto", help="TrainConfig.dtype")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    data = open_data(args.cache, args.clips)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}")
    if args.device.startswith("cuda"):
        print(torch.cuda.get_device_name())
    results = []
    for name in args.configs:
        r = train_speed(name, data, args, args.device)
        results.append(r)
        print(
            f"{name:5s} train {r['train_frames_per_s']:8.1f} frames/s "
            f"({r['frames_per_step']:.0f} frames/step) | inference {r['infer_frames_per_s']:8.1f} "
            f"frames/s | training costs {r['infer_frames_per_s'] / r['train_frames_per_s']:.1f}x "
            f"inference per frame",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
