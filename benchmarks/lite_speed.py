"""lipsync-lite end to end against real time, beside decoding alone, on the same clips and run.

For each clip: the best of --repeats timings (taken in turns) of
- decode: every 25 fps frame and the audio, nothing else (the floor: any detector decodes);
- detect: `detect(path, LiteBackend())`, the whole pipeline from the file (faces, landmarks, the
  model, scoring), as `speechforensics detect` runs it, dlib's models already loaded;
and the clip's duration over each: how many times faster than real time.

    python benchmarks/lite_speed.py [CLIP ...] [--threads 2] [--repeats 3]
"""

import argparse
import time
from pathlib import Path

import torch

from speechforensics import face, media
from speechforensics.backends import LiteBackend
from speechforensics.pipeline import detect

DEV = Path(__file__).resolve().parents[1].parent / "shared/media/dev"
CLIPS = (  # small to large frames
    "lrs2_deepavsr_00016.mp4",  # 160x160, 11.4 s
    "grid_lbax4n.mpg",  # 360x288, 3 s
    "sadtalker_RD_Radio2.mp4",  # 512x512, 8 s
    "hyperlips_video2_video2.mp4",  # 1280x720, 9.6 s
    "latentsync_demo2_video.mp4",  # 1080x1920, 20 s
)


def decode(path: Path) -> None:
    for _ in media.read_frames(path):
        pass
    media.read_audio(path)


def timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="*", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    face._models()  # loaded once per process, as in a batch run
    backend = LiteBackend()
    clips = args.clips or [DEV / name for name in CLIPS]
    print("| clip | size | seconds | decode s (x real time) | detect s (x real time) |")
    print("|---|---|---|---|---|")
    totals = [0.0, 0.0, 0.0]
    for path in clips:
        info = media.probe(path)
        timings = {"decode": [], "detect": []}
        for _ in range(args.repeats):  # in turns, so drifts of a noisy machine hit both
            timings["decode"].append(timed(decode, path))
            timings["detect"].append(timed(detect, path, backend))
        dec, det = min(timings["decode"]), min(timings["detect"])
        totals = [totals[0] + info.duration, totals[1] + dec, totals[2] + det]
        print(
            f"| {path.name} | {info.width}x{info.height} | {info.duration:.1f} "
            f"| {dec:.2f} ({info.duration / dec:.1f}x) | {det:.2f} ({info.duration / det:.1f}x) |"
        )
    seconds, dec, det = totals
    print(
        f"| all | | {seconds:.1f} | {dec:.2f} ({seconds / dec:.1f}x) "
        f"| {det:.2f} ({seconds / det:.1f}x) |"
    )
    print(f"\ndetect / decode: {det / dec:.2f} (threads: {args.threads})")


if __name__ == "__main__":
    main()
