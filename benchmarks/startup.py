"""Start-up and whole-process speed of the command, beside the in-process work, in one run.

Timed as a user meets them, best of --repeats taken in turns:
- python: `python -c pass`, the interpreter alone (the floor of any command);
- help: `speechforensics --help`;
- detect, whole process: `speechforensics detect CLIP --quiet` with the default backend
  (lipsync-lite), from process start to exit;
- detect, in process: `pipeline.detect(CLIP, backend)` in a warm process (models loaded).
CLIP is the first --seconds (default 10) of a 1080x1920 dev clip, re-encoded once into a temporary
folder. Real-time factor = clip seconds / wall seconds.

    python benchmarks/startup.py [--clip PATH] [--seconds 10] [--repeats 5]
"""

import argparse
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from speechforensics import media
from speechforensics.backends import LiteBackend
from speechforensics.pipeline import detect

DEV = Path(__file__).resolve().parents[1].parent / "shared/media/dev"
CLIP = DEV / "latentsync_demo2_video.mp4"  # 1080x1920, 20 s


def wall(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def cut(source: Path, seconds: float, folder: Path) -> Path:
    """The first `seconds` of `source`, re-encoded (H.264 + AAC) into `folder`."""
    frames = itertools.islice(media.read_frames(source), round(seconds * media.VIDEO_FPS))
    audio = media.read_audio(source, seconds)
    return media.write_clip(folder / f"{source.stem}_{seconds:g}s.mp4", frames, audio)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clip", type=Path, default=CLIP)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        clip = cut(args.clip, args.seconds, Path(tmp))
        info = media.probe(clip)
        backend = LiteBackend()
        detect(clip, backend)  # warm: dlib's models loaded, caches filled
        cli = [sys.executable, "-m", "speechforensics"]
        runs = {
            "python -c pass": lambda: wall([sys.executable, "-c", "pass"]),
            "speechforensics --help": lambda: wall([*cli, "--help"]),
            "detect, whole process": lambda: wall([*cli, "detect", str(clip), "--quiet"]),
            "detect, in process": lambda: _timed(detect, clip, backend),
        }
        best = {name: float("inf") for name in runs}
        for _ in range(args.repeats):
            for name, run in runs.items():
                best[name] = min(best[name], run())
    print(f"clip: {args.clip.name}, first {info.duration:.1f} s, {info.width}x{info.height}")
    print("| what | best wall s | x real time | / python start |")
    print("|---|---|---|---|")
    for name, seconds in best.items():
        rate = f"{info.duration / seconds:.2f}" if name.startswith("detect") else "–"
        print(f"| {name} | {seconds:.3f} | {rate} | {seconds / best['python -c pass']:.1f} |")


def _timed(fn, *args) -> float:
    start = time.perf_counter()
    fn(*args)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
