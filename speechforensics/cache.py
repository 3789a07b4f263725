"""The preprocessing cache of `evaluate`: pipeline.prepare's result per video, stored as plain
arrays with a JSON header (no pickle), keyed by the file's content hash, max_seconds, the face
settings, the perturbation and whether mouth crops were cut. Entries are written under a
temporary name and renamed, so a crash leaves none half-written; a damaged one is rebuilt.
"""

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np

from . import media, perturb, pipeline
from .face import FaceConfig, FaceTrack
from .files import file_hash, replacing
from .pipeline import MouthTrack, Prepared

CACHE_VERSION = 2  # bump when the cached arrays change meaning


def load_prepared(
    path: Path,
    cache_dir: Path,
    max_seconds: float | None = media.MAX_SECONDS,
    perturbation: str | None = None,
    crops: bool = True,
):
    """pipeline.prepare's result for `path` (with mouth crops or not), distorted by
    `perturbation` ('TYPE:LEVEL', seeded by the file's content), from the cache when there;
    (clip, cached)."""
    content = file_hash(path)
    distortion = None
    if perturbation:  # seeded by the content: the same clip is distorted the same way
        distortion = perturb.parse(perturbation, seed=int(content[:8], 16))
    settings = {
        "version": CACHE_VERSION, "content": content, "max_seconds": max_seconds,
        "face": dataclasses.asdict(FaceConfig()), "perturbation": perturbation,
        "crops": crops,
    }  # fmt: skip
    key = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:32]
    entry = Path(cache_dir) / f"{key}.npz"
    if entry.exists():
        try:
            return _read_entry(entry, path), True
        except (OSError, ValueError, KeyError):
            pass  # a damaged entry is rebuilt
    clip = pipeline.prepare(path, max_seconds, perturbation=distortion, crops=crops)
    _write_entry(entry, clip)
    return clip, False


def _write_entry(entry: Path, clip) -> None:
    """Plain arrays and a JSON header (no pickle), written to a temporary name, then renamed."""
    info = dataclasses.asdict(clip.info) | {"path": str(clip.info.path)}
    tracks = [[t.face.id, t.face.max_gap_frames, t.face.shot] for t in clip.tracks]
    header = {"info": info, "tracks": tracks, "shots": clip.shots}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    arrays["audio"] = clip.audio
    for i, t in enumerate(clip.tracks):
        arrays |= {f"landmarks{i}": t.face.landmarks, f"detected{i}": t.face.detected}
        arrays |= {f"missing{i}": t.missing} | ({} if t.crops is None else {f"crops{i}": t.crops})
    with replacing(entry) as tmp:
        np.savez(tmp, **arrays)


def _read_entry(entry: Path, path: Path) -> Prepared:
    with np.load(entry, allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes())
        tracks = [
            MouthTrack(
                FaceTrack(tid, z[f"landmarks{i}"], z[f"detected{i}"], gap, shot and tuple(shot)),
                z.get(f"crops{i}"),
                z[f"missing{i}"],
            )
            for i, (tid, gap, shot) in enumerate(header["tracks"])
        ]
        info = media.MediaInfo(**(header["info"] | {"path": Path(path)}))
        shots = [tuple(s) for s in header["shots"]]
        return Prepared(info, z["audio"], tracks, shots)
