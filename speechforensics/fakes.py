"""Constructed forgeries from genuine clips, for measuring a detector without real fakes.

For every genuine clip, `make_fakes` writes to OUT_DIR (H.264 + AAC mp4, 25 fps, 16 kHz mono)
its picture with manipulated sound:
- `<clip>__swap.mp4`: the voice of the next genuine clip (cycled) - a dub;
- `<clip>__shift0.5s.mp4`, `__shift1s`, `__shift2s`: its own voice delayed (silence in front),
  all beyond the +-15-frame (600 ms) offset search but the first;
- `<clip>__splice.mp4` (clips of 4 s or more): 2 s of its voice from the middle replaced by 2 s
  of the next clip's voice - a partial forgery, for localisation;
and `fakes.tsv`, a list `evaluate.read_list` reads: `file`, `label`, `kind` (the category),
`source`, `donor`, `offset_s` (the true delay of a shift), `segments` (the replaced seconds of a
splice), the genuine clips listed too (label real, by a path relative to OUT_DIR).
Deterministic: the same clips give the same files. Files already written are kept (rerunning
resumes); each is written under a temporary name and renamed when complete.
"""

import csv
import os
from pathlib import Path

import numpy as np

from . import media
from .errors import SpeechForensicsError
from .evaluate import VIDEO_SUFFIXES, read_list
from .features import SAMPLE_RATE

KINDS = ("swap", "shift0.5s", "shift1s", "shift2s", "splice")
SHIFTS_S = {"shift0.5s": 0.5, "shift1s": 1.0, "shift2s": 2.0}  # s the voice is delayed
SPLICE_SECONDS = 2.0  # s of the voice replaced in a splice
MIN_SPLICE_CLIP_SECONDS = 2 * SPLICE_SECONDS  # shorter clips get no splice
COLUMNS = ("file", "label", "kind", "source", "donor", "offset_s", "segments")


def fitted(audio: np.ndarray, n: int) -> np.ndarray:
    """`audio` cut or zero-padded to n samples."""
    return np.pad(audio[:n], (0, max(0, n - len(audio))))


def versions(own: np.ndarray, other: np.ndarray, duration: float, kinds=KINDS) -> dict:
    """kind -> (audio, offset_s or None, replaced (start_s, end_s) or None)."""
    n, out = len(own), {}
    for kind in kinds:
        if kind == "swap":
            out[kind] = (fitted(other, n), None, None)
        elif kind in SHIFTS_S:
            delay = np.zeros(round(SHIFTS_S[kind] * SAMPLE_RATE), own.dtype)
            out[kind] = (fitted(np.concatenate([delay, own]), n), SHIFTS_S[kind], None)
        elif kind == "splice" and duration >= MIN_SPLICE_CLIP_SECONDS:
            start = round((duration - SPLICE_SECONDS) / 2 * SAMPLE_RATE)
            length = round(SPLICE_SECONDS * SAMPLE_RATE)
            spliced = own.copy()
            spliced[start : start + length] = fitted(other, length)
            span = (start / SAMPLE_RATE, (start + length) / SAMPLE_RATE)
            out[kind] = (spliced, None, span)
    return out


def make(clip: Path, donor: Path, out_dir: Path, kinds=KINDS) -> list[dict]:
    """The fakes of one genuine clip (its voice replaced by `donor`'s where needed); one
    fakes.tsv row each."""
    info = media.probe(clip)
    own, other = media.read_audio(clip), media.read_audio(donor)
    rows = []
    for kind, (audio, offset, span) in versions(own, other, info.duration, kinds).items():
        out = out_dir / f"{clip.stem}__{kind}.mp4"
        if not out.exists():
            part = out.with_name(f"{out.stem}.part.mp4")
            media.write_clip(part, media.read_frames(clip), audio)
            os.replace(part, out)
        segments = "" if span is None else f"{span[0]:.2f}-{span[1]:.2f}"
        rows.append(
            {"file": out.name, "label": "fake", "kind": kind, "source": clip.name,
             "donor": donor.name, "offset_s": "" if offset is None else offset,
             "segments": segments}
        )  # fmt: skip
    return rows


def genuine_clips(source: Path) -> list[Path]:
    """The real clips of a list file, of a folder holding MANIFEST.tsv, or every video of a
    folder."""
    source = Path(source)
    if source.is_dir() and not (source / "MANIFEST.tsv").exists():
        clips = sorted(p for p in source.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES)
    else:
        listed = source / "MANIFEST.tsv" if source.is_dir() else source
        clips = [item.path for item in read_list(listed) if item.label == 1]
    if len(clips) < 2:
        raise SpeechForensicsError(
            f"{source}: {len(clips)} genuine clip(s); make-fakes needs at least 2 (one lends "
            "its voice to the next)"
        )
    return clips


def make_fakes(source: Path, out_dir: Path, limit: int | None = None, kinds=KINDS, log=print):
    """Fakes of the first `limit` genuine clips of `source` (all by default) into `out_dir`,
    listed with the genuine clips in out_dir/fakes.tsv (returned). A clip that cannot be read
    is reported through `log` and skipped; the others carry on."""
    clips = genuine_clips(source)[:limit]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows, failed = [], 0
    for i, clip in enumerate(clips):
        try:
            made = make(clip, clips[(i + 1) % len(clips)], out_dir, kinds)
        except SpeechForensicsError as e:
            log(f"speechforensics: error: {e}")
            failed += 1
            continue
        real = os.path.relpath(clip, out_dir)
        rows += [{"file": real, "label": "real", "kind": "real", "source": clip.name}] + made
        log(f"{clip.name}: {', '.join(r['kind'] for r in made)}")
    listing = out_dir / "fakes.tsv"
    with open(listing, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return listing, failed
