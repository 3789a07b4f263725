"""Preprocessing speed: decode -> faces + landmarks -> mouth crops, beside decode alone.

For each clip, in the same run and taking turns: the time to decode its 25 fps frames
(`media.read_frames`, the baseline) and the time of the whole preprocessing (`pipeline.prepare`:
audio, two decoding passes, faces, landmarks, crops). Also a 640x480 clip made from a dev clip
(the issue's reference size), written to a temporary file first. Prints a Markdown table with
frames/s and the ratio prepare / decode, and per clip the frames on which the main face was
measured.

    python benchmarks/preprocess_speed.py [--clips DIR] [--limit N] [--threads 2]
"""

import argparse
import csv
import tempfile
import time
from pathlib import Path

import cv2
import torch

from speechforensics import media
from speechforensics.errors import SpeechForensicsError
from speechforensics.pipeline import prepare

DEV = Path(__file__).resolve().parents[1].parent / "shared/media/dev"
SOURCE_640 = "hyperlips_video1_video1.mp4"  # a 1278x720 news shot, rescaled to 640x480


def decode_seconds(path: Path) -> tuple[float, int]:
    start, n = time.perf_counter(), 0
    for _ in media.read_frames(path):
        n += 1
    return time.perf_counter() - start, n


def prepare_seconds(path: Path):
    start = time.perf_counter()
    try:
        clip = prepare(path)
    except SpeechForensicsError as e:
        return time.perf_counter() - start, None, str(e)
    return time.perf_counter() - start, clip, ""


def make_640x480(src: Path, out: Path) -> Path:
    """Re-encode `src` at 640x480 (letterboxed, H.264) with its audio, as a user's file would be."""
    return media.write_clip(
        out, (letterbox(f, 640, 480) for f in media.read_frames(src)), media.read_audio(src)
    )


def letterbox(frame, width: int, height: int):
    h, w = frame.shape[:2]
    scale = min(width / w, height / h)
    small = cv2.resize(frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    top, left = (height - small.shape[0]) // 2, (width - small.shape[1]) // 2
    bottom, right = height - small.shape[0] - top, width - small.shape[1] - left
    return cv2.copyMakeBorder(small, top, bottom, left, right, cv2.BORDER_CONSTANT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=Path, default=DEV)
    parser.add_argument("--limit", type=int, default=0, help="only the first N clips (0: all)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    with open(args.clips / "MANIFEST.tsv") as f:
        clips = [args.clips / row["file"] for row in csv.DictReader(f, delimiter="\t")]
    clips = clips[: args.limit or None]
    with tempfile.TemporaryDirectory() as tmp:
        clips.insert(0, make_640x480(args.clips / SOURCE_640, Path(tmp) / "640x480.mp4"))
        prepare(clips[0])  # warm-up: loading dlib's models (about 1-3 s) is not per-clip work
        rows = [measure(path) for path in clips]
    print(
        "| clip | size | frames | decode fps | prepare fps | prepare / decode "
        "| main face measured |"
    )
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    ok = [r for r in rows[1:] if r[-1] != "error"]
    print(f"\n{len(ok)} of {len(rows) - 1} dev clips prepared")


def measure(path: Path) -> list[str]:
    decode_s, frames = decode_seconds(path)
    prepare_s, clip, error = prepare_seconds(path)
    info = media.probe(path)
    face = (
        "error"
        if clip is None
        else f"{clip.tracks[0].face.frames}/{frames} ({len(clip.tracks)} tracks)"
    )
    if error:
        print(f"{path.name}: {error}")
    return [
        path.name,
        f"{info.width}x{info.height}",
        str(frames),
        f"{frames / decode_s:.0f}",
        f"{frames / prepare_s:.0f}",
        f"{prepare_s / decode_s:.1f}",
        face,
    ]


if __name__ == "__main__":
    main()
