"""Self-supervised pretraining: AV-HuBERT's masked cluster prediction on genuine videos.

In the order of nanoGPT's train.py: config, data, model, loop, checkpoint. The model is the one
inference uses (`avhubert.model.AVHubert`); pretraining adds only the input masking, modality
dropout and the cluster-prediction head (`Pretrainer`), as in AV-HuBERT's pre-training:

- audio input frames are masked in spans of 10 (p = 0.8) and replaced by a learned vector; video
  spans of 5 (p = 0.3) are replaced by another stretch of the same clip;
- a whole modality is dropped (zeroed after its front end) with p = 0.5, audio or video alike;
- the fused features go through the transformer; a projection of each frame is compared by
  cosine similarity / 0.1 with one embedding per cluster; the loss is the cross-entropy with the
  frame's cluster on masked frames (unmasked frames optional), plus 10 x the mean square of the
  front-end features, summed and divided by the number of masked frames in the global batch.

Every random choice (windows, crops, masks, dropped modalities) is a function of the seed, the
step and the sample's place in the global batch, so a resumed run repeats an uninterrupted one
and N processes under torchrun compute what one process computes on the same global batch.
"""

import contextlib
import datetime
import json
import os
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from .avhubert.checkpoint import FORMAT, FORMAT_VERSION
from .avhubert.model import AVHubert, ModelConfig
from .errors import SpeechForensicsError, report_skip
from .files import replacing
from .pretrain_config import PRESETS, TrainConfig, parse_overrides
from .pretrain_data import (
    Batch,
    DataCache,
    WindowSchedule,
    collate,
    make_sample,
    rng_for,
    train_spans,
)

CHECKPOINT_NAME = "checkpoint_last.pt"
METRICS_NAME = "metrics.jsonl"
TARGETS_NAME = "targets.npz"
EVAL_MASKINGS = 4  # held-out clips are evaluated under this many different masks
DIST_TIMEOUT = datetime.timedelta(hours=6)  # rank 0 prepares the data while the others wait


# Model: the inference encoder plus the pre-training head


def _grad_mult(x: Tensor, scale: float) -> Tensor:
    """Identity forward; the gradient into x is multiplied by `scale`."""
    return x if scale == 1.0 else x * scale + x.detach() * (1.0 - scale)


class Pretrainer(nn.Module):
    """AVHubert plus the input mask embedding, the final projection and the cluster embeddings.
    `forward(batch)` returns the summed losses, hits and frame counts of the batch."""

    def __init__(self, model_config: ModelConfig, config: TrainConfig):
        super().__init__()
        self.config = config
        self.model = AVHubert(model_config)
        self.mask_emb = nn.Parameter(torch.rand(model_config.audio_feat_dim))
        self.final_proj = nn.Linear(model_config.encoder_embed_dim, config.final_dim)
        self.label_embs = nn.Parameter(torch.rand(config.clusters, config.final_dim))

    def encode(self, b: Batch) -> tuple[Tensor, Tensor]:
        """Masked inputs -> encoder output [B, T, D] and each sample's feature penalty [B] (the
        mean square of its front-end features; per sample, so that it does not depend on how
        a batch is split)."""
        m, g = self.model, self.config.feature_grad_mult
        audio = torch.where(b.mask_audio[:, None, :], self.mask_emb[None, :, None], b.audio)
        fa = _grad_mult(m.feature_extractor_audio(audio), g)
        # One clip at a time through the ResNet: BatchNorm statistics per clip, so the result
        # does not depend on how a batch is split across processes.
        fv = [m.feature_extractor_video(b.video[i : i + 1, :, :n]) for i, n in enumerate(b.lengths)]
        t = b.audio.shape[-1]
        fv = _grad_mult(torch.cat([F.pad(x, (0, 0, 0, t - x.shape[1])) for x in fv]), g)
        fa, fv = fa * b.keep[:, 0, None, None], fv * b.keep[:, 1, None, None]
        lengths = torch.tensor(b.lengths, device=fa.device)
        padding = torch.arange(t, device=fa.device)[None] >= lengths[:, None]
        square = torch.cat([fa, fv], -1).float().pow(2).mean(-1).masked_fill(padding, 0.0)
        x = m.combine(fa, fv)
        return m.encoder(x, padding if padding.any() else None, None), square.sum(1) / lengths

    def forward(self, b: Batch) -> dict[str, Tensor]:
        x, pen = self.encode(b)
        proj = F.normalize(self.final_proj(x).float(), dim=-1)
        logits = proj @ F.normalize(self.label_embs.float(), dim=-1).T / self.config.logit_temp
        masked = (b.mask_audio | b.mask_video) & b.valid
        unmasked = ~(b.mask_audio | b.mask_video) & b.valid
        out = {"n_masked": masked.sum(), "n_unmasked": unmasked.sum()}
        for name, sel in (("masked", masked), ("unmasked", unmasked)):
            ce = F.cross_entropy(logits[sel], b.targets[sel], reduction="sum")
            out[f"ce_{name}"] = ce
            out[f"correct_{name}"] = (logits[sel].argmax(-1) == b.targets[sel]).sum()
        config = self.config
        out["loss_sum"] = (
            out["ce_masked"]
            + config.unmasked_weight * out["ce_unmasked"]
            + config.feature_pen_weight * (pen * masked.sum(1)).sum()
        )
        return out


