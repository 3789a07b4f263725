"""Pretraining data: genuine videos -> a cache of mouth crops and audio features -> cluster targets.

Each video goes once through our own pipeline (`pipeline.prepare`: the main face's 96x96 mouth
crops, the 104-d audio features, 25 per second) and is appended to sharded raw arrays that
training memory-maps, so training never decodes video. A cache folder holds:

    index.json            the clips: source file, size, mtime, shard, first frame, frames
    shard_NNN.crops.u8    [N, 96, 96] uint8 mouth crops, the clips end to end
    shard_NNN.audio.f16   [N, 104] float16 audio features (the model's input)
    shard_NNN.mfcc.f16    [N, 39] float16 MFCC + deltas (the first iteration's targets)
    shard_NNN.missing.u8  [N] 1 where no face was measured (left out of the loss)

Targets (one label per frame) come from k-means (scikit-learn's MiniBatchKMeans on a sample of
frames, then every frame labelled with its nearest centre): of the MFCCs in iteration 1, of an
intermediate layer of the previous iteration's model later on.
"""

from __future__ import annotations

import itertools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import SpeechForensicsError, describe
from .features import (
    AUDIO_FEAT_DIM,
    AUDIO_STACK,
    MODEL_CROP_PX,
    PIXEL_MEAN,
    PIXEL_STD,
    audio_features,
    log_filterbank,
    video_features,
)
from .files import replacing
from .mouth import MOUTH_CROP_PX
from .pipeline import prepare
from .pretrain_config import TrainConfig

INDEX_VERSION = 1
SHARD_BYTES = 1 << 30  # a new shard starts once the current one's crops pass 1 GiB
MFCC_COEFFS = 13  # cepstral coefficients kept (c0..c12), as python_speech_features.mfcc
MFCC_LIFTER = 22  # sinusoidal liftering coefficient, as python_speech_features.mfcc
DELTA_WINDOW = 2  # filterbank frames (10 ms) either side in the delta regression
MFCC_DIM = 3 * MFCC_COEFFS  # 39: MFCC, delta, delta-delta
KMEANS_BATCH = 10_000  # frames per MiniBatchKMeans step
ASSIGN_CHUNK = 65_536  # frames labelled at a time
# Name, dtype and per-frame shape of each array of a shard.
STREAMS = (
    ("crops", np.uint8, (MOUTH_CROP_PX, MOUTH_CROP_PX)),
    ("audio", np.float16, (AUDIO_FEAT_DIM,)),
    ("mfcc", np.float16, (MFCC_DIM,)),
    ("missing", np.uint8, ()),
)
_SUFFIX = {"crops": "crops.u8", "audio": "audio.f16", "mfcc": "mfcc.f16", "missing": "missing.u8"}


def mfcc39(audio: np.ndarray, frames: int) -> np.ndarray:
    """[frames, 39] float32: 13 MFCCs with deltas and delta-deltas, the 4 filterbank frames of
    each video frame averaged. `audio` is 16 kHz mono float (+-1), as `media.read_audio` gives."""
    logfb = log_filterbank(audio).astype(np.float64)
    n = logfb.shape[1]
    k = np.arange(n)
    dct = np.cos(np.pi / n * (k[None, :] + 0.5) * np.arange(MFCC_COEFFS)[:, None])
    dct *= np.sqrt(2.0 / n)
    dct[0] /= np.sqrt(2.0)  # orthonormal DCT-II, as scipy.fftpack.dct(norm="ortho")
    lift = 1 + (MFCC_LIFTER / 2.0) * np.sin(np.pi * np.arange(MFCC_COEFFS) / MFCC_LIFTER)
    cep = (logfb @ dct.T) * lift
    d1 = _delta(cep)
    feats = np.concatenate([cep, d1, _delta(d1)], axis=1)
    pad = frames * AUDIO_STACK - len(feats)
    feats = np.pad(feats, ((0, max(pad, 0)), (0, 0)), mode="edge")[: frames * AUDIO_STACK]
    return feats.reshape(frames, AUDIO_STACK, MFCC_DIM).mean(1).astype(np.float32)


def _delta(x: np.ndarray) -> np.ndarray:
    n = DELTA_WINDOW
    padded = np.pad(x, ((n, n), (0, 0)), mode="edge")
    num = sum(i * (padded[n + i : len(x) + n + i] - padded[n - i : len(x) + n - i]) for i in (1, 2))
    return num / (2 * sum(i * i for i in range(1, n + 1)))


