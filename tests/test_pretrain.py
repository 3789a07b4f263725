"""Pretraining on real dev clips: a tiny model for a few dozen steps on the 2 CPU cores.

One run (module fixture) is shared: its loss falls, its held-out accuracy beats chance, a run
stopped and resumed repeats it, two gloo processes repeat it, and its checkpoint scores a video.
"""

import dataclasses
import json
import os
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import SHARED, need

from speechforensics import cli, pretrain, pretrain_config, pretrain_data
from speechforensics.avhubert.checkpoint import load_checkpoint, read_checkpoint
from speechforensics.errors import SpeechForensicsError
from speechforensics.media import read_audio

DEV = SHARED / "media/dev"
CLIPS = ("lrs2_deepavsr_00016.mp4", "pcavs_Audio_00104.mp4", "lrs2_deepavsr_00001.mp4")
STEPS = 50
# The tiny preset shortened for CI (2 windows of 48 frames per step, 8 clusters) and with
# lighter masking (audio p=0.3, no modality dropout, loss on unmasked frames too), so that
# 50 CPU steps are enough to see learning on held-out frames.
OVERRIDES = (
    f"max_steps={STEPS}",
    "window_frames=48",
    "batch_windows=2",
    "clusters=8",
    "lr=0.005",
    "heldout_fraction=0.3",
    "mask_prob_audio=0.3",
    "modality_dropout=0",
    "unmasked_weight=1.0",
    "eval_every=25",
    "checkpoint_every=25",
)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    for name in CLIPS:
        need(DEV / name)
    path = tmp_path_factory.mktemp("list") / "list.txt"
    fake = DEV / "hyperlips_video1_video1.mp4"  # a forgery: pretraining must leave it out
    lines = [f"{DEV / name} 1" for name in CLIPS] + [f"{fake} 0"]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def run(manifest, tmp_path_factory):
    """The reference run: returns (run dir, metrics lines, cache, labels, config)."""
    out = tmp_path_factory.mktemp("run")
    lines, errors = pretrain.run(manifest, out, "tiny", overrides=OVERRIDES, report=lambda m: None)
    assert errors == []
    config = pretrain_config.parse_overrides(pretrain_config.TINY, list(OVERRIDES))
    data = pretrain_data.open_cache([DEV / n for n in CLIPS], out / "data")
    labels, _ = pretrain_data.load_targets(out / pretrain.TARGETS_NAME)
    return out, lines, data, labels, config


def test_cache_holds_the_genuine_clips_only(run):
    _, _, data, labels, _ = run
    assert [Path(data.name(i)).name for i in range(len(data))] == list(CLIPS)
    for i in range(len(data)):
        n = data.frames(i)
        assert data.crops(i).shape == (n, 96, 96) and data.crops(i).dtype == np.uint8
        assert data.audio(i).shape == (n, 104) and data.audio(i).dtype == np.float16
        assert data.mfcc(i).shape == (n, 39) and len(labels[i]) == n
        assert 0 < data.crops(i).std()  # real mouths, not zeros
    assert max(int(x.max()) for x in labels) == 7  # every one of the 8 clusters used at the top
    assert len({int(v) for x in labels for v in np.unique(x)}) >= 6


def test_cache_is_built_once_and_bad_files_are_skipped(run, tmp_path):
    out, *_ = run
    index = (out / "data/index.json").read_text()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    paths = [DEV / CLIPS[0], broken]
    data, errors = pretrain_data.build_cache(paths, out / "data")
    assert len(data) == 1 and len(errors) == 1 and str(broken) in errors[0]
    assert (out / "data/index.json").read_text() == index  # nothing prepared again


def test_mfcc39_are_python_speech_features_mfcc_with_deltas_per_video_frame():
    psf = pytest.importorskip("python_speech_features")
    audio = read_audio(need(DEV / CLIPS[2]), None)
    frames = len(audio) // 640
    ours = pretrain_data.mfcc39(audio, frames)
    x = audio.astype(np.float64) * 32768
    cep = psf.mfcc(x, 16000, numcep=13, nfilt=26, nfft=512, appendEnergy=False)
    d1 = psf.delta(cep, 2)
    ref = np.concatenate([cep, d1, psf.delta(d1, 2)], axis=1)
    ref = np.pad(ref, ((0, max(0, 4 * frames - len(ref))), (0, 0)), mode="edge")[: 4 * frames]
    ref = ref.reshape(frames, 4, 39).mean(1)
    assert ours.shape == (frames, 39)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3)


def test_span_masks_and_video_substitution():
    rng = np.random.default_rng(0)
    masks = [pretrain_data.span_mask(500, 0.8, 10, rng) for _ in range(20)]
    share = np.mean([m.mean() for m in masks])
    assert 0.45 < share < 0.65  # p=0.8 spans of 10 overlap: about 1 - exp(-0.8) of frames
    assert all(pretrain_data.span_mask(12, 0.3, 5, rng).sum() >= 5 for _ in range(10))
    crops = np.arange(40, dtype=np.uint8)[:, None, None] * np.ones((1, 96, 96), np.uint8)
    mask = np.zeros(40, bool)
    mask[10:15] = True
    out = pretrain_data._substitute_spans(crops, mask, rng)
    assert (out[~mask] == crops[~mask]).all()
    src = out[10:15, 0, 0].astype(int)
    assert (np.diff(src) == 1).all() and not set(src) & set(range(5, 15))  # another stretch


