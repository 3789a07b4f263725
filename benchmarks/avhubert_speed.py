"""Speed of the AV-HuBERT encoder on a 10 s clip (250 frames), per modality, base and large.

Random weights (speed does not depend on their values). Two baselines are measured in the same
run, taking turns with the model: a 2048x2048 float32 matmul (the model's FLOP rate is reported
as a ratio to it, so machines of different speed compare), and the model as built,
before `prepare_for_inference`, which runs the original's sequence of operations. For reference,
the original fairseq code on the 2-core development machine ran the base model at about 1.0x the
matmul rate (0.80 s video + 0.28 s audio, 254 GFLOP for both passes).

    python benchmarks/avhubert_speed.py [--threads 2] [--frames 250] [--sizes base large]
"""

import argparse
import functools
import math
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from speechforensics.avhubert.model import LARGE, AVHubert, ModelConfig

SIZES = {"base": ModelConfig(), "large": LARGE}
MODES = {"baseline: as built, fp32": None, "float32": torch.float32, "bfloat16": torch.bfloat16}


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved_best_times(calls: dict, repeats: int) -> dict:
    """Best of `repeats` for each call, taking turns: the machine's speed drifts over a run, and
    taking turns exposes every variant to the same drift."""
    for fn in calls.values():
        fn()  # warm-up: first calls pay for allocation and kernel selection
    times = {name: [] for name in calls}
    for _ in range(repeats):
        for name, fn in calls.items():
            times[name].append(timed(fn))
    return {name: min(t) for name, t in times.items()}


def matmul(n: int = 2048):
    a, b = torch.randn(n, n), torch.randn(n, n)
    return functools.partial(torch.matmul, a, b)


def _linear_flops(x_shape, w_shape, *args, out_shape=None, **kwargs) -> int:
    return 2 * math.prod(x_shape[:-1]) * w_shape[0] * w_shape[1]


def flops(fn) -> int:
    """Multiply-adds x 2 of convolutions, matmuls and attention (model.Linear's oneDNN call too)."""
    linear = {torch.ops.mkldnn._linear_pointwise: _linear_flops}
    with FlopCounterMode(display=False, custom_mapping=linear) as counter:
        fn()
    return counter.get_total_flops()


def inference_model(config: ModelConfig, dtype: torch.dtype | None) -> AVHubert:
    """What load_checkpoint returns, with random weights; dtype None: the baseline, the model as
    built (unfused BatchNorms, whole-clip 3D conv), which runs the original's sequence of ops."""
    torch.manual_seed(0)
    model = AVHubert(config).eval()
    return model if dtype is None else model.prepare_for_inference(dtype)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--sizes", nargs="+", default=["base", "large"], choices=list(SIZES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t = args.frames
    video, audio = torch.randn(1, 1, t, 88, 88), torch.randn(1, 104, t)
    passes = {"video": {"video": video}, "audio": {"audio": audio}}

    print(f"threads {args.threads}, {t} frames, best of {args.repeats} calls taken in turns\n")
    print(
        "| model | mode | video s | audio s | GFLOP (both) | GFLOP/s | matmul GFLOP/s "
        "| x matmul | speed-up |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        models = {mode: inference_model(SIZES[size], dtype) for mode, dtype in MODES.items()}
        calls = {"matmul": matmul()}
        for mode, model in models.items():
            for name, kwargs in passes.items():
                calls[mode, name] = functools.partial(model.extract_features, **kwargs)
        secs = interleaved_best_times(calls, args.repeats)
        rate = 2 * 2048**3 / secs.pop("matmul") / 1e9
        gflop = sum(flops(calls[next(iter(MODES)), name]) for name in passes) / 1e9
        baseline = None
        for mode in MODES:
            video_s, audio_s = secs[mode, "video"], secs[mode, "audio"]
            total = video_s + audio_s
            baseline = baseline or total
            print(
                f"| {size} | {mode} | {video_s:.2f} | {audio_s:.2f} | {gflop:.0f} "
                f"| {gflop / total:.0f} | {rate:.0f} | {gflop / total / rate:.2f} "
                f"| {baseline / total:.2f} |"
            )


if __name__ == "__main__":
    main()
