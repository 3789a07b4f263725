"""Why model.Linear calls oneDNN on CPU: the encoder's matmul shapes, MKL (F.linear) vs oneDNN.

At a few hundred rows (10 s of frames) oneDNN's float32 GEMM is faster than the MKL sgemm that
F.linear uses; in bfloat16 both use the AVX-512 BF16 units. Prints GFLOP/s for each shape.

    python benchmarks/linear_kernels.py [--threads 2]
"""

import argparse
import time

import torch
import torch.nn.functional as F

SHAPES = [(768, 768), (768, 3072), (3072, 768), (1024, 1024), (1024, 4096), (4096, 1024)]


def best_time(fn, repeats: int = 15) -> float:
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def onednn(x, w, b):
    return torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print("| rows | in -> out | fp32 MKL | fp32 oneDNN | ratio | bf16 MKL | bf16 oneDNN |")
    print("|---|---|---|---|---|---|---|")
    for rows in (250, 1250):
        for k, n in SHAPES:
            x, w, b = torch.randn(rows, k), torch.randn(n, k), torch.randn(n)
            gflop = 2 * rows * k * n / 1e9
            rates = [
                gflop / best_time(lambda f=f, t=t: f(*t))
                for t in ((x, w, b), tuple(a.bfloat16() for a in (x, w, b)))
                for f in (F.linear, onednn)
            ]
            print(
                f"| {rows} | {k} -> {n} | {rates[0]:.0f} | {rates[1]:.0f} "
                f"| {rates[1] / rates[0]:.2f} | {rates[2]:.0f} | {rates[3]:.0f} |"
            )


if __name__ == "__main__":
    main()