# Loop


@dataclass
class Dist:
    rank: int
    world: int
    device: torch.device


def setup_distributed(device: str | None = None) -> Dist:
    """One process, or one of WORLD_SIZE started by torchrun (NCCL on GPUs, gloo on CPUs)."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"
        dist.init_process_group(backend, timeout=DIST_TIMEOUT)
    rank = dist.get_rank() if dist.is_initialized() else 0
    world = dist.get_world_size() if dist.is_initialized() else 1
    if device is None and torch.cuda.is_available():
        dev = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(dev)
    else:
        dev = torch.device(device or "cpu")
    return Dist(rank, world, dev)


def _amp(config: TrainConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: bfloat16 where the GPU has it, else float16; float32 (None) on CPU
    unless bfloat16 is asked for."""
    if config.dtype == "float32" or (config.dtype == "auto" and device.type != "cuda"):
        return None
    if config.dtype == "float16" and device.type != "cuda":
        import warnings

        warnings.warn("float16 training needs a GPU; training in float32", stacklevel=2)
        return None
    if config.dtype == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return getattr(torch, config.dtype)


def lr_factor(step: int, config: TrainConfig) -> float:
    """Linear warm-up to 1, then linear decay to 0 at max_steps (step counts finished updates)."""
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    left = config.max_steps - config.warmup_steps
    return max(0.0, 1.0 - (step - config.warmup_steps) / max(left, 1))


def micro_batches(data, targets, schedule, config, step: int, ds: Dist) -> list[Batch]:
    """This process's micro-batches of update `step`: global sample indices are laid out
    micro-batch by micro-batch, process by process."""
    per = config.batch_windows // (ds.world * config.grad_accum)
    out = []
    for m in range(config.grad_accum):
        first = step * config.batch_windows + (m * ds.world + ds.rank) * per
        samples = [
            make_sample(data, targets, schedule.window(g), config, rng_for(config.seed, 1, g))
            for g in range(first, first + per)
        ]
        out.append(collate(samples).to(ds.device))
    return out


_STATS = ("loss_sum", "ce_masked", "n_masked", "n_unmasked", "correct_masked", "correct_unmasked")


