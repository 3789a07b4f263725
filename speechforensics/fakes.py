"""Constructed forgeries from genuine clips, for measuring a detector without real fakes.

For every genuine clip, `make_fakes` writes to OUT_DIR (H.264 + AAC mp4, 25 fps, 16 kHz mono)
its picture with manipulated sound:
- `<clip>__swap.mp4`: the voice of the next genuine clip (cycled), repeated to fill the picture -
  a dub;
- `<clip>__shift0.5s.mp4`, `__shift1s`, `__shift2s`: its own voice delayed (silence in front),
  all beyond the +-15-frame (600 ms) offset search but the first;
- `<clip>__splice.mp4` (clips of 4 s or more): 2 s of its voice from the middle replaced by 2 s
  of the next clip's voice - a partial forgery, for localisation;
and `fakes.tsv`, a list `lists.read_list` reads: `file`, `label`, `kind` (the category),
`source`, `donor`, `offset_s` (the true delay of a shift), `segments` (the replaced seconds of a
splice), the genuine clips listed too (label real, by a path relative to OUT_DIR).

Whole videos (WHOLE_KINDS, asked for by name or all at once as `--kinds whole`; not made by
default) are composed of several genuine clips, for detectors that judge who speaks when:
- `<A>+<B>__turns.mp4`: clip i (A) and clip i+1 (B) side by side, each scaled to PANEL_HEIGHT;
  A speaks with its own voice while B shows its first frame, then B speaks while A holds its
  last frame. `__turns-forged`: the same with B's turn voiced by clip i+2 (C);
- `<A>+<B>+<C>__cuts.mp4`: clips i, i+1, i+2 one after another, each letterboxed into CANVAS,
  hard cuts between them. `__cuts-forged`: the middle shot voiced by clip i+3 (D);
- `<A>+<N>__long.mp4`: every clip, from A on (N more shots), cycled until the video lasts
  LONG_MIN_SECONDS, on CANVAS; LONG_VIDEOS of them, starting at clip 0 and at clips spread evenly
  round the list. `__long-forged`: the same with the first shot that starts at or after half
  that length (the first minute) voiced by the clip halfway round the list from its own.
A donor is never the clip whose face it voices (the next clip instead, on lists of 2), and its
voice is repeated to fill the turn or shot it voices, as in a swap.
Their fakes.tsv rows give label real (only genuine voices) or fake, `source` the clips shown
(joined by +), `donor` the voices that are not theirs, `segments` the forged seconds; and
each `<name>.truth.json` beside its video says who spoke when (see `truth`).

Deterministic: the same clips give the same files. Files already written are kept (rerunning
resumes; start a new OUT_DIR after changing --limit, as the pairing wraps round the list);
each is written under a temporary name and renamed when complete.
"""

import csv
import os
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from . import media
from .errors import SpeechForensicsError, describe, report_skip
from .features import SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS
from .lists import VIDEO_SUFFIXES, read_list
from .report import write_json

KINDS = ("swap", "shift0.5s", "shift1s", "shift2s", "splice")
SHIFTS_S = {"shift0.5s": 0.5, "shift1s": 1.0, "shift2s": 2.0}  # s the voice is delayed
SPLICE_SECONDS = 2.0  # s of the voice replaced in a splice
MIN_SPLICE_CLIP_SECONDS = 2 * SPLICE_SECONDS  # shorter clips get no splice
COLUMNS = ("file", "label", "kind", "source", "donor", "offset_s", "segments")

WHOLE_KINDS = ("turns", "turns-forged", "cuts", "cuts-forged", "long", "long-forged")
GROUPS = {"whole": WHOLE_KINDS}  # a name --kinds accepts for several kinds
PANEL_HEIGHT = 360  # px: side-by-side panels are scaled to this height (widths kept even)
CANVAS = (640, 360)  # px, width x height: cuts and long shots are letterboxed into it
LONG_MIN_SECONDS = 120.0  # s: a long video cycles through the clips until it lasts this long
LONG_VIDEOS = 2  # long videos (and as many long-forged), each from another starting clip


