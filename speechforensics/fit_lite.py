"""`speechforensics fit-lite`: fit lipsync-lite (lite.py) on a corpus of genuine clips, with
cross-validation that holds out whole sources for the held-out scores, the threshold and the
error rates; no forged video is used.

A source is the recording set a clip comes from (one corpus, one camera and room, one project's
inputs): clips of one source share resolution, compression, microphone and often speakers, so a
fold that saw a source's other clips would flatter it. The source is a list's `source` column,
else its kind/category (the dev manifest's "real recording (GRID corpus)"), else the clip's own
name. Each genuine clip is also fitted on in copies (AUGMENTATIONS: its mirror image, and the
distortions that tell sources apart), never judged in them.
"""

import csv
import dataclasses
import datetime
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import metrics
from .backends import LiteBackend
from .cache import file_hash, load_prepared
from .errors import SpeechForensicsError, describe, report_skip
from .lists import read_list
from .lite import audio_input, fit, mirrored, visual_input
from .media import repeat_to
from .mouth import interpolate_landmarks
from .pipeline import judge
from .scoring import speech_frames

FOLDS = 5  # cross-validation folds over the sources (each source held out once, whole)
FALSE_ALARMS = 0.05  # the threshold calls this share of held-out genuine clips fake
# Copies of each genuine clip fitted on: its mirror image (MIRROR: lips and voice agree the same
# way in it; a face is filmed from either side), and distorted copies (perturb.py): frames 180 px
# high (faces of about 60-160 px), H.264 at CRF 35, noise at 10 dB SNR.
MIRROR = "mirror"
AUGMENTATIONS = (MIRROR, "scale:5", "VC:3", "noise:3")
BOOTSTRAP_DRAWS = 2000  # resamples of the sources for the intervals
BOOTSTRAP_SEED = 0
CONFIDENCE = 0.95


@dataclass(eq=False)
class Genuine:
    """One genuine clip ready for fitting: its name and source, the clip, and the (visual, audio,
    rows) inputs of it and of its distorted copies, `rows` marking speech with the face in view."""

    name: str
    source: str
    clip: object  # pipeline.Prepared (landmarks, mouth crops and audio)
    examples: list[tuple[np.ndarray, np.ndarray, np.ndarray]]


def list_sources(list_path: Path, root: Path | None = None) -> list[tuple[Path, str]]:
    """(path, source) of the genuine clips of a list (formats of evaluate): the source from a
    `source` column, else the category (kind column, known folder), else the file's name."""
    items = [i for i in read_list(list_path, root) if i.label == 1]
    column = {}
    if Path(list_path).suffix.lower() in (".tsv", ".csv"):
        with open(list_path, newline="") as f:
            delimiter = "\t" if Path(list_path).suffix.lower() == ".tsv" else ","
            for row in csv.DictReader(f, delimiter=delimiter):
                if row.get("source"):
                    column[Path(row.get("file") or row.get("path") or "").name] = row["source"]
    return [(i.path, column.get(i.path.name) or i.category or i.path.name) for i in items]


def read_genuine(
    sources: list,
    augment: tuple[str, ...] = AUGMENTATIONS,
    cache_dir: Path | None = None,
    progress: bool = False,
    debug: bool = False,
) -> list[Genuine]:
    """Prepare each clip of `sources` ((path, source) pairs, or paths: each its own source) and
    its `augment` copies (landmarks and mouth crops), through the cache in `cache_dir` (default: a
    temporary one). Clips that cannot be judged are left out with one line each
    (errors.report_skip), as a batch run does; so are copies that cannot."""
    with tempfile.TemporaryDirectory() as scratch:
        where = Path(cache_dir or scratch)
        out = []
        for item in sources:
            path, source = item if isinstance(item, tuple) else (item, Path(item).name)
            try:
                clip = load_prepared(path, where)[0]
            except Exception as e:  # noqa: BLE001 - one file never ends the batch
                report_skip(describe(e, path), e, debug)
                continue
            examples = [_example(clip)]
            for spec in augment:
                try:
                    if spec == MIRROR:  # the same voice and rows; only the picture is flipped
                        examples.append((_visual(clip, mirror=True), *examples[0][1:]))
                    else:
                        examples.append(_example(load_prepared(path, where, None, spec)[0]))
                except Exception as e:  # noqa: BLE001
                    report_skip(describe(e, f"{path} ({spec})"), e, debug)
            out.append(Genuine(Path(path).name, source, clip, examples))
            if progress:
                print(f"prepared {len(out)}/{len(sources)}: {Path(path).name}", flush=True)
    return out


def _example(clip) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rows = speech_frames(clip.audio) & ~clip.tracks[0].missing
    return _visual(clip), audio_input(clip.audio), rows


def _visual(clip, mirror: bool = False) -> np.ndarray:
    track = clip.tracks[0]
    landmarks, crops = interpolate_landmarks(track.face.landmarks), track.crops
    if mirror:
        landmarks, crops = mirrored(landmarks, crops)
    return visual_input(landmarks, crops, ~track.missing)


def source_folds(clips: list[Genuine], count: int = FOLDS) -> list[set[str]]:
    """The sources split into `count` folds of about equal clip counts: largest source first,
    each into the fold with the fewest clips so far (ties: the earlier fold)."""
    sizes: dict[str, int] = {}
    for c in clips:
        sizes[c.source] = sizes.get(c.source, 0) + 1
    if len(sizes) < count:
        raise SpeechForensicsError(f"{len(sizes)} sources; need {count} to hold out whole ones")
    folds: list[set[str]] = [set() for _ in range(count)]
    load = [0] * count
    for source in sorted(sizes, key=lambda s: (-sizes[s], s)):
        k = load.index(min(load))
        folds[k].add(source)
        load[k] += sizes[source]
    return folds