@dataclass
class DataCache:
    """The cached clips of one manifest, memory-mapped: `crops(i)`, `audio(i)`, ... are views."""

    folder: Path
    clips: list[dict]  # index entries, in manifest order

    def __post_init__(self):
        self._maps: dict[tuple[int, str], np.memmap] = {}

    def __len__(self) -> int:
        return len(self.clips)

    def frames(self, i: int) -> int:
        return self.clips[i]["frames"]

    def name(self, i: int) -> str:
        return self.clips[i]["file"]

    def stream(self, i: int, name: str) -> np.ndarray:
        clip = self.clips[i]
        key = (clip["shard"], name)
        if key not in self._maps:
            dtype, shape = next((d, s) for n, d, s in STREAMS if n == name)
            path = self.folder / _shard_file(clip["shard"], name)
            count = path.stat().st_size // (np.dtype(dtype).itemsize * int(np.prod(shape)))
            self._maps[key] = np.memmap(path, dtype, "r", shape=(count, *shape))
        return self._maps[key][clip["start"] : clip["start"] + clip["frames"]]

    def crops(self, i: int) -> np.ndarray:
        return self.stream(i, "crops")

    def audio(self, i: int) -> np.ndarray:
        return self.stream(i, "audio")

    def mfcc(self, i: int) -> np.ndarray:
        return self.stream(i, "mfcc")

    def missing(self, i: int) -> np.ndarray:
        return self.stream(i, "missing").astype(bool)


def _shard_file(shard: int, name: str) -> str:
    return f"shard_{shard:03d}.{_SUFFIX[name]}"


def _key(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}"


def _read_index(folder: Path) -> dict:
    path = folder / "index.json"
    if not path.is_file():
        return {"version": INDEX_VERSION, "clips": {}}
    index = json.loads(path.read_text())
    if index.get("version") != INDEX_VERSION:
        raise SpeechForensicsError(f"{path}: cache of another version; use a new --cache folder")
    return index


def _write_index(folder: Path, index: dict) -> None:
    with replacing(folder / "index.json") as tmp:
        tmp.write_text(json.dumps(index, indent=1) + "\n")


def build_cache(
    paths: list[Path], folder: Path, progress: bool = False
) -> tuple[DataCache, list[str]]:
    """Cache every video of `paths` not cached yet; returns the cache of those that could be
    prepared and one error line per video that could not (which is skipped)."""
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    index, errors = _read_index(folder), []
    todo = [p for p in paths if not p.is_file() or _key(p) not in index["clips"]]
    for path in tqdm(todo, desc="preparing", unit="clip", disable=not progress):
        try:
            if not path.is_file():
                raise SpeechForensicsError(f"{path}: no such video file")
            arrays = _prepare_clip(path)
        except Exception as e:  # noqa: BLE001 - one video never ends the preparation
            errors.append(describe(e, path))
            continue
        index["clips"][_key(path)] = _append(folder, index, arrays, path)
        _write_index(folder, index)
    clips = [index["clips"][_key(p)] for p in paths if p.is_file() and _key(p) in index["clips"]]
    if not clips:
        raise SpeechForensicsError(f"none of the {len(paths)} videos could be prepared")
    return DataCache(folder, clips), errors


def _prepare_clip(path: Path) -> dict[str, np.ndarray]:
    clip = prepare(path, max_seconds=None)
    track = clip.tracks[0]  # the main face
    frames = len(track.crops)
    return {
        "crops": np.ascontiguousarray(track.crops, dtype=np.uint8),
        "audio": audio_features(clip.audio).numpy().astype(np.float16),
        "mfcc": mfcc39(clip.audio, frames).astype(np.float16),
        "missing": track.missing.astype(np.uint8),
    }