def train_step(ddp, trainer, opt, sched, scaler, batches, ds: Dist, amp) -> dict:
    """One update: forward/backward of every micro-batch, gradients summed over the global
    batch and divided by its number of masked frames, clipped, one optimiser step."""
    sums = torch.zeros(len(_STATS), dtype=torch.float64, device=ds.device)
    for m, b in enumerate(batches):
        sync = m == len(batches) - 1 or ds.world == 1
        with contextlib.nullcontext() if sync else ddp.no_sync(), _autocast(ds.device, amp):
            out = ddp(b)
            scaler.scale(out["loss_sum"]).backward()
        sums += torch.stack([out[k].detach().double() for k in _STATS])
    if ds.world > 1:
        dist.all_reduce(sums)
    stats = dict(zip(_STATS, sums.tolist(), strict=True))
    scaler.unscale_(opt)
    scale = ds.world / max(stats["n_masked"], 1.0)  # DDP averages over processes: undo that
    params = [p for p in trainer.parameters() if p.grad is not None]
    for p in params:
        p.grad.mul_(scale)
    stats["grad_norm"] = float(nn.utils.clip_grad_norm_(params, trainer.config.clip_norm))
    stats["lr"] = opt.param_groups[0]["lr"]
    scaler.step(opt)
    scaler.update()
    sched.step()
    opt.zero_grad(set_to_none=True)
    return stats


def _autocast(device: torch.device, amp: torch.dtype | None):
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=amp)


@torch.no_grad()
def evaluate(trainer: Pretrainer, data, targets, config, device, amp) -> dict:
    """Masked prediction on the held-out tail of every clip (eval mode, both modalities, fixed
    masks): accuracy, loss per masked frame, and chance (the commonest cluster's share)."""
    spans = dict(train_spans(data, config))
    trainer.eval()
    total = {"n": 0.0, "correct": 0.0, "ce": 0.0}
    counts = np.zeros(config.clusters)
    for clip in range(len(data)):
        start = spans.get(clip, data.frames(clip))
        n = data.frames(clip) - start
        if n < config.mask_len_audio:
            continue
        window = (clip, start, n)
        samples = [
            make_sample(data, targets, window, config, rng_for(config.seed, 2, clip, r), False)
            for r in range(EVAL_MASKINGS)
        ]
        b = collate(samples).to(device)
        with _autocast(device, amp):
            out = trainer(b)
        total["n"] += float(out["n_masked"])
        total["correct"] += float(out["correct_masked"])
        total["ce"] += float(out["ce_masked"])
        sel = ((b.mask_audio | b.mask_video) & b.valid).cpu()
        counts += np.bincount(b.targets.cpu()[sel].numpy(), minlength=config.clusters)
    trainer.train()
    n = max(total["n"], 1.0)
    return {
        "heldout_accuracy_masked": total["correct"] / n,
        "heldout_loss": total["ce"] / n,
        "heldout_chance": float(counts.max() / n),
        "heldout_frames": int(total["n"]),
    }


def save_checkpoint(path: Path, trainer, opt, sched, scaler, step: int, meta: dict) -> None:
    """A plain dict: format, ModelConfig as a dict and the encoder's state dict (all that
    `load_checkpoint` reads), then what resuming needs. Nothing pickled but tensors."""
    head = {k: v for k, v in trainer.state_dict().items() if not k.startswith("model.")}
    obj = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": asdict(trainer.model.config),
        "model": trainer.model.state_dict(),
        "head": head,
        "optimizer": opt.state_dict(),
        "scheduler": sched.state_dict(),
        "scaler": scaler.state_dict(),
        "step": step,
        "train_config": asdict(trainer.config),
        "rng": {"torch": torch.get_rng_state()},
        "targets": meta,
    }
    if torch.cuda.is_available():
        obj["rng"]["cuda"] = torch.cuda.get_rng_state_all()
    with replacing(path) as tmp:
        torch.save(obj, tmp)


# Fields that may change when a run is resumed; any other change would not repeat the run.
_RESUMABLE = ("max_steps", "log_every", "eval_every", "checkpoint_every")


