"""Reading AV-HuBERT checkpoints safely: the released fairseq files and our safetensors form.

A checkpoint is untrusted input. The released `.pt` files are pickles that name a few fairseq and
sentencepiece classes; they are read with torch's restricted unpickler (`weights_only=True`) with
inert stand-ins registered under exactly those names, so no code from the file ever runs and
anything else the pickle asks for is refused. After `convert`, a checkpoint is a safetensors file
holding only tensors and a JSON config: no pickle at all.
"""

import json
import pickle
import re
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..errors import SpeechForensicsError
from ..features import AUDIO_STACK, MODEL_CROP_PX, PIXEL_MEAN, PIXEL_STD
from ..files import replacing
from .model import AVHubert, ModelConfig

FORMAT = "speechforensics-avhubert"
FORMAT_VERSION = 1

# The original AVHubertConfig defaults, used for any field a released cfg leaves out.
_ORIGINAL_DEFAULTS = dict(asdict(ModelConfig()), layer_norm_first=False)
# Keys of the released files that the encoder does not use: the pre-training head and the
# input mask embedding (present in pre-trained and fine-tuned files), the seq2seq decoder.
_DROPPED_KEYS = ("mask_emb", "label_embs_concat", "final_proj.weight", "final_proj.bias")
_DROPPED_PREFIXES = ("decoder.",)
_FINETUNED_PREFIX = "encoder.w2v_model."
_POS_CONV = "encoder.pos_conv."


class _Inert:
    """Stand-in for a pickled fairseq/sentencepiece/numpy object: keeps its state, runs nothing."""

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs):
        self.args = args

    def __setstate__(self, state):
        self.state = state


# The only classes (besides torch's own tensor machinery) that the released files pickle, plus
# numpy scalars and arrays that fairseq's meters may leave in `extra_state`. All are ignored.
_STAND_INS = [
    (_Inert, name)
    for name in (
        "fairseq.data.dictionary.Dictionary",
        "fairseq.data.encoders.sentencepiece_bpe.SentencepieceBPE",
        "sentencepiece.SentencePieceProcessor",
        "numpy.core.multiarray.scalar",
        "numpy._core.multiarray.scalar",
        "numpy.core.multiarray._reconstruct",
        "numpy._core.multiarray._reconstruct",
        "numpy.ndarray",
        "numpy.dtype",
    )
]


@dataclass
class Checkpoint:
    """An encoder's config and state dict (our key names, float tensors as stored)."""

    config: ModelConfig
    state_dict: dict[str, torch.Tensor]
    kind: str  # "pre-trained", "fine-tuned", "converted" or "pretrained here" (our own)
    stored_dtype: torch.dtype

    @property
    def num_parameters(self) -> int:
        return sum(
            t.numel()
            for k, t in self.state_dict.items()
            if "running_" not in k and "num_batches" not in k
        )


def read_checkpoint(path: str | Path) -> Checkpoint:
    """Read a released AV-HuBERT `.pt` file or a converted `.safetensors` file, without loading
    the model. Raises SpeechForensicsError, naming the file, for anything it cannot read safely."""
    path = Path(path)
    if not path.is_file():
        what = (
            "is a directory, not a checkpoint file" if path.is_dir() else "no such checkpoint file"
        )
        raise SpeechForensicsError(f"{path}: {what}")
    if _is_safetensors(path):
        return _read_safetensors(path)
    obj = _unpickle(path)
    if obj.get("format") == FORMAT:
        return _read_own(path, obj)
    return _read_fairseq(path, obj)