def test_windows_cover_the_training_frames_and_repeat_per_epoch(run):
    _, _, data, _, config = run
    spans = pretrain_data.train_spans(data, config)
    a, b = (pretrain_data.epoch_windows(spans, config, e) for e in (3, 3))
    assert a == b and a != pretrain_data.epoch_windows(spans, config, 4)
    for clip, start, n in a:
        assert n == config.window_frames and start + n <= dict(spans)[clip]
    held = data.frames(0) - dict(spans)[0]
    assert held == round(data.frames(0) * config.heldout_fraction)


def test_loss_falls_and_heldout_accuracy_beats_chance(run):
    out, lines, *_ = run
    assert [x["step"] for x in lines] == list(range(1, STEPS + 1))
    logged = [json.loads(x) for x in (out / pretrain.METRICS_NAME).read_text().splitlines()]
    assert logged == lines
    first, last = (
        np.mean([x["loss"] for x in lines[:10]]),
        np.mean([x["loss"] for x in lines[-10:]]),
    )
    assert last < 0.85 * first, (first, last)
    evals = [x for x in lines if "heldout_accuracy_masked" in x]
    assert [x["step"] for x in evals] == [25, 50]
    final = evals[-1]
    assert final["heldout_frames"] > 150
    assert final["heldout_accuracy_masked"] > max(final["heldout_chance"], 1 / 8), final


def _losses(lines: list[dict]) -> list[float]:
    return [x["loss"] for x in lines]


def test_resume_repeats_the_uninterrupted_run(run, tmp_path):
    _, lines, data, labels, config = run
    model = pretrain_config.TINY_MODEL
    first = pretrain.train(model, config, data, labels, tmp_path, stop_at=4)
    second = pretrain.train(model, config, data, labels, tmp_path, resume=True, stop_at=8)
    assert [x["step"] for x in first + second] == list(range(1, 9))
    np.testing.assert_allclose(_losses(first + second), _losses(lines[:8]), rtol=1e-5)
    logged = [json.loads(x) for x in (tmp_path / pretrain.METRICS_NAME).read_text().splitlines()]
    assert [x["step"] for x in logged] == list(range(1, 9))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, folder: str, clips: list, labels, config, out):
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world)
    )
    torch.set_num_threads(1)
    data = pretrain_data.DataCache(Path(folder), clips)
    try:
        pretrain.train(
            pretrain_config.TINY_MODEL, config, data, labels, Path(out), stop_at=3, device="cpu"
        )
    finally:
        torch.distributed.destroy_process_group()


def test_two_gloo_processes_match_one_on_the_same_global_batch(run, tmp_path):
    _, lines, data, labels, config = run
    args = (2, _free_port(), str(data.folder), data.clips, labels, config, str(tmp_path))
    torch.multiprocessing.spawn(_worker, args=args, nprocs=2, join=True)
    logged = [json.loads(x) for x in (tmp_path / pretrain.METRICS_NAME).read_text().splitlines()]
    assert [x["step"] for x in logged] == [1, 2, 3]
    assert [x["frames"] for x in logged] == [x["frames"] for x in lines[:3]]
    np.testing.assert_allclose(_losses(logged), _losses(lines[:3]), rtol=1e-4)
    np.testing.assert_allclose(
        [x["grad_norm"] for x in logged], [x["grad_norm"] for x in lines[:3]], rtol=1e-3
    )


def test_checkpoint_loads_and_detect_scores_a_video(run, tmp_path, capsys):
    out, *_ = run
    ckpt = out / pretrain.CHECKPOINT_NAME
    info = read_checkpoint(ckpt)
    assert info.config == pretrain_config.TINY_MODEL and info.kind == "pretrained here"
    model = load_checkpoint(ckpt)
    assert model.config.encoder_layers == 2
    report = tmp_path / "r.json"
    video = DEV / "lrs2_deepavsr_00004.mp4"
    code = cli.main(["detect", str(need(video)), "--checkpoint", str(ckpt), "--json", str(report)])
    assert code == 0, capsys.readouterr().err
    (result,) = json.loads(report.read_text())
    assert result["backend"] == "avhubert" and -1.0 <= result["score"] <= 1.0


def test_second_iteration_clusters_the_first_models_layer(run, tmp_path):
    out, _, data, labels, config = run
    config = dataclasses.replace(config, clusters=5)
    path = tmp_path / "targets.npz"
    ckpt = out / pretrain.CHECKPOINT_NAME
    new, meta = pretrain_data.prepare_targets(data, config, path, ckpt)
    assert meta["source"] == str(ckpt) and meta["layer"] == config.target_layer == 1
    assert [len(x) for x in new] == [len(x) for x in labels]
    assert {int(v) for x in new for v in np.unique(x)} == set(range(5))
    again, _ = pretrain_data.prepare_targets(data, config, path, ckpt)  # read back, not refitted
    assert all((a == b).all() for a, b in zip(new, again, strict=True))


def test_cli_errors_are_one_line(manifest, tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["pretrain", str(manifest), "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no checkpoint_last.pt to resume from" in err
    args = ["pretrain", str(manifest), "--out", str(out), "--config", "tiny", "--set", "nope=1"]
    assert cli.main(args) == 1
    assert "nope=1: expected KEY=VALUE" in capsys.readouterr().err
    with pytest.raises(SpeechForensicsError, match="lists no genuine videos"):
        fakes = tmp_path / "fakes.txt"
        fakes.write_text(f"{DEV / CLIPS[0]} 0\n")
        pretrain.genuine_videos(fakes, None)
