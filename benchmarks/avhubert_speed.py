"""Speed of the AV-HuBERT encoder on a 10 s clip (250 frames), per modality, base and large.

Random weights (speed does not depend on their values). The baseline, measured in the same run,
is a large float32 matmul: the model's FLOP rate is reported as a ratio to it, so numbers from
machines of different speed compare. For reference, the original fairseq implementation on the
2-core development machine ran the base model at about 1.0x that matmul rate (0.80 s video +
0.28 s audio, 254 GFLOP for both passes).

    python benchmarks/avhubert_speed.py [--threads 2] [--frames 250] [--sizes base large]
"""

import argparse
import functools
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from speechforensics.avhubert import LARGE, AVHubert, ModelConfig

SIZES = {"base": ModelConfig(), "large": LARGE}


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def matmul_rate(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / best_time(lambda: a @ b, repeats)


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def inference_model(config: ModelConfig, dtype: torch.dtype) -> AVHubert:
    """What load_checkpoint returns, with random weights."""
    torch.manual_seed(0)
    model = AVHubert(config).eval()
    model.prepare_for_inference(dtype)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--sizes", nargs="+", default=["base", "large"], choices=list(SIZES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    t = args.frames
    video, audio = torch.randn(1, 1, t, 88, 88), torch.randn(1, 104, t)
    passes = {"video": {"video": video}, "audio": {"audio": audio}}

    rate = matmul_rate()
    print(
        f"threads {args.threads}, {t} frames; float32 2048x2048 matmul: {rate / 1e9:.0f} GFLOP/s\n"
    )
    print(
        "| model | dtype | video s | audio s | GFLOP (both) | GFLOP/s | x matmul | speed-up vs fp32 |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for size in args.sizes:
        fp32_total = None
        for dtype in (torch.float32, torch.bfloat16):
            model = inference_model(SIZES[size], dtype)
            calls = {k: functools.partial(model.extract_features, **kw) for k, kw in passes.items()}
            secs = {k: best_time(call, args.repeats) for k, call in calls.items()}
            gflop = sum(flops(call) for call in calls.values()) / 1e9
            total = sum(secs.values())
            fp32_total = fp32_total or total
            print(
                f"| {size} | {str(dtype)[6:]} | {secs['video']:.2f} | {secs['audio']:.2f} | {gflop:.0f} "
                f"| {gflop / total:.0f} | {gflop / total / (rate / 1e9):.2f} | {fp32_total / total:.2f} |"
            )


if __name__ == "__main__":
    main()