def versions(own: np.ndarray, other: np.ndarray, duration: float, kinds=KINDS) -> dict:
    """kind -> (audio, offset_s or None, replaced (start_s, end_s) or None)."""
    n, out = len(own), {}
    for kind in kinds:
        if kind == "swap":
            out[kind] = (media.repeat_to(other, n), None, None)
        elif kind in SHIFTS_S:
            delay = np.zeros(round(SHIFTS_S[kind] * SAMPLE_RATE), own.dtype)
            out[kind] = (media.pad_or_trim(np.concatenate([delay, own]), n), SHIFTS_S[kind], None)
        elif kind == "splice" and duration >= MIN_SPLICE_CLIP_SECONDS:
            start = round((duration - SPLICE_SECONDS) / 2 * SAMPLE_RATE)
            length = round(SPLICE_SECONDS * SAMPLE_RATE)
            spliced = own.copy()
            spliced[start : start + length] = media.repeat_to(other, length)
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


# Whole videos: several genuine clips composed into one


@dataclass(frozen=True)
class Turn:
    """One stretch of a whole video: `clip`'s frames in `box`, voiced by `voice` (the clip
    itself, or a donor where forged)."""

    clip: Path
    voice: Path
    frames: int  # 25 fps frames: the clip's whole length as read_frames yields it
    box: tuple[int, int, int, int]  # output pixels x0, y0, x1, y1 of the clip's picture

    @property
    def forged(self) -> bool:
        return self.voice != self.clip


@dataclass(frozen=True)
class Whole:
    """A video composed of genuine clips taking turns on one canvas. Side by side, each clip
    has its own panel and shows a still outside its turn (its first frame before, its last
    after); otherwise each turn fills the canvas alone and turns are joined by hard cuts."""

    kind: str
    name: str  # file name in OUT_DIR
    canvas: tuple[int, int]  # px, width x height
    turns: tuple[Turn, ...]
    side_by_side: bool

    @property
    def frames(self) -> int:
        return sum(t.frames for t in self.turns)


def _even(pixels: float) -> int:
    """The nearest even size of at least 2 px (H.264 with 4:2:0 chroma needs even sizes)."""
    return max(2, 2 * round(pixels / 2))


def letterbox(info: media.MediaInfo, canvas=CANVAS) -> tuple[int, int, int, int]:
    """The box (x0, y0, x1, y1) a clip's picture fills when scaled to fit `canvas`, centred."""
    width, height = canvas
    scale = min(width / info.width, height / info.height)
    w = min(width, _even(info.width * scale))
    h = min(height, _even(info.height * scale))
    x0, y0 = (width - w) // 2, (height - h) // 2
    return x0, y0, x0 + w, y0 + h


def turns_video(a: Path, b: Path, infos: dict, voice: Path | None = None) -> Whole:
    """A and B side by side at PANEL_HEIGHT, A speaking first, then B with its own voice or
    `voice` (then kind turns-forged)."""
    boxes, x = [], 0
    for info in (infos[a], infos[b]):
        w = _even(info.width * PANEL_HEIGHT / info.height)
        boxes.append((x, 0, x + w, PANEL_HEIGHT))
        x += w
    turns = (Turn(a, a, infos[a].frames, boxes[0]), Turn(b, voice or b, infos[b].frames, boxes[1]))
    kind = "turns" if voice is None else "turns-forged"
    return Whole(kind, f"{a.stem}+{b.stem}__{kind}.mp4", (x, PANEL_HEIGHT), turns, True)


def shots_video(kind: str, name: str, clips: list, voices: list, infos: dict) -> Whole:
    """`clips` full frame one after another on CANVAS, voiced by `voices`, with hard cuts."""
    turns = tuple(
        Turn(c, v, infos[c].frames, letterbox(infos[c])) for c, v in zip(clips, voices, strict=True)
    )
    return Whole(kind, name, CANVAS, turns, False)


