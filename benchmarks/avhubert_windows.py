"""AV-HuBERT over long streams: one pass against the windows of AVHubertBackend, side by side.

For each length T, the BASE fixture checkpoint embeds T frames of real mouth crops and audio (dev
clips from ../shared/media/dev, prepared and concatenated: different speakers one after another)
twice, each time in a fresh subprocess: once in one pass over the whole stream, once as the
backend does past 500 frames (front ends block by block, transformer in overlapping windows;
backends.avhubert_windows). Reported per run: wall time of `streams` (video and audio passes),
peak resident memory during it (VmHWM, reset once the model and inputs are loaded; torch's
allocations are invisible to tracemalloc) and that peak less the resident memory before; then
how far the windowed features are from the one-pass ones (max and mean absolute difference,
per-frame cosine) and the SpeechForensics clip score (scoring.video_score of the sync matrix)
of both. `--contexts` adds windowed runs with other context widths. The fixture's weights are
random (sign-quantised), not trained: the deviations are those of this network, not of a
released checkpoint (pass one with --checkpoint).

    python benchmarks/avhubert_windows.py [--frames 500 1000 2000] [--threads 2] [--contexts 50]
"""

import argparse
import json
import lzma
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from speechforensics import scoring
from speechforensics.backends import (
    AVHUBERT_CONTEXT_FRAMES,
    AVHUBERT_WINDOW_FRAMES,
    avhubert_windows,
)

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
DEV = SHARED / "media/dev"
FIXTURE = SHARED / "reference/avhubert/fixtures/base_pretrain.pt.xz"
# Real recordings, one speaker after another; small frames first (cheap to prepare).
CLIPS = [
    *(f"lrs2_deepavsr_{n}.mp4" for n in ("00001", "00004", "00008", "00016", "00022")),
    *(f"pcavs_Audio_{n}.mp4" for n in ("00015", "00104", "681100216")),
    *(f"pcavs_Pose_{n}.mp4" for n in ("00067", "517600055", "741400163")),
    "pcavs_Input_00010.mp4",
    *(f"sadtalker_{n}.mp4" for n in ("RD_Radio2", "RD_Radio34", "WDA_BobMenendez")),
]