def _append(folder: Path, index: dict, arrays: dict[str, np.ndarray], path: Path) -> dict:
    """Append one clip's arrays to the last shard (a new one when it is full); the index is the
    truth, so bytes past its end (an interrupted append) are cut off first."""
    shard = max((c["shard"] for c in index["clips"].values()), default=0)
    end = sum(c["frames"] for c in index["clips"].values() if c["shard"] == shard)
    if end * MOUTH_CROP_PX * MOUTH_CROP_PX >= SHARD_BYTES:
        shard, end = shard + 1, 0
    for name, dtype, shape in STREAMS:
        data = np.ascontiguousarray(arrays[name], dtype=dtype)
        assert data.shape[1:] == shape and len(data) == len(arrays["crops"]), (name, data.shape)
        file = folder / _shard_file(shard, name)
        with open(file, "ab") as f:
            f.truncate(end * data[:1].nbytes)
            f.write(data.tobytes())
            f.flush()
            os.fsync(f.fileno())
    return {"file": str(path), "shard": shard, "start": end, "frames": len(arrays["crops"])}


# Samples: windows, masks, batches (config: a pretrain_config.TrainConfig)


@dataclass
class Batch:
    video: Tensor  # [B, 1, T, 88, 88] float, masked spans already replaced
    lengths: list[int]  # frames of each sample (the rest is padding)
    audio: Tensor  # [B, 104, T] float
    targets: Tensor  # [B, T] long cluster labels
    valid: Tensor  # [B, T] bool: inside the sample and with a face
    mask_audio: Tensor  # [B, T] bool
    mask_video: Tensor  # [B, T] bool
    keep: Tensor  # [B, 2] float: 1 keeps, 0 drops the audio / video modality

    def to(self, device) -> Batch:
        moved = {k: v.to(device) if isinstance(v, Tensor) else v for k, v in vars(self).items()}
        return Batch(**moved)