def folds(clips: list[Genuine], count: int = FOLDS, fitting=None, **settings):
    """(held-out clips, model fitted on the clips of all other sources) for each source fold;
    `fitting(sources)`, when given, picks which of those other sources to fit on; `settings`
    go to lite.fit."""
    out = []
    for held_sources in source_folds(clips, count):
        held = [c for c in clips if c.source in held_sources]
        others = sorted({c.source for c in clips} - held_sources)
        kept = set(others if fitting is None else fitting(others))
        rest = [e for c in clips if c.source in kept for e in c.examples]
        out.append((held, fit(rest, **settings)))
    return out


def cross_validate(folded: list) -> dict:
    """Held-out scores of `folds`' output: each fold's genuine clips, and each of them with the
    voice of every other clip of its fold, judged by the model fitted on the other folds."""
    genuine, swapped = {}, {}
    for held, model in folded:
        backend = LiteBackend(model)
        for face in held:
            for voice in held:
                clip = face.clip if voice is face else with_voice(face.clip, voice.clip)
                score = _score(clip, backend)
                if score is not None:
                    (genuine if voice is face else swapped)[f"{face.name}+{voice.name}"] = score
    return {"genuine": genuine, "swapped": swapped}


def _score(clip, backend) -> float | None:
    try:
        return judge(clip, backend, threshold=0.0)["score"]
    except SpeechForensicsError:  # too little speech with the face in view
        return None


def with_voice(clip, other):
    """`clip` with `other`'s audio, cut to its length or repeated to fill it (media.repeat_to)."""
    return dataclasses.replace(clip, audio=repeat_to(other.audio, len(clip.audio)))


def summarise(cv: dict, sources: dict[str, str], false_alarms: float = FALSE_ALARMS) -> dict:
    """The figures of held-out scores (`sources`: clip name -> source): the threshold (the
    `false_alarms` quantile of genuine scores); genuine called fake at it, when each source's
    threshold comes from the other sources' scores only; AUC genuine vs swapped voice; swapped
    caught at the threshold; intervals from resampling whole sources."""
    genuine = _by_source(cv["genuine"], sources)
    swapped = _by_source(cv["swapped"], sources)
    g, s = np.concatenate(list(genuine.values())), np.concatenate(list(swapped.values()))
    threshold = float(np.quantile(g, false_alarms))
    unseen = np.concatenate(  # each source against a threshold set without it
        [v < _quantile_without(genuine, k, false_alarms) for k, v in genuine.items()]
    )
    figures = _figures(g, s, threshold)
    return {
        "threshold": threshold,
        "false_alarms": false_alarms,
        "genuine_called_fake_new_source": float(np.mean(unseen)),
        **figures,
        "intervals": _bootstrap(genuine, swapped, threshold),
        "held_out_genuine": len(g),
        "held_out_swapped": len(s),
        "sources": len(genuine),
    }


def _quantile_without(genuine: dict[str, np.ndarray], source: str, q: float) -> float:
    return float(np.quantile(np.concatenate([v for k, v in genuine.items() if k != source]), q))


def _by_source(scores: dict[str, float], sources: dict[str, str]) -> dict[str, np.ndarray]:
    out: dict[str, list[float]] = {}
    for pair, score in scores.items():
        out.setdefault(sources[pair.split("+")[0]], []).append(score)
    return {k: np.array(v) for k, v in sorted(out.items())}


def _figures(genuine: np.ndarray, swapped: np.ndarray, threshold: float) -> dict:
    return {
        "genuine_called_fake": float(np.mean(genuine < threshold)),
        "held_out_auc_swapped_voice": metrics.auc_real_fake(list(genuine), list(swapped)),
        "swapped_caught": float(np.mean(swapped < threshold)),
    }


def _bootstrap(genuine: dict, swapped: dict, threshold: float) -> dict:
    """CONFIDENCE intervals of _figures with the sources drawn with replacement (a draw keeps a
    source's clips together, and its swapped pairs with its faces)."""
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    names = list(genuine)
    draws = []
    for _ in range(BOOTSTRAP_DRAWS):
        picked = rng.choice(names, len(names))
        s = [swapped[k] for k in picked if k in swapped]
        if s:
            draws.append(
                _figures(np.concatenate([genuine[k] for k in picked]), np.concatenate(s), threshold)
            )
    tail = (1 - CONFIDENCE) / 2 * 100
    return {
        key: [float(v) for v in np.percentile([d[key] for d in draws], [tail, 100 - tail])]
        for key in draws[0]
    }


def fit_corpus(
    sources: list[tuple[Path, str]],
    out: str | Path,
    cache_dir: Path | None = None,
    progress: bool = False,
    debug: bool = False,
) -> dict:
    """Fit on the genuine clips at `sources` ((path, source) pairs) and their distorted copies,
    cross-validate with whole sources held out, save to `out`; returns the summary (summarise),
    also stored in the file's provenance."""
    clips = read_genuine(sources, AUGMENTATIONS, cache_dir, progress, debug)
    if len(clips) < 2 * FOLDS:
        raise SpeechForensicsError(f"{len(clips)} usable genuine clips; need {2 * FOLDS} to fit")
    cv = cross_validate(folds(clips))
    summary = summarise(cv, {c.name: c.source for c in clips})
    hashes = {Path(p).name: file_hash(Path(p)) for p, _ in sources}
    model = fit(
        [e for c in clips for e in c.examples],
        clips=[{"file": c.name, "sha256": hashes[c.name], "source": c.source} for c in clips],
        augmentations=list(AUGMENTATIONS),
        fitted=datetime.date.today().isoformat(),
        cross_validation=summary | {"folds": FOLDS, "held_out": "sources", "scores": cv},
    )
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    model.save(out)
    return summary