def load_checkpoint(
    path: str | Path, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> AVHubert:
    """The encoder of a checkpoint, in eval mode, on `device`.

    `dtype=torch.bfloat16` runs the model in bfloat16 (LayerNorm, GELU and outputs stay float32).
    """
    ckpt = read_checkpoint(path)
    with torch.device("meta"):
        model = AVHubert(ckpt.config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in ckpt.state_dict.items()}
    try:
        model.load_state_dict(state, strict=True, assign=True)
    except RuntimeError as e:
        first = str(e).splitlines()[1].strip() if "\n" in str(e) else str(e)
        raise SpeechForensicsError(
            f"{path}: weights do not fit the architecture in its config ({first})"
        ) from e
    return model.prepare_for_inference(dtype).to(device)


def convert(src: str | Path, out: str | Path) -> Path:
    """Write a checkpoint as `out` (.safetensors, config in its metadata) and `out`.json.

    Weights keep the dtype they were stored in; loading the result runs no pickle at all.
    """
    ckpt, out = read_checkpoint(src), Path(out)
    if out.suffix != ".safetensors":
        raise SpeechForensicsError(
            f"{out}: the converted checkpoint's name must end in .safetensors"
        )
    meta = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "config": asdict(ckpt.config),
        "source": {
            "file": Path(src).name,
            "kind": ckpt.kind,
            "dtype": str(ckpt.stored_dtype).removeprefix("torch."),
        },
    }
    tensors = {k: v.contiguous() for k, v in ckpt.state_dict.items()}
    with replacing(out) as tmp:
        save_file(tensors, tmp, metadata={"speechforensics": json.dumps(meta)})
    out.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    return out


def _is_safetensors(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{"  # 8-byte little-endian header length, then JSON


def _read_safetensors(path: Path) -> Checkpoint:
    try:
        with safe_open(path, framework="pt") as f:
            meta = json.loads((f.metadata() or {}).get("speechforensics", "null"))
            state = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
    except (SafetensorError, OSError, ValueError) as e:
        raise SpeechForensicsError(f"{path}: not a readable safetensors checkpoint ({e})") from e
    if meta is None:
        sidecar = path.with_suffix(".json")
        if not sidecar.is_file():
            raise SpeechForensicsError(f"{path}: safetensors file without a speechforensics config")
        meta = json.loads(sidecar.read_text())
    if meta.get("format") != FORMAT or meta.get("version") != FORMAT_VERSION:
        raise SpeechForensicsError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} checkpoint")
    config = ModelConfig.from_dict(meta["config"])
    return Checkpoint(config, state, "converted", _stored_dtype(state))


def _read_own(path: Path, obj: dict) -> Checkpoint:
    """Our own checkpoints (pretraining): a plain dict with the format version, the ModelConfig
    as a dict and the encoder's state dict under our key names; nothing pickled but tensors."""
    if obj.get("version") != FORMAT_VERSION or not isinstance(obj.get("config"), dict):
        raise SpeechForensicsError(f"{path}: not a {FORMAT} v{FORMAT_VERSION} checkpoint")
    try:
        config = ModelConfig.from_dict(obj["config"])
    except (TypeError, ValueError) as e:
        raise SpeechForensicsError(f"{path}: unsupported model config ({e})") from e
    state = obj["model"]
    return Checkpoint(config, state, "pretrained here", _stored_dtype(state))


def _unpickle(path: Path) -> dict:
    try:
        with torch.serialization.safe_globals(_STAND_INS):
            obj = torch.load(
                path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path)
            )
    except Exception as e:
        refused = re.search(
            r"GLOBAL (\S+)|unrecognized function (\S+)|Can only \w+ \S+ .* got (.+)", str(e)
        )
        if isinstance(e, pickle.UnpicklingError) and refused:
            what = next(g for g in refused.groups() if g)
            raise SpeechForensicsError(
                f"{path}: refused to load: its pickle asks for {what}, which an AV-HuBERT "
                "checkpoint never needs; nothing from it was run"
            ) from e
        with open(path, "rb") as f:
            zipped = f.read(4) == b"PK\x03\x04"
        what = (
            "a damaged or truncated checkpoint archive"
            if zipped
            else "not a PyTorch checkpoint (or a damaged one)"
        )
        raise SpeechForensicsError(f"{path}: {what}; download it again") from e
    if not isinstance(obj, dict) or "model" not in obj:
        raise SpeechForensicsError(
            f"{path}: not an AV-HuBERT checkpoint (no 'model' weights in it)"
        )
    return obj