def rng_for(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def train_spans(data: DataCache, config: TrainConfig) -> list[tuple[int, int]]:
    """(clip, frames used for training) of every clip long enough; the tail is held out."""
    spans = []
    for i in range(len(data)):
        n = data.frames(i) - round(data.frames(i) * config.heldout_fraction)
        if n >= config.min_frames:
            spans.append((i, n))
    if not spans:
        raise SpeechForensicsError(f"no clip has {config.min_frames} frames of video to train on")
    return spans


def epoch_windows(spans: list, config: TrainConfig, epoch: int) -> list[tuple[int, int, int]]:
    """(clip, start, frames) of every window of an epoch, in its shuffled order: each clip cut
    into windows at a random offset, clips shorter than a window taken whole."""
    rng, w, out = rng_for(config.seed, 0, epoch), config.window_frames, []
    for clip, n in spans:
        if n <= w:
            out.append((clip, 0, n))
            continue
        offset = int(rng.integers(0, (n - w) % w + 1))
        out += [(clip, s, w) for s in range(offset, n - w + 1, w)]
    return [out[j] for j in rng.permutation(len(out))]


class WindowSchedule:
    """The window of each sample of each step: a pure function of the step, so resuming needs
    only the step number."""

    def __init__(self, data: DataCache, config: TrainConfig):
        self.spans, self.config = train_spans(data, config), config
        self.per_epoch = len(epoch_windows(self.spans, config, 0))
        self._epoch, self._windows = -1, []

    def window(self, sample: int) -> tuple[int, int, int]:
        epoch, pos = divmod(sample, self.per_epoch)
        if epoch != self._epoch:
            self._epoch, self._windows = epoch, epoch_windows(self.spans, self.config, epoch)
        return self._windows[pos]


def span_mask(n: int, prob: float, length: int, rng: np.random.Generator) -> np.ndarray:
    """[n] bool: as fairseq's compute_mask_indices (static lengths, overlap allowed, at least 2
    spans), the span starts drawn without replacement."""
    mask = np.zeros(n, bool)
    if prob <= 0 or n <= 0:
        return mask
    spans = max(2, int(prob * n / length + rng.random()))
    length = min(length, n - 1) if n > 1 else 1
    spans = min(spans, n - length + 1)
    for s in rng.choice(n - length + 1, spans, replace=False):
        mask[s : s + length] = True
    return mask


def _substitute_spans(crops: np.ndarray, mask: np.ndarray, rng) -> np.ndarray:
    """Replace each masked span of the video by another stretch of the same clip (the original's
    `same_seq` selection): lips that are there, but say something else."""
    out, n, t = crops.copy(), len(crops), 0
    while t < n:
        if not mask[t]:
            t += 1
            continue
        end = t + int(np.argmin(np.append(mask[t:], False)))
        length = end - t
        others = np.setdiff1d(np.arange(n), np.arange(max(0, t - length), end))
        src = int(rng.choice(others)) if len(others) else 0
        out[t:end] = crops[np.clip(np.arange(src, src + length), 0, n - 1)]
        t = end
    return out


def _video_tensor(crops: np.ndarray, rng, augment: bool) -> Tensor:
    """uint8 [T, 96, 96] -> normalised float [T, 88, 88]: random crop + flip, or the centre."""
    excess = MOUTH_CROP_PX - MODEL_CROP_PX
    top, left = rng.integers(0, excess + 1, 2) if augment else (excess // 2, excess // 2)
    x = torch.from_numpy(crops[:, top : top + MODEL_CROP_PX, left : left + MODEL_CROP_PX].copy())
    if augment and rng.random() < 0.5:
        x = x.flip(-1)
    return (x.float() / 255.0 - PIXEL_MEAN) / PIXEL_STD


def make_sample(data, targets, window, config, rng, augment=True) -> dict:
    """One sample's tensors: its window's video (masked spans replaced), audio, targets, masks."""
    clip, start, n = window
    sl = slice(start, start + n)
    mask_v = span_mask(n, config.mask_prob_video, config.mask_len_video, rng)
    mask_a = span_mask(n, config.mask_prob_audio, config.mask_len_audio, rng)
    crops = _substitute_spans(np.asarray(data.crops(clip)[sl]), mask_v, rng)
    drop = rng.random() < config.modality_dropout if augment else False
    drop_audio = rng.random() < config.audio_dropout
    return {
        "video": _video_tensor(crops, rng, augment and config.image_aug),
        "audio": torch.from_numpy(data.audio(clip)[sl].astype(np.float32)).T,
        "targets": torch.from_numpy(targets[clip][sl].astype(np.int64)),
        "valid": torch.from_numpy(~data.missing(clip)[sl]),
        "mask_audio": torch.from_numpy(mask_a),
        "mask_video": torch.from_numpy(mask_v),
        "keep": torch.tensor(
            [float(not (drop and drop_audio)), float(not (drop and not drop_audio))]
        ),
    }


def collate(samples: list[dict]) -> Batch:
    """Pad the samples to the longest; padded frames are not valid and never masked."""
    lengths = [len(s["targets"]) for s in samples]
    t = max(lengths)

    def pad(x: Tensor, value=0) -> Tensor:
        return F.pad(x, (0, t - x.shape[-1]), value=value)

    video = torch.stack([F.pad(s["video"], (0, 0, 0, 0, 0, t - len(s["video"]))) for s in samples])
    return Batch(
        video=video[:, None],
        lengths=lengths,
        audio=torch.stack([pad(s["audio"]) for s in samples]),
        targets=torch.stack([pad(s["targets"]) for s in samples]),
        valid=torch.stack([pad(s["valid"], False) for s in samples]),
        mask_audio=torch.stack([pad(s["mask_audio"], False) for s in samples]),
        mask_video=torch.stack([pad(s["mask_video"], False) for s in samples]),
        keep=torch.stack([s["keep"] for s in samples]),
    )


# Targets


def fit_kmeans(feats: list[np.ndarray], k: int, sample_frames: int, seed: int) -> dict:
    """Centres of `k` clusters of (standardised) frames, fitted on a random sample of frames."""
    try:
        from sklearn.cluster import MiniBatchKMeans
    except ImportError as e:
        raise SpeechForensicsError(
            "pretraining needs scikit-learn for its k-means targets: "
            "pip install 'speechforensics[pretrain]'"
        ) from e
    total = sum(len(f) for f in feats)
    if total < k:
        raise SpeechForensicsError(f"{total} frames of video are too few for {k} clusters")
    rng = np.random.default_rng(seed)
    pick = np.sort(rng.choice(total, size=min(sample_frames, total), replace=False))
    bounds = np.cumsum([0] + [len(f) for f in feats])
    sample = np.concatenate(
        [
            np.asarray(f[pick[(pick >= a) & (pick < b)] - a], dtype=np.float32)
            for f, a, b in zip(feats, bounds[:-1], bounds[1:], strict=True)
        ]
    )  # only the sampled frames are read
    mean, std = sample.mean(0), sample.std(0) + 1e-5
    km = MiniBatchKMeans(
        n_clusters=k, batch_size=KMEANS_BATCH, n_init=3, random_state=seed, max_iter=100
    )
    km.fit((sample - mean) / std)
    return {"centres": km.cluster_centers_.astype(np.float32), "mean": mean, "std": std}


def assign(feats: np.ndarray, kmeans: dict) -> np.ndarray:
    """[T] int64 label of each frame: its nearest centre."""
    centres = torch.from_numpy(kmeans["centres"])
    out = []
    for s in range(0, len(feats), ASSIGN_CHUNK):
        x = (feats[s : s + ASSIGN_CHUNK].astype(np.float32) - kmeans["mean"]) / kmeans["std"]
        out.append(torch.cdist(torch.from_numpy(x), centres).argmin(1))
    return torch.cat(out).numpy() if out else np.zeros(0, np.int64)


@torch.no_grad()
def layer_features(checkpoint: Path, layer: int, data: DataCache, device="cpu") -> list:
    """Each clip's [T, D] features from block `layer` (1-based) of a trained model, audio and
    video together: the targets of the next iteration."""
    from .avhubert.checkpoint import load_checkpoint

    model = load_checkpoint(checkpoint, device=device)
    if not 1 <= layer <= model.config.encoder_layers:
        raise SpeechForensicsError(
            f"{checkpoint}: has {model.config.encoder_layers} layers, so cannot give layer {layer}"
        )
    out = []
    for i in range(len(data)):
        video = video_features(np.asarray(data.crops(i)))[None, None].to(device)
        audio = torch.from_numpy(data.audio(i).astype(np.float32)).T[None].to(device)
        feats = model.extract_features(video=video, audio=audio, output_layer=layer)[0]
        out.append(feats.cpu().numpy().astype(np.float16))
    return out


def make_targets(data: DataCache, feats: list[np.ndarray], k: int, sample: int, seed: int):
    """Labels of every frame of every clip (a list of [T] int16 arrays) and the k-means fit."""
    kmeans = fit_kmeans(feats, k, sample, seed)
    labels = [assign(f, kmeans).astype(np.int16) for f in feats]
    assert [len(x) for x in labels] == [data.frames(i) for i in range(len(data))]
    return labels, kmeans


def save_targets(path: Path, labels: list[np.ndarray], kmeans: dict, meta: dict) -> None:
    with replacing(path) as tmp:
        np.savez(
            tmp,
            labels=np.concatenate(labels),
            lengths=np.array([len(x) for x in labels]),
            meta=np.array(json.dumps(meta)),
            **kmeans,
        )


def load_targets(path: Path) -> tuple[list[np.ndarray], dict]:
    with np.load(path) as z:
        bounds = np.cumsum([0, *z["lengths"]])
        labels = [z["labels"][a:b] for a, b in itertools.pairwise(bounds)]
        return labels, json.loads(str(z["meta"]))


def open_cache(paths: list[Path], folder: Path) -> DataCache:
    """The already cached videos of `paths` (the other processes of a distributed run)."""
    index = _read_index(folder)
    clips = [index["clips"][_key(p)] for p in paths if p.is_file() and _key(p) in index["clips"]]
    if not clips:
        raise SpeechForensicsError(f"{folder}: none of the {len(paths)} videos is cached")
    return DataCache(folder, clips)


def prepare_targets(data: DataCache, config: TrainConfig, path: Path, targets_from: Path | None):
    """The labels of every frame, saved to `path` (RUN_DIR/targets.npz) and computed only once:
    k-means of the MFCCs (iteration 1) or of block `target_layer` of `targets_from`, the
    previous iteration's model."""
    source = str(targets_from) if targets_from else "mfcc"
    meta = {
        "source": source,
        "layer": config.target_layer if targets_from else None,
        "clusters": config.clusters,
        "clips": [data.name(i) for i in range(len(data))],
    }
    if path.exists():
        labels, saved = load_targets(path)
        if saved == meta:
            return labels, meta
    if targets_from:
        feats = layer_features(targets_from, config.target_layer, data)
    else:
        feats = [np.asarray(data.mfcc(i)) for i in range(len(data))]
    labels, kmeans = make_targets(data, feats, config.clusters, config.kmeans_frames, config.seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_targets(path, labels, kmeans, meta)
    return labels, meta
