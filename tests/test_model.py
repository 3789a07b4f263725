"""The encoder reproduces the original AV-HuBERT's outputs on official-format checkpoints."""

import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechforensics.avhubert import model as model_module
from speechforensics.avhubert.checkpoint import load_checkpoint, read_checkpoint
from speechforensics.avhubert.model import LARGE, AVHubert, ModelConfig

MODALITIES = ["video", "audio", "av"]
LAYERS = ["none", "1", "2"]


@pytest.fixture(scope="module")
def inputs(reference):
    arrays = reference("inputs_T30")
    return torch.from_numpy(arrays["video"]), torch.from_numpy(arrays["audio"])


def run(model, inputs, modality: str, layer: str, **kwargs) -> np.ndarray:
    video, audio = inputs
    out = model.extract_features(
        video=None if modality == "audio" else video,
        audio=None if modality == "video" else audio,
        output_layer=None if layer == "none" else int(layer),
        **kwargs,
    )
    assert out.dtype == torch.float32
    return out.numpy()


@pytest.fixture(scope="module")
def small(fixture_checkpoints):
    return load_checkpoint(fixture_checkpoints("small_pretrain"))


@pytest.mark.parametrize("layer", LAYERS)
@pytest.mark.parametrize("modality", MODALITIES)
@pytest.mark.parametrize("name", ["small_pretrain", "small_finetuned_s2s"])
def test_small_checkpoints_match_original(
    fixture_checkpoints, reference, inputs, name, modality, layer
):
    model = load_checkpoint(fixture_checkpoints(name))
    expected = reference(name.replace("_s2s", "") + "_outputs")[f"{modality}_L{layer}"]
    np.testing.assert_allclose(run(model, inputs, modality, layer), expected, rtol=0, atol=1e-5)


def test_padded_batch_matches_original(small, reference, inputs):
    ref = reference("small_pretrain_outputs")
    video = torch.cat([inputs[0], inputs[0]])
    video[1, :, 22:] = 0.0  # padded frames, zero in normalised space, as in the reference run
    mask = torch.from_numpy(ref["pad_mask"])
    out = small.extract_features(video=video, padding_mask=mask)
    np.testing.assert_allclose(out.numpy(), ref["pad_video_out"], rtol=0, atol=1e-5)


def test_intermediate_activations_match_original(small, reference, inputs):
    ref, (video, audio) = reference("small_pretrain_outputs"), inputs
    resnet = small.feature_extractor_video.resnet(video).transpose(1, 2)  # [B, 512, T]
    expected = ref["act_video_video_resnet"]  # values up to ~11 after 17 convolutions and BNs:
    tolerance = 1e-5 * np.abs(expected).max()  # float32 rounding, relative to their scale
    np.testing.assert_allclose(resnet.numpy(), expected, rtol=0, atol=tolerance)
    for modality, kwargs in [("video", {"video": video}), ("audio", {"audio": audio})]:
        fused = small.fuse(kwargs.get("audio"), kwargs.get("video"))  # after post_extract_proj
        np.testing.assert_allclose(
            fused.numpy(), ref[f"act_{modality}_post_extract_proj"], atol=1e-5
        )


def test_video_chunks_are_seamless(small, reference, inputs, monkeypatch):
    """Chunk boundaries (here every 7 frames) must not change the result: the 3D conv sees the
    neighbouring frames of the next and previous chunk."""
    monkeypatch.setattr(model_module, "VIDEO_CHUNK_FRAMES", 7)
    expected = reference("small_pretrain_outputs")["video_Lnone"]
    np.testing.assert_allclose(run(small, inputs, "video", "none"), expected, rtol=0, atol=1e-5)


def test_inference_preparation_changes_nothing(fixture_checkpoints, reference, inputs):
    """BatchNorm folding and channels-last layout are exact rewrites of the original model."""
    ckpt = read_checkpoint(fixture_checkpoints("small_pretrain"))
    plain = AVHubert(ckpt.config)
    plain.load_state_dict(ckpt.state_dict, strict=True)
    expected = reference("small_pretrain_outputs")["video_L2"]
    np.testing.assert_allclose(run(plain.eval(), inputs, "video", "2"), expected, rtol=0, atol=1e-5)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in plain.modules())
    plain.prepare_for_inference()
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in plain.modules())
    np.testing.assert_allclose(run(plain, inputs, "video", "2"), expected, rtol=0, atol=1e-5)


def sync_score(visual: torch.Tensor, audio: torch.Tensor, max_shift: int = 15) -> float:
    """SpeechForensics' score: mean over time of the frame cosine, best of +-15 frame offsets."""
    v, a = (
        F.normalize(visual, dim=-1),
        F.pad(F.normalize(audio, dim=-1), (0, 0, max_shift, max_shift)),
    )
    t = v.shape[0]
    return max(float((v * a[s : s + t]).sum(-1).mean()) for s in range(2 * max_shift + 1))