def _read_fairseq(path: Path, obj: dict) -> Checkpoint:
    cfg = obj.get("cfg")
    if not isinstance(cfg, dict) or not isinstance(cfg.get("model"), dict):
        raise SpeechForensicsError(
            f"{path}: checkpoint has no fairseq 'cfg' with a 'model' section"
        )
    model_cfg, task_cfg, prefix, kind = cfg["model"], cfg.get("task") or {}, "", "pre-trained"
    if isinstance(model_cfg.get("w2v_args"), dict):  # fine-tuned: the encoder's own cfg inside
        inner = model_cfg["w2v_args"]
        model_cfg, task_cfg = inner.get("model") or {}, inner.get("task") or task_cfg
        prefix, kind = _FINETUNED_PREFIX, "fine-tuned"
    name = model_cfg.get("_name")
    if name not in (None, "av_hubert"):
        raise SpeechForensicsError(f"{path}: model '{name}' is not AV-HuBERT")
    config = _model_config(path, model_cfg)
    _check_preprocessing(path, task_cfg)
    raw = obj["model"]
    return Checkpoint(config, _map_keys(path, raw, prefix), kind, _stored_dtype(raw))


def _model_config(path: Path, model_cfg: dict) -> ModelConfig:
    if model_cfg.get("sub_encoder_layers", 0):
        raise SpeechForensicsError(f"{path}: per-modality sub-encoders are not supported")
    values = {k: model_cfg.get(k, default) for k, default in _ORIGINAL_DEFAULTS.items()}
    try:
        return ModelConfig(**values)
    except ValueError as e:
        raise SpeechForensicsError(f"{path}: unsupported model config ({e})") from e


def _check_preprocessing(path: Path, task: dict) -> None:
    """The model only makes sense on the inputs it was trained on: refuse other preprocessing."""
    expected = {
        "image_crop_size": MODEL_CROP_PX,
        "image_mean": PIXEL_MEAN,
        "image_std": PIXEL_STD,
        "stack_order_audio": AUDIO_STACK,
        "normalize": True,
    }
    for key, value in expected.items():
        if key in task and task[key] != value:
            raise SpeechForensicsError(
                f"{path}: trained with {key}={task[key]!r}; speechforensics implements {value!r}"
            )


def _map_keys(path: Path, raw: dict, prefix: str) -> dict[str, torch.Tensor]:
    """Released state dict -> ours: every key used or explicitly dropped, the pos conv folded."""
    state = {}
    for key, tensor in raw.items():
        if key.startswith(_DROPPED_PREFIXES):
            continue
        if not key.startswith(prefix):
            raise SpeechForensicsError(f"{path}: unexpected weight '{key}'")
        key = key[len(prefix) :]
        if key not in _DROPPED_KEYS:
            state[key] = tensor
    g, v = state.pop(_POS_CONV + "0.weight_g", None), state.pop(_POS_CONV + "0.weight_v", None)
    if g is None or v is None or _POS_CONV + "0.bias" not in state:
        raise SpeechForensicsError(f"{path}: no positional convolution weights (not AV-HuBERT?)")
    # The original recomputes this weight norm (over dims 0 and 1, per kernel tap) in float32 on
    # every forward; computing it the same way once here reproduces its features exactly.
    state[_POS_CONV + "weight"] = torch._weight_norm(v.float(), g.float(), 2)
    state[_POS_CONV + "bias"] = state.pop(_POS_CONV + "0.bias")
    return state


def _stored_dtype(state: dict[str, torch.Tensor]) -> torch.dtype:
    dtypes = [t.dtype for t in state.values() if t.is_floating_point()]
    return max(set(dtypes), key=dtypes.count) if dtypes else torch.float32
