"""Constructed forgeries from genuine clips, for measuring a detector without real fakes.

For every genuine clip of a manifest (MANIFEST.tsv with `file` and `label` columns), writes to
OUT_DIR (H.264 + AAC mp4, 25 fps, 16 kHz mono):
- `<clip>__swap.mp4`: its picture with the voice of the next genuine clip (cycled);
- `<clip>__shift1s.mp4`: its own voice delayed by 1 s (silence in front);
- `<clip>__splice.mp4` (clips of 4 s or more): 2 s of its voice from the middle replaced by 2 s
  of the next clip's voice;
and `fakes.tsv` listing each file, its source, kind and (for splices) the replaced seconds.
Deterministic: no randomness, the same manifest gives the same files.

    python scripts/make_fakes.py ../shared/media/dev OUT_DIR
"""

import argparse
import csv
from pathlib import Path

import numpy as np

from speechforensics import media
from speechforensics.features import SAMPLE_RATE

SHIFT_SECONDS = 1.0
SPLICE_SECONDS = 2.0


def fitted(audio: np.ndarray, n: int) -> np.ndarray:
    """`audio` cut or zero-padded to n samples."""
    return np.pad(audio[:n], (0, max(0, n - len(audio))))


def make(clip: Path, donor: Path, out_dir: Path) -> list[dict]:
    info = media.probe(clip)
    own, other = media.read_audio(clip), media.read_audio(donor)
    n, stem = len(own), clip.stem
    shift = int(SHIFT_SECONDS * SAMPLE_RATE)
    versions = {
        "swap": (fitted(other, n), None),
        "shift1s": (fitted(np.concatenate([np.zeros(shift, own.dtype), own]), n), None),
    }
    if info.duration >= 2 * SPLICE_SECONDS:
        start = round((info.duration - SPLICE_SECONDS) / 2 * SAMPLE_RATE)
        spliced = own.copy()
        length = int(SPLICE_SECONDS * SAMPLE_RATE)
        spliced[start : start + length] = fitted(other, length)
        versions["splice"] = (spliced, (start / SAMPLE_RATE, start / SAMPLE_RATE + SPLICE_SECONDS))
    rows = []
    for kind, (audio, span) in versions.items():
        out = out_dir / f"{stem}__{kind}.mp4"
        media.write_clip(out, media.read_frames(clip), audio)
        replaced = "" if span is None else f"{span[0]:.2f}-{span[1]:.2f}"
        rows.append(
            {"file": out.name, "source": clip.name, "donor": donor.name, "kind": kind,
             "label": "fake", "replaced_s": replaced}
        )  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path, help="folder with MANIFEST.tsv")
    parser.add_argument("out", type=Path)
    args = parser.parse_args()
    with open(args.clips / "MANIFEST.tsv") as f:
        rows = csv.DictReader(f, delimiter="\t")
        genuine = [args.clips / r["file"] for r in rows if r["label"] == "real"]
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for i, clip in enumerate(genuine):
        rows += make(clip, genuine[(i + 1) % len(genuine)], args.out)
        print(f"{clip.name}: {len(rows)} files so far", flush=True)
    with open(args.out / "fakes.tsv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), delimiter="\t")
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main()