def test_bfloat16_keeps_scores(fixture_checkpoints, inputs):
    path = fixture_checkpoints("small_pretrain")
    video, audio = inputs
    scores = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = load_checkpoint(path, dtype=dtype)
        assert model.dtype == dtype and model.layer_norm.weight.dtype == torch.float32
        v, a = model.extract_features(video=video)[0], model.extract_features(audio=audio)[0]
        scores[dtype] = sync_score(v, a)
    assert abs(scores[torch.bfloat16] - scores[torch.float32]) < 0.01


@pytest.mark.slow
@pytest.mark.parametrize("modality", MODALITIES)
def test_base_checkpoint_matches_original(fixture_checkpoints, reference, inputs, modality):
    """True BASE size. The original float32 run recomputes the positional conv's weight norm in
    float32 and so do we: against it we agree to float32 rounding; against the float64 run of the
    original both carry that rounding (about 2e-4 in layer 12, see the fixtures README)."""
    model = load_checkpoint(fixture_checkpoints("base_pretrain"))
    ref32, ref64 = reference("base_pretrain_outputs"), reference("base_pretrain_outputs_f64")
    for layer in ["none", "6", "12"]:
        out = run(model, inputs, modality, layer)
        np.testing.assert_allclose(out, ref32[f"{modality}_L{layer}"], rtol=0, atol=2e-5)
        if f"{modality}_L{layer}" in ref64:
            np.testing.assert_allclose(out, ref64[f"{modality}_L{layer}"], rtol=0, atol=5e-4)
    scores = {}
    for dtype in (torch.float32, torch.bfloat16):
        model = load_checkpoint(fixture_checkpoints("base_pretrain"), dtype=dtype)
        v, a = inputs
        scores[dtype] = sync_score(
            model.extract_features(video=v)[0], model.extract_features(audio=a)[0]
        )
    assert abs(scores[torch.bfloat16] - scores[torch.float32]) < 0.01


def test_extract_features_needs_a_modality_and_equal_lengths(small, inputs):
    with pytest.raises(ValueError, match="video, audio or both"):
        small.extract_features()
    with pytest.raises(ValueError, match="frames"):
        small.extract_features(video=inputs[0], audio=inputs[1][..., :20])
    with pytest.raises(ValueError, match=r"video must be \[B, 1, T, H, W\]"):
        small.extract_features(video=inputs[0][:, 0])
    with pytest.raises(ValueError, match=r"audio must be \[B, 104, T\]"):
        small.extract_features(audio=inputs[1].transpose(1, 2))


def test_large_preset_matches_published_state_dict(reference):
    """LARGE builds exactly the modules of the original large_vox_iter5 model (meta, no memory)."""
    import json

    from conftest import AVHUBERT_FIXTURES, need

    keys = json.loads(need(AVHUBERT_FIXTURES / "large_state_dict_keys.json").read_text())
    with torch.device("meta"):
        ours = AVHubert(LARGE).state_dict()
    dropped = {"mask_emb", "label_embs_concat", "final_proj.weight", "final_proj.bias"}
    theirs = {k: s for k, s, _ in keys if k not in dropped and "pos_conv.0.weight_" not in k}
    theirs = {k.replace("pos_conv.0.", "pos_conv."): s for k, s in theirs.items()}
    theirs["encoder.pos_conv.weight"] = [1024, 64, 128]
    assert {k: list(v.shape) for k, v in ours.items()} == theirs


def test_model_config_defaults_are_base_and_unknown_keys_fail():
    base = ModelConfig()
    assert (base.encoder_layers, base.encoder_embed_dim, base.encoder_attention_heads) == (
        12,
        768,
        12,
    )
    assert base.encoder_ffn_embed_dim == 3072
    with pytest.raises(ValueError, match="unknown ModelConfig keys: nope"):
        ModelConfig.from_dict({"encoder_layers": 2, "nope": 1})
    with pytest.raises(ValueError, match="modality_fuse"):
        ModelConfig(modality_fuse="sum")


TINY = ModelConfig(
    encoder_layers=1, encoder_embed_dim=32, encoder_ffn_embed_dim=64, encoder_attention_heads=2
)
CHANGED = {
    "encoder_layers": 2,
    "encoder_embed_dim": 48,
    "encoder_ffn_embed_dim": 96,
    "encoder_attention_heads": 4,
    "layer_norm_first": False,
    "conv_pos": 16,
    "conv_pos_groups": 4,
    "audio_feat_dim": 52,
    "modality_fuse": "add",
    "resnet_relu_type": "relu",
}


@pytest.mark.parametrize("field", [f.name for f in dataclasses.fields(ModelConfig)])
def test_every_config_field_is_read(field):
    """Changing any field changes the model's parameters or its output."""
    assert field in CHANGED, f"add {field} to CHANGED"
    torch.manual_seed(0)
    a = AVHubert(TINY).eval()
    torch.manual_seed(0)
    b = AVHubert(dataclasses.replace(TINY, **{field: CHANGED[field]})).eval()
    if {k: v.shape for k, v in a.state_dict().items()} != {
        k: v.shape for k, v in b.state_dict().items()
    }:
        return
    b.load_state_dict(a.state_dict())
    audio = torch.randn(1, TINY.audio_feat_dim, 6)
    assert not torch.allclose(a.extract_features(audio=audio), b.extract_features(audio=audio))