def long_input(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(crops [frames, 96, 96] uint8, audio [frames * 640] float32) of dev clips one after
    another, each prepared whole (pipeline.prepare, main face)."""
    from speechforensics.pipeline import prepare

    crops, audio = [], []
    for name in CLIPS:
        clip = prepare(DEV / name, max_seconds=None)
        crops.append(clip.tracks[0].crops)
        audio.append(clip.audio)
        if sum(map(len, crops)) >= frames:
            per_frame = len(audio[0]) // len(crops[0])
            return np.concatenate(crops)[:frames], np.concatenate(audio)[: frames * per_frame]
    raise SystemExit(f"the dev clips have only {sum(map(len, crops))} frames, not {frames}")


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def worker(args) -> None:
    """One run in this (fresh) process: load, reset the peak, time `streams`, save."""
    import torch

    from speechforensics.backends import AVHubertBackend

    torch.set_num_threads(args.threads)
    with np.load(args.inputs) as npz:
        clip, track = SimpleNamespace(audio=npz["audio"]), SimpleNamespace(crops=npz["crops"])
    backend = AVHubertBackend(
        args.checkpoint, window_frames=args.window, context_frames=args.context
    )
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS (Linux)
    before = _status_kb("VmRSS")
    start = time.perf_counter()
    visual, audio = backend.streams(clip, track)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM")
    np.savez(args.out, visual=visual, audio=audio)
    Path(args.out).with_suffix(".json").write_text(
        json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "before_mb": before / 1024})
    )


def run_case(checkpoint, inputs, window, context, threads, out) -> dict:
    cmd = [sys.executable, __file__, "--worker", "--checkpoint", str(checkpoint)]
    cmd += ["--inputs", str(inputs), "--window", str(window), "--context", str(context)]
    cmd += ["--threads", str(threads), "--out", str(out)]
    subprocess.run(cmd, check=True)
    with np.load(out) as npz:
        result = dict(npz)
    return result | json.loads(out.with_suffix(".json").read_text())


def deviation(one: np.ndarray, windowed: np.ndarray) -> tuple[float, float, float, float]:
    """(max |diff|, mean |diff|, min and mean per-frame cosine) of windowed against one pass."""
    diff = np.abs(windowed - one)
    cos = (one * windowed).sum(1) / (np.linalg.norm(one, axis=1) * np.linalg.norm(windowed, axis=1))
    return float(diff.max()), float(diff.mean()), float(cos.min()), float(cos.mean())


def score(run: dict) -> float:
    return scoring.video_score(scoring.sync_matrix(run["visual"], run["audio"]))


def report(frames: int, context: int, one: dict, win: dict) -> None:
    for stream in ("visual", "audio"):
        mx, mean, cmin, cmean = deviation(one[stream], win[stream])
        print(
            f"| {frames} | {context} | {stream} | {mx:.4f} | {mean:.5f} | {cmin:.5f} "
            f"| {cmean:.6f} |"
        )
    print(
        f"| {frames} | {context} | score | one pass {score(one):.4f} | windowed {score(win):.4f} "
        f"| difference {score(win) - score(one):+.5f} | |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[500, 1000, 2000])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--contexts", type=int, nargs="*", default=[], help="extra context widths")
    parser.add_argument("--checkpoint", type=Path, help="default: the BASE fixture, decompressed")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--inputs", type=Path, help=argparse.SUPPRESS)
    parser.add_argument(
        "--window", type=int, default=AVHUBERT_WINDOW_FRAMES, help=argparse.SUPPRESS
    )
    parser.add_argument(
        "--context", type=int, default=AVHUBERT_CONTEXT_FRAMES, help=argparse.SUPPRESS
    )
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        checkpoint = args.checkpoint
        if checkpoint is None:
            checkpoint = tmp / "base_pretrain.pt"
            with lzma.open(FIXTURE) as fin, open(checkpoint, "wb") as fout:
                shutil.copyfileobj(fin, fout, length=1 << 22)
        start = time.perf_counter()
        crops, audio = long_input(max(args.frames))
        print(
            f"inputs: {len(crops)} frames of {len(CLIPS)} dev clips at most, prepared in "
            f"{time.perf_counter() - start:.0f} s; threads {args.threads}; window "
            f"{AVHUBERT_WINDOW_FRAMES}, context {AVHUBERT_CONTEXT_FRAMES}\n"
        )
        runs = {}
        for frames in args.frames:
            inputs = tmp / f"inputs_{frames}.npz"
            per_frame = len(audio) // len(crops)
            np.savez(inputs, crops=crops[:frames], audio=audio[: frames * per_frame])
            cases = {("one pass", 0): (sys.maxsize, 0)}
            for context in [AVHUBERT_CONTEXT_FRAMES, *args.contexts]:
                cases["windowed", context] = (AVHUBERT_WINDOW_FRAMES, context)
            for key, (window, context) in cases.items():
                out = tmp / f"{frames}_{key[0].replace(' ', '_')}_{key[1]}.npz"
                runs[frames, *key] = run_case(
                    checkpoint, inputs, window, context, args.threads, out
                )

        print(
            "| T | mode | context | windows | s (video + audio) | peak RSS MB | peak - before MB |"
        )
        print("|---|---|---|---|---|---|---|")
        for (frames, mode, context), run in runs.items():
            windows = len(avhubert_windows(frames, context=context)) if context else 1
            print(
                f"| {frames} | {mode} | {context or '-'} | {windows} | {run['seconds']:.1f} "
                f"| {run['peak_mb']:.0f} | {run['peak_mb'] - run['before_mb']:.0f} |"
            )
        print(
            "\n| T | context | stream | max abs diff | mean abs diff | min cosine | mean cosine |"
        )
        print("|---|---|---|---|---|---|---|")
        for (frames, mode, context), run in runs.items():
            if mode == "windowed":
                report(frames, context, runs[frames, "one pass", 0], run)


if __name__ == "__main__":
    main()
