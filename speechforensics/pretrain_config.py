"""Pretraining settings: `TrainConfig` (defaults: AV-HuBERT BASE pre-training) and the presets
that `speechforensics pretrain --config` names, each a (ModelConfig, TrainConfig) pair."""

from dataclasses import dataclass, fields, replace

from .avhubert.model import LARGE, ModelConfig, config_from_dict
from .errors import SpeechForensicsError


@dataclass(frozen=True)
class TrainConfig:
    """Pretraining settings. Defaults: AV-HuBERT BASE pre-training (conf/pretrain/base_*.yaml:
    masking, modality dropout, head, loss weights, Adam, clipping, warm-up; 32 GPUs x 1000
    frames per update), as far as they apply to this code (no dropout inside the encoder)."""

    # data
    window_frames: int = 500  # frames per training sample (the original max_sample_size)
    min_frames: int = 25  # frames: clips with less training video are left out
    heldout_fraction: float = 0.1  # the last 10 % of every clip is held out for evaluation
    batch_windows: int = 64  # samples per update, all processes and accumulation steps together
    grad_accum: int = 1  # micro-batches per update in each process
    image_aug: bool = True  # random 88 px crop of the 96 px mouth and horizontal flip
    # targets
    clusters: int = 100  # k-means clusters (iteration 1: 100 on MFCC; later 500 ... 2000)
    kmeans_frames: int = 250_000  # frames sampled to fit k-means
    target_layer: int = 9  # block of the previous iteration's model clustered (iteration >= 2)
    # masking and loss
    mask_prob_video: float = 0.3
    mask_len_video: int = 5
    mask_prob_audio: float = 0.8
    mask_len_audio: int = 10
    modality_dropout: float = 0.5  # probability that one modality is dropped
    audio_dropout: float = 0.5  # given a drop, probability that it is the audio
    final_dim: int = 256  # width of the projection and the cluster embeddings
    logit_temp: float = 0.1
    unmasked_weight: float = 0.0  # weight of the loss on unmasked frames
    feature_pen_weight: float = 10.0
    feature_grad_mult: float = 0.1  # gradient scale into the front ends
    # optimisation
    max_steps: int = 400_000
    lr: float = 5e-4
    warmup_steps: int = 32_000  # linear warm-up, then linear decay to 0 at max_steps
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_eps: float = 1e-6
    clip_norm: float = 10.0
    dtype: str = "auto"  # auto (bfloat16 if the GPU has it, else float16; float32 on CPU) or one
    # bookkeeping
    seed: int = 1
    log_every: int = 100  # steps between metrics lines
    eval_every: int = 1000  # steps between held-out evaluations
    checkpoint_every: int = 1000  # steps between checkpoints (and one at the end)

    def __post_init__(self):
        if self.dtype not in ("auto", "bfloat16", "float16", "float32"):
            raise SpeechForensicsError(
                f"dtype must be auto, bfloat16, float16 or float32, not {self.dtype!r}"
            )
        if self.window_frames < self.min_frames or self.min_frames < 1:
            raise SpeechForensicsError(
                f"window_frames ({self.window_frames}) must be >= min_frames "
                f"({self.min_frames}) >= 1"
            )
        if min(self.batch_windows, self.grad_accum, self.max_steps, self.clusters) < 1:
            raise SpeechForensicsError(
                "batch_windows, grad_accum, max_steps, clusters must be >= 1"
            )

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        try:
            return config_from_dict(cls, d)
        except ValueError as e:
            raise SpeechForensicsError(str(e)) from e


TINY_MODEL = ModelConfig(
    encoder_layers=2, encoder_embed_dim=64, encoder_ffn_embed_dim=256, encoder_attention_heads=4
)
TINY = TrainConfig(
    window_frames=64,
    heldout_fraction=0.2,
    batch_windows=4,
    clusters=16,
    kmeans_frames=20_000,
    target_layer=1,
    final_dim=32,
    max_steps=200,
    lr=2e-3,
    warmup_steps=10,
    log_every=1,
    eval_every=10,
    checkpoint_every=50,
)
BASE = TrainConfig()
LARGE_TRAIN = TrainConfig(batch_windows=128, target_layer=18)  # 64 GPUs in the original
# The --config names: (model, training) pairs.
PRESETS = {"tiny": (TINY_MODEL, TINY), "base": (ModelConfig(), BASE), "large": (LARGE, LARGE_TRAIN)}


def parse_overrides(config: TrainConfig, items: list[str]) -> TrainConfig:
    """`KEY=VALUE` strings -> a TrainConfig with those fields changed (values typed by field)."""
    types = {f.name: f.type for f in fields(TrainConfig)}
    changes = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or key not in types:
            raise SpeechForensicsError(f"--set {item}: expected KEY=VALUE, KEY a TrainConfig field")
        kind = types[key]
        try:
            changes[key] = (value.lower() in ("1", "true", "yes")) if kind is bool else kind(value)
        except ValueError as e:
            raise SpeechForensicsError(f"--set {item}: {value!r} is not a {kind.__name__}") from e
    return replace(config, **changes)