def load_for_resume(path: Path, trainer, opt, sched, scaler) -> int:
    """Restore model, head, optimiser, schedule, scaler and RNG; returns the step."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    saved = TrainConfig.from_dict(obj["train_config"])
    changed = [
        f.name
        for f in fields(TrainConfig)
        if f.name not in _RESUMABLE and getattr(saved, f.name) != getattr(trainer.config, f.name)
    ]
    if changed or obj["config"] != asdict(trainer.model.config):
        raise SpeechForensicsError(
            f"{path}: was trained with other settings ({', '.join(changed) or 'model'}); "
            "resume with the same --config and --set, or start a new --out"
        )
    trainer.load_state_dict({**obj["head"], **{f"model.{k}": v for k, v in obj["model"].items()}})
    opt.load_state_dict(obj["optimizer"])
    sched.load_state_dict(obj["scheduler"])
    scaler.load_state_dict(obj["scaler"])
    torch.set_rng_state(obj["rng"]["torch"])
    if "cuda" in obj["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(obj["rng"]["cuda"])
    return int(obj["step"])


def train(
    model_config: ModelConfig,
    config: TrainConfig,
    data: DataCache,
    targets: list[np.ndarray],
    out: Path,
    resume: bool = False,
    stop_at: int | None = None,
    progress: bool = False,
    device: str | None = None,
    meta: dict | None = None,
) -> list[dict]:
    """Train from scratch (or from RUN_DIR's last checkpoint with `resume`) to config.max_steps,
    or only to `stop_at`; returns the metrics lines written by this call."""
    ds = setup_distributed(device)
    if config.batch_windows % (ds.world * config.grad_accum):
        raise SpeechForensicsError(
            f"batch_windows={config.batch_windows} must be a multiple of processes x grad_accum "
            f"= {ds.world} x {config.grad_accum}"
        )
    torch.manual_seed(config.seed)  # the same initial weights in every process
    trainer = Pretrainer(model_config, config).to(ds.device)
    opt = torch.optim.AdamW(
        trainer.parameters(),
        lr=config.lr,
        betas=(config.adam_beta1, config.adam_beta2),
        eps=config.adam_eps,
        weight_decay=config.weight_decay,
    )
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config))
    amp = _amp(config, ds.device)
    scaler = torch.amp.GradScaler(ds.device.type, enabled=amp == torch.float16)
    step = load_for_resume(out / CHECKPOINT_NAME, trainer, opt, sched, scaler) if resume else 0
    ddp = trainer
    if ds.world > 1:
        ids = [ds.device.index] if ds.device.type == "cuda" else None
        ddp = nn.parallel.DistributedDataParallel(trainer, device_ids=ids)
    loop = _Loop(ddp, trainer, opt, sched, scaler, ds, amp, out, meta or {})
    return loop.run(
        data, targets, step, min(stop_at or config.max_steps, config.max_steps), progress
    )


class _Loop:
    """The training loop's state between steps: what to log, when to evaluate and save."""

    def __init__(self, ddp, trainer, opt, sched, scaler, ds, amp, out, meta):
        self.ddp, self.trainer, self.opt, self.sched, self.scaler = ddp, trainer, opt, sched, scaler
        self.ds, self.amp, self.out, self.meta = ds, amp, out, meta
        self.config = trainer.config

    def run(self, data, targets, step: int, last: int, progress: bool) -> list[dict]:
        from tqdm import tqdm

        config, main = self.config, self.ds.rank == 0
        schedule, lines = WindowSchedule(data, config), []
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            _truncate_metrics(self.out / METRICS_NAME, step)
        bar = tqdm(
            total=last,
            initial=step,
            desc="pretraining",
            unit="step",
            disable=not (progress and main),
        )
        t0 = time.perf_counter()
        while step < last:
            batches = micro_batches(data, targets, schedule, config, step, self.ds)
            frames = sum(sum(b.lengths) for b in batches) * self.ds.world
            stats = train_step(
                self.ddp,
                self.trainer,
                self.opt,
                self.sched,
                self.scaler,
                batches,
                self.ds,
                self.amp,
            )
            step += 1
            line = self._line(step, stats, frames, time.perf_counter() - t0)
            evaluated = main and (step % config.eval_every == 0 or step == last)
            if evaluated:
                line.update(evaluate(self.trainer, data, targets, config, self.ds.device, self.amp))
            if main and (evaluated or step % config.log_every == 0):
                _append_metrics(self.out / METRICS_NAME, line)
                lines.append(line)
            if main and (step % config.checkpoint_every == 0 or step == last):
                path = self.out / CHECKPOINT_NAME
                save_checkpoint(
                    path, self.trainer, self.opt, self.sched, self.scaler, step, self.meta
                )
            bar.update(1)
            bar.set_postfix(loss=f"{line['loss']:.3f}", acc=f"{line['accuracy_masked']:.3f}")
        bar.close()
        if self.ds.world > 1:
            dist.barrier()
        return lines

    def _line(self, step: int, stats: dict, frames: int, elapsed: float) -> dict:
        n, u = max(stats["n_masked"], 1.0), max(stats["n_unmasked"], 1.0)
        return {
            "step": step,
            "loss": stats["loss_sum"] / n,
            "ce_masked": stats["ce_masked"] / n,
            "accuracy_masked": stats["correct_masked"] / n,
            "accuracy_unmasked": stats["correct_unmasked"] / u,
            "lr": stats["lr"],
            "grad_norm": stats["grad_norm"],
            "frames": frames,
            "elapsed_s": round(elapsed, 3),
        }


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the lines up to `step` (a resumed run rewrites what came after its checkpoint)."""
    if path.exists():
        lines = [x for x in path.read_text().splitlines() if x and json.loads(x)["step"] <= step]
        path.write_text("".join(x + "\n" for x in lines))


def _append_metrics(path: Path, line: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(line) + "\n")


# The whole command: manifest -> cache -> targets -> training


def genuine_videos(manifest: Path, root: Path | None) -> list[Path]:
    """The genuine (label 1) videos of a list that `evaluate` reads."""
    from .lists import read_list

    paths = [item.path for item in read_list(manifest, root) if item.label == 1]
    if not paths:
        raise SpeechForensicsError(f"{manifest}: lists no genuine videos to pretrain on")
    return paths


def run(
    manifest: Path,
    out: Path,
    preset: str = "tiny",
    root: Path | None = None,
    cache: Path | None = None,
    overrides: tuple[str, ...] = (),
    resume: bool = False,
    targets_from: Path | None = None,
    progress: bool = False,
    report=print,
) -> tuple[list[dict], list[str]]:
    """`speechforensics pretrain`: the genuine videos of `manifest` prepared into `cache`
    (default RUN_DIR/data) once, their targets, then training; under torchrun every process
    runs this and rank 0 prepares while the others wait. Returns the metrics lines written and
    one line per video that could not be prepared (and was left out)."""
    from . import pretrain_data as pd

    out, cache = Path(out), Path(cache) if cache else Path(out) / "data"
    model_config, config = PRESETS[preset]
    config = parse_overrides(config, list(overrides))
    if (out / CHECKPOINT_NAME).exists() and not resume:
        raise SpeechForensicsError(f"{out}: holds a run already; pass --resume, or another --out")
    if resume and not (out / CHECKPOINT_NAME).exists():
        raise SpeechForensicsError(f"{out}: no {CHECKPOINT_NAME} to resume from")
    ds = setup_distributed()
    paths, errors = genuine_videos(manifest, root), []
    if ds.rank == 0:
        report(f"pretraining {preset}: {_changes(PRESETS[preset][1], config)}")
        data, errors = pd.build_cache(paths, cache, progress)
        for line in errors:
            report_skip(line)
        pd.prepare_targets(data, config, out / TARGETS_NAME, targets_from)
    if ds.world > 1:
        dist.barrier()
    data = pd.open_cache(paths, cache)
    labels, meta = pd.prepare_targets(data, config, out / TARGETS_NAME, targets_from)
    lines = train(model_config, config, data, labels, out, resume, progress=progress, meta=meta)
    return lines, errors


def _changes(base: TrainConfig, config: TrainConfig) -> str:
    diff = [
        f"{f.name}={getattr(config, f.name)}"
        for f in fields(TrainConfig)
        if getattr(config, f.name) != getattr(base, f.name)
    ]
    return "overrides " + ", ".join(diff) if diff else "preset settings"
