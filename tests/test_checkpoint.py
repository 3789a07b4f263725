"""Checkpoints are read safely: the released layout, fp16 weights, safetensors, bad files."""

import json
import os
import pickle
from collections import OrderedDict

import numpy as np
import pytest
import torch

from speechforensics.avhubert.checkpoint import (
    _STAND_INS,
    _unpickle,
    convert,
    load_checkpoint,
    read_checkpoint,
)
from speechforensics.errors import SpeechForensicsError


@pytest.fixture(scope="module")
def small(fixture_checkpoints):
    return fixture_checkpoints("small_pretrain")


@pytest.fixture(scope="module")
def finetuned(fixture_checkpoints):
    return fixture_checkpoints("small_finetuned_s2s")


@pytest.fixture(scope="module")
def audio(reference):
    return torch.from_numpy(reference("inputs_T30")["audio"])


def test_official_files_need_the_stand_ins(small):
    """Plain weights_only loading fails on the official layout: the fairseq classes it pickles
    are what the stand-ins exist for (and all they are allowed to be)."""
    with pytest.raises(pickle.UnpicklingError, match="fairseq.data.dictionary.Dictionary"):
        torch.load(small, weights_only=True)
    assert {name for _, name in _STAND_INS} >= {
        "fairseq.data.dictionary.Dictionary",
        "fairseq.data.encoders.sentencepiece_bpe.SentencepieceBPE",
        "sentencepiece.SentencePieceProcessor",
    }


def test_reads_architecture_from_the_checkpoint(small, finetuned):
    pre, fine = read_checkpoint(small), read_checkpoint(finetuned)
    assert pre.kind == "pre-trained" and fine.kind == "fine-tuned"
    assert pre.config == fine.config
    c = pre.config
    assert (
        c.encoder_layers,
        c.encoder_embed_dim,
        c.encoder_ffn_embed_dim,
        c.encoder_attention_heads,
    ) == (2, 64, 128, 4)
    assert pre.stored_dtype == torch.float32 and fine.stored_dtype == torch.float16
    assert not any(
        k.startswith(("decoder.", "final_proj", "encoder.w2v_model")) for k in fine.state_dict
    )


def test_load_returns_float32_eval_model(finetuned):
    model = load_checkpoint(finetuned, device="cpu")
    assert not model.training
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert {p.device.type for p in model.parameters()} == {"cpu"}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_device_argument_moves_the_model(small, audio):
    cpu, gpu = load_checkpoint(small), load_checkpoint(small, device="cuda")
    assert {p.device.type for p in gpu.parameters()} == {"cuda"}
    out = gpu.extract_features(audio=audio.cuda()).cpu()
    np.testing.assert_allclose(out.numpy(), cpu.extract_features(audio=audio).numpy(), atol=1e-4)


def test_numpy_leftovers_in_extra_state_are_tolerated(small, tmp_path, audio):
    raw = _unpickle(small)
    path = tmp_path / "meters.pt"
    meters = {"loss": np.float64(1.5), "hist": np.arange(3.0)}
    torch.save({"cfg": raw["cfg"], "model": raw["model"], "extra_state": meters}, path)
    assert torch.equal(
        load_checkpoint(path).extract_features(audio=audio),
        load_checkpoint(small).extract_features(audio=audio),
    )


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pt"
    torch.save({"cfg": {"model": {}}, "model": OrderedDict(), "extra_state": Exploit()}, path)
    with pytest.raises(SpeechForensicsError, match=r"evil\.pt: refused to load: .*system"):
        read_checkpoint(path)
    assert not marker.exists()


def test_legacy_and_fabricated_checkpoints(small, tmp_path, audio):
    """The loader reads cfg + model from any torch.save file, zip or legacy, and checks shapes."""
    raw = _unpickle(small)
    plain = {"cfg": raw["cfg"], "model": raw["model"]}
    legacy = tmp_path / "legacy.pt"
    torch.save(plain, legacy, _use_new_zipfile_serialization=False)
    expected = load_checkpoint(small).extract_features(audio=audio)
    assert torch.equal(load_checkpoint(legacy).extract_features(audio=audio), expected)

    wrong = tmp_path / "wrong.pt"
    cfg = json.loads(json.dumps(raw["cfg"]))
    cfg["model"]["encoder_embed_dim"] = 128
    torch.save({"cfg": cfg, "model": raw["model"]}, wrong)
    with pytest.raises(SpeechForensicsError, match=r"wrong\.pt: weights do not fit"):
        load_checkpoint(wrong)


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not a PyTorch checkpoint"),
        (b"hello, I am text\n", "not a PyTorch checkpoint"),
        (b"PK\x03\x04" + bytes(100), "damaged or truncated"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    with pytest.raises(SpeechForensicsError, match=rf"bad\.pt: .*{message}"):
        read_checkpoint(path)


def test_truncated_checkpoint(small, tmp_path):
    path = tmp_path / "truncated.pt"
    path.write_bytes(small.read_bytes()[:5_000_000])
    with pytest.raises(SpeechForensicsError, match="truncated"):
        read_checkpoint(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpeechForensicsError, match="no such checkpoint file"):
        read_checkpoint(tmp_path / "absent.pt")
    with pytest.raises(SpeechForensicsError, match="is a directory"):
        read_checkpoint(tmp_path)


def test_convert_round_trip_without_pickle(finetuned, tmp_path, audio):
    out = convert(finetuned, tmp_path / "model.safetensors")
    header_len = int.from_bytes(out.read_bytes()[:8], "little")
    header = json.loads(out.read_bytes()[8 : 8 + header_len])  # pure JSON + raw tensor bytes
    meta = json.loads(header["__metadata__"]["speechforensics"])
    assert meta["source"] == {"file": finetuned.name, "kind": "fine-tuned", "dtype": "float16"}
    assert json.loads(out.with_suffix(".json").read_text()) == meta
    converted = read_checkpoint(out)
    assert converted.kind == "converted" and converted.stored_dtype == torch.float16
    expected = load_checkpoint(finetuned).extract_features(audio=audio)
    assert torch.equal(load_checkpoint(out).extract_features(audio=audio), expected)


def test_converted_file_damage_is_reported(small, tmp_path):
    out = convert(small, tmp_path / "model.safetensors")
    out.write_bytes(out.read_bytes()[: out.stat().st_size // 2])
    with pytest.raises(
        SpeechForensicsError, match=r"model\.safetensors: not a readable safetensors"
    ):
        read_checkpoint(out)
    with pytest.raises(SpeechForensicsError, match="must end in .safetensors"):
        convert(small, tmp_path / "model.bin")
