"""The preprocessing cache of `evaluate`: detect.prepare's result per video, stored as plain
arrays with a JSON header (no pickle), keyed by the file's content hash, max_seconds, the face
settings, the perturbation and whether mouth crops were cut. Entries are written under a
temporary name and renamed, so a crash leaves none half-written; a damaged one is rebuilt.
"""

import dataclasses
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from . import media, perturb
from .errors import SpeechForensicsError

CACHE_VERSION = 1  # bump when the cached arrays change meaning
HASH_CHUNK_BYTES = 1 << 22


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as e:
        raise SpeechForensicsError(f"{path}: cannot read ({e.strerror or e})") from e
    return digest.hexdigest()


def load_prepared(
    path: Path,
    cache_dir: Path,
    max_seconds: float = media.MAX_SECONDS,
    perturbation: str | None = None,
    crops: bool = True,
):
    """detect.prepare's result for `path` (with mouth crops or not), distorted by
    `perturbation` ('TYPE:LEVEL', seeded by the file's content), from the cache when there;
    (clip, cached)."""
    from .detect import prepare
    from .face import FaceConfig

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
    clip = prepare(path, max_seconds, perturbation=distortion, crops=crops)
    _write_entry(entry, clip)
    return clip, False


def _write_entry(entry: Path, clip) -> None:
    """Plain arrays and a JSON header (no pickle), written to a temporary name, then renamed."""
    info = dataclasses.asdict(clip.info) | {"path": str(clip.info.path)}
    header = {"info": info, "tracks": [[t.face.id, t.face.max_gap_frames] for t in clip.tracks]}
    arrays = {"header": np.frombuffer(json.dumps(header).encode(), np.uint8)}
    arrays |= {"audio": clip.audio, "audio_features": clip.audio_features.numpy()}
    for i, t in enumerate(clip.tracks):
        arrays |= {f"landmarks{i}": t.face.landmarks, f"detected{i}": t.face.detected}
        arrays |= {f"missing{i}": t.missing} | ({} if t.crops is None else {f"crops{i}": t.crops})
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(f"{entry.stem}.{os.getpid()}.part.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, entry)


def _read_entry(entry: Path, path: Path):
    import torch

    from .detect import MouthTrack, Prepared
    from .face import FaceTrack

    with np.load(entry, allow_pickle=False) as z:
        header = json.loads(z["header"].tobytes())
        tracks = [
            MouthTrack(
                FaceTrack(tid, z[f"landmarks{i}"], z[f"detected{i}"], gap),
                z.get(f"crops{i}"),
                z[f"missing{i}"],
            )
            for i, (tid, gap) in enumerate(header["tracks"])
        ]
        info = media.MediaInfo(**(header["info"] | {"path": Path(path)}))
        return Prepared(info, z["audio"], torch.from_numpy(z["audio_features"]), tracks)
