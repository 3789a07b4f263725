"""A long video, judged whole: wall time and peak memory of `speechforensics detect` on a 720p
video of --minutes minutes (default 5), beside decoding it alone, in one run.

The video is the four 1280x720 genuine HyperLips dev clips one after another (hard cuts), repeated
to the length asked, written once into a temporary folder. Each command runs in its own process
under /usr/bin/time (peak resident memory); the default backend (lipsync-lite).

    python benchmarks/long_video.py [--minutes 5] [--keep DIR]
"""

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from speechforensics import media

DEV = Path(__file__).resolve().parents[1].parent / "shared/media/dev"
CLIPS = [DEV / f"hyperlips_video{i}_video{i}.mp4" for i in (1, 2, 3, 4)]
SIZE = (1280, 720)  # the canvas; hyperlips_video1 is 1278 wide and is padded


def build(path: Path, minutes: float) -> Path:
    """CLIPS in a loop until `minutes` long, frames streamed into the writer."""
    total = round(minutes * 60 * media.VIDEO_FPS)
    order = list(itertools.islice(itertools.cycle(CLIPS), 64))
    frames, audio, count = [], [], 0
    for clip in order:
        if count >= total:
            break
        n = min(media.probe(clip).frames, total - count)
        frames.append((clip, n))
        audio.append(media.read_audio(clip)[: n * media.SAMPLES_PER_FRAME])
        count += n

    def stream():
        for clip, n in frames:
            for frame in itertools.islice(media.read_frames(clip), n):
                canvas = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
                canvas[: frame.shape[0], : frame.shape[1]] = frame[: SIZE[1], : SIZE[0]]
                yield canvas

    return media.write_clip(path, stream(), np.concatenate(audio))


def measured(command: list[str]) -> tuple[float, float]:
    """(wall s, peak resident MB) of a command in its own process."""
    start = time.perf_counter()
    proc = subprocess.run(
        ["/usr/bin/time", "-v", *command], capture_output=True, text=True, check=True
    )
    wall = time.perf_counter() - start
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)[1])
    return wall, peak_kb / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--keep", type=Path, help="write the video here (and keep it)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.keep or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        video = folder / f"hyperlips_{args.minutes:g}min_720p.mp4"
        if not video.exists():
            build(video, args.minutes)
        seconds = media.probe(video).duration
        decode = [sys.executable, "-c", _DECODE.format(path=str(video))]
        detect = [sys.executable, "-m", "speechforensics", "detect", str(video), "--quiet"]
        rows = {"decode (frames + audio)": measured(decode), "detect": measured(detect)}
    print(f"video: {seconds:.0f} s, {SIZE[0]}x{SIZE[1]}, 25 fps")
    print("| what | wall s | x real time | peak memory |")
    print("|---|---|---|---|")
    for name, (wall, peak) in rows.items():
        print(f"| {name} | {wall:.1f} | {seconds / wall:.2f} | {peak:.0f} MB |")


_DECODE = """
from speechforensics import media
for _ in media.read_frames({path!r}, None):
    pass
media.read_audio({path!r}, None)
"""

if __name__ == "__main__":
    main()