def long_video(clips: list, infos: dict, start: int, forged: bool, min_seconds: float) -> Whole:
    """Every clip from clips[start] on, cycled until the video lasts `min_seconds`; if forged,
    the first shot that starts at or after half that is voiced by the clip halfway round the
    list from its own (the last shot when none starts that late)."""
    n, order, frames = len(clips), [], 0
    while len(order) < n or frames < min_seconds * VIDEO_FPS:
        order.append((start + len(order)) % n)
        frames += infos[clips[order[-1]]].frames
    voices = list(order)
    if forged:
        starts = np.cumsum([0] + [infos[clips[i]].frames for i in order[:-1]])
        late = np.flatnonzero(starts >= min_seconds / 2 * VIDEO_FPS)
        k = int(late[0]) if late.size else len(order) - 1
        voices[k] = _donor(order[k], n // 2, n)
    kind = "long-forged" if forged else "long"
    name = f"{clips[start].stem}+{len(order) - 1}__{kind}.mp4"
    return shots_video(kind, name, [clips[i] for i in order], [clips[i] for i in voices], infos)


def _donor(source: int, step: int, n: int) -> int:
    """The clip `step` places after `source` in a list of n (cycled), or the one after that
    where it would be the source itself: a donor never voices its own face."""
    donor = (source + step) % n
    return (donor + 1) % n if donor == source else donor


def whole_videos(
    clips: list, infos: dict, kinds=WHOLE_KINDS, min_seconds=LONG_MIN_SECONDS
) -> list[Whole]:
    """The whole videos of `kinds` from `clips` (at least 2; `infos` their probes), in a fixed
    order: per clip i its turns and cuts (with clips i+1, i+2, i+3 cycled), then the long ones."""
    n, out = len(clips), []
    for i, a in enumerate(clips):
        b, c = clips[(i + 1) % n], clips[(i + 2) % n]
        if "turns" in kinds:
            out.append(turns_video(a, b, infos))
        if "turns-forged" in kinds:
            out.append(turns_video(a, b, infos, voice=clips[_donor((i + 1) % n, 1, n)]))
        stem = f"{a.stem}+{b.stem}+{c.stem}"
        if "cuts" in kinds:
            out.append(shots_video("cuts", f"{stem}__cuts.mp4", [a, b, c], [a, b, c], infos))
        if "cuts-forged" in kinds:
            d = clips[_donor((i + 1) % n, 2, n)]
            name = f"{stem}__cuts-forged.mp4"
            out.append(shots_video("cuts-forged", name, [a, b, c], [a, d, c], infos))
    starts = sorted({k * n // LONG_VIDEOS for k in range(LONG_VIDEOS)})
    for kind, forged in (("long", False), ("long-forged", True)):
        if kind in kinds:
            out += [long_video(clips, infos, s, forged, min_seconds) for s in starts]
    return out


def _fitted(frame: np.ndarray, box) -> np.ndarray:
    """`frame` scaled to the size of `box` (area averaging down, bilinear up)."""
    x0, y0, x1, y1 = box
    size = (x1 - x0, y1 - y0)
    if frame.shape[1::-1] == size:
        return frame
    shrink = size[0] < frame.shape[1]
    return cv2.resize(frame, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _first_frame(clip: Path) -> np.ndarray:
    frames = media.read_frames(clip)
    try:
        return next(frames)
    finally:
        frames.close()


def render(whole: Whole):
    """The frames of a whole video, one at a time (at most one source frame in memory)."""
    width, height = whole.canvas
    background = np.zeros((height, width, 3), np.uint8)
    if whole.side_by_side:  # each panel shows its clip's first frame until its turn
        for turn in whole.turns:
            x0, y0, x1, y1 = turn.box
            background[y0:y1, x0:x1] = _fitted(_first_frame(turn.clip), turn.box)
    for turn in whole.turns:
        x0, y0, x1, y1 = turn.box
        count = 0
        for frame in media.read_frames(turn.clip):
            out = background.copy()
            out[y0:y1, x0:x1] = _fitted(frame, turn.box)
            count += 1
            yield out
        assert count == turn.frames, f"{turn.clip}: {count} frames, probe said {turn.frames}"
        if whole.side_by_side:  # from now on it holds its last frame
            background[y0:y1, x0:x1] = out[y0:y1, x0:x1]


def soundtrack(whole: Whole) -> np.ndarray:
    """Each turn's voice fitted to the turn (samples, 16 kHz), one after another: a clip's own
    voice cut or padded to its frames; a donor's repeated to fill the turn, as a dub fills it
    (as the single-clip swaps: silence would leave part of a forged turn unjudged)."""
    parts = []
    for t in whole.turns:
        fitted = media.repeat_to if t.forged else media.pad_or_trim
        parts.append(fitted(media.read_audio(t.voice), t.frames * SAMPLES_PER_FRAME))
    return np.concatenate(parts)


def truth(whole: Whole) -> dict:
    """What a detector's report can be checked against (times in s, boxes in output pixels
    x0, y0, x1, y1): `shots` the stretches between hard cuts; `turns` who speaks when - the
    box of the speaking face's picture, the clip shown (`source`), the clip heard (`voice`),
    `forged` when they differ; `forged` the forged stretches alone."""
    turns, at = [], 0
    for t in whole.turns:
        start, at = at, at + t.frames
        turns.append(
            {"start_s": start / VIDEO_FPS, "end_s": at / VIDEO_FPS, "box": list(t.box),
             "source": t.clip.name, "voice": t.voice.name, "forged": t.forged}
        )  # fmt: skip
    cuts = [[0.0, at / VIDEO_FPS]] if whole.side_by_side else None
    return {
        "file": whole.name,
        "kind": whole.kind,
        "label": "fake" if any(t["forged"] for t in turns) else "real",
        "duration_s": at / VIDEO_FPS,
        "canvas": list(whole.canvas),
        "layout": "side-by-side" if whole.side_by_side else "full-frame",
        "shots": cuts or [[t["start_s"], t["end_s"]] for t in turns],
        "turns": turns,
        "forged": [
            {"start_s": t["start_s"], "end_s": t["end_s"], "box": t["box"]}
            for t in turns
            if t["forged"]
        ],
    }


def genuine(whole: Whole) -> Whole:
    """The same video with each clip voiced by itself (a forged one's genuine twin)."""
    kind = whole.kind.removesuffix("-forged")
    name = whole.name.replace(f"__{whole.kind}.", f"__{kind}.")
    turns = tuple(replace(t, voice=t.clip) for t in whole.turns)
    return replace(whole, kind=kind, name=name, turns=turns)


def write_whole(whole: Whole, out_dir: Path) -> dict:
    """Write a whole video and its `<name>.truth.json` into `out_dir`, each kept if already
    there; its fakes.tsv row. A forged video whose genuine twin is there already copies the
    twin's encoded picture and only encodes its own sound."""
    out = Path(out_dir) / whole.name
    if not out.exists():
        part = out.with_name(f"{out.stem}.part.mp4")
        twin = out.with_name(genuine(whole).name)
        if twin != out and twin.exists():  # its picture, encoded already
            media.redub(part, twin, soundtrack(whole))
        else:
            media.write_clip(part, render(whole), soundtrack(whole))
        os.replace(part, out)
    facts = truth(whole)
    json_path = out.with_name(f"{out.stem}.truth.json")
    if not json_path.exists():
        write_json(facts, json_path)
    return {
        "file": whole.name,
        "label": facts["label"],
        "kind": whole.kind,
        "source": "+".join(t.clip.name for t in whole.turns),
        "donor": "+".join(t.voice.name for t in whole.turns if t.forged),
        "segments": ";".join(f"{f['start_s']:.2f}-{f['end_s']:.2f}" for f in facts["forged"]),
    }


def make_whole(
    clips: list,
    infos: dict,
    out_dir: Path,
    kinds=WHOLE_KINDS,
    log=print,
    min_seconds=LONG_MIN_SECONDS,
) -> tuple[list[dict], int]:
    """Write the whole videos of `kinds` (see whole_videos); (their fakes.tsv rows, how many
    failed). One that fails is reported in one line (errors.report_skip); the others carry on;
    `log` takes the progress lines."""
    if len(clips) < 2:
        report_skip(f"{len(clips)} readable genuine clip(s); whole videos need at least 2")
        return [], 1
    rows, failed = [], 0
    for whole in whole_videos(clips, infos, kinds, min_seconds):
        try:
            rows.append(write_whole(whole, out_dir))
        except Exception as e:  # noqa: BLE001 - one video never ends the batch
            report_skip(f"{whole.name}: {describe(e)}", e)
            failed += 1
            continue
        log(f"{whole.name}: {whole.kind}, {whole.frames / VIDEO_FPS:.2f} s")
    return rows, failed


# The whole set


def expand_kinds(kinds) -> tuple[str, ...]:
    """`kinds` with each group name (GROUPS) replaced by its kinds, without repeats."""
    out = []
    for kind in kinds:
        out += [k for k in GROUPS.get(kind, (kind,)) if k not in out]
    return tuple(out)


def _make_singles(clips: list, out_dir: Path, kinds, log) -> tuple[list[dict], int]:
    """The single-clip fakes of every clip, each after its genuine clip's row."""
    rows, failed = [], 0
    for i, clip in enumerate(clips):
        try:
            made = make(clip, clips[(i + 1) % len(clips)], out_dir, kinds)
        except Exception as e:  # noqa: BLE001 - one clip never ends the batch
            report_skip(describe(e, clip), e)
            failed += 1
            continue
        rows += [_real_row(clip, out_dir)] + made
        log(f"{clip.name}: {', '.join(r['kind'] for r in made)}")
    return rows, failed


def _real_row(clip: Path, out_dir: Path) -> dict:
    real = os.path.relpath(clip, out_dir)
    return {"file": real, "label": "real", "kind": "real", "source": clip.name}


def _probed(clips: list) -> tuple[dict, list[str]]:
    """({clip: its probe} for the clips that can be read, the errors of the others)."""
    infos, errors = {}, []
    for clip in clips:
        try:
            infos[clip] = media.probe(clip)
        except SpeechForensicsError as e:
            errors.append(str(e))
    return infos, errors


def make_fakes(
    source: Path,
    out_dir: Path,
    limit: int | None = None,
    kinds=KINDS,
    log=print,
    min_long_seconds=LONG_MIN_SECONDS,
):
    """Fakes of the first `limit` genuine clips of `source` (all by default) into `out_dir`,
    listed with the genuine clips in out_dir/fakes.tsv; (that list's path, how many failed).
    `kinds` may name groups (GROUPS). A clip or video that cannot be made is reported in one line
    (errors.report_skip) and skipped; the others carry on. `log` takes the progress lines."""
    kinds = expand_kinds(kinds)
    clips = genuine_clips(source)[:limit]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    whole = tuple(k for k in kinds if k in WHOLE_KINDS)
    single = tuple(k for k in kinds if k not in WHOLE_KINDS)
    rows, failed = [], 0
    if single or not whole:
        rows, failed = _make_singles(clips, out_dir, single, log)
    if whole:
        infos, errors = _probed(clips)
        if not single:  # the genuine clips are listed here, their errors reported here
            rows = [_real_row(clip, out_dir) for clip in infos]
            failed += len(errors)
            for error in errors:
                report_skip(error)
        made, broken = make_whole(list(infos), infos, out_dir, whole, log, min_long_seconds)
        rows, failed = rows + made, failed + broken
    listing = out_dir / "fakes.tsv"
    with open(listing, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, COLUMNS, delimiter="\t", restval="")
        writer.writeheader()
        writer.writerows(rows)
    return listing, failed
