"""AV-HuBERT's encoder in plain PyTorch, built from its smallest parts up to the whole model.

Module and parameter names follow the released checkpoints, so loading them is a key-for-key
copy (see checkpoint.py). The forward pass is the original `extract_finetune`: the lip video
goes through a 3D conv + ResNet-18, the stacked filterbanks through one linear layer, the two are
concatenated (audio first), layer-normed, projected and run through a pre-LN transformer.
"""

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VIDEO_CHUNK_FRAMES = 32  # frames through the video front end at a time


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of the encoder. Defaults are the published BASE model (`base_vox_iter5`)."""

    encoder_layers: int = 12
    encoder_embed_dim: int = 768
    encoder_ffn_embed_dim: int = 3072
    encoder_attention_heads: int = 12
    layer_norm_first: bool = True  # pre-LN blocks and a final LayerNorm (all released models)
    conv_pos: int = 128  # kernel of the convolutional positional embedding, in frames
    conv_pos_groups: int = 16
    audio_feat_dim: int = 104  # 26 log-mel bands x 4 stacked 10 ms frames
    modality_fuse: str = "concat"  # "concat" (released models) or "add"
    resnet_relu_type: str = "prelu"  # "prelu" (released models) or "relu"

    def __post_init__(self):
        if self.modality_fuse not in ("concat", "add"):
            raise ValueError(f"modality_fuse must be 'concat' or 'add', not {self.modality_fuse!r}")
        if self.resnet_relu_type not in ("prelu", "relu"):
            raise ValueError(
                f"resnet_relu_type must be 'prelu' or 'relu', not {self.resnet_relu_type!r}"
            )
        if self.encoder_embed_dim % self.encoder_attention_heads:
            raise ValueError("encoder_embed_dim must be a multiple of encoder_attention_heads")

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        return config_from_dict(cls, d)


def config_from_dict(cls, d: dict):
    """The config dataclass `cls` from `d`; ValueError naming any key `cls` does not have."""
    unknown = sorted(set(d) - {f.name for f in fields(cls)})
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)}")
    return cls(**d)


LARGE = ModelConfig(
    encoder_layers=24,
    encoder_embed_dim=1024,
    encoder_ffn_embed_dim=4096,
    encoder_attention_heads=16,
)


class LayerNorm(nn.LayerNorm):
    """LayerNorm computed in float32 whatever the dtype the model runs in."""

    def forward(self, x: Tensor) -> Tensor:
        w, b = self.weight.float(), self.bias.float()
        return F.layer_norm(x.float(), self.normalized_shape, w, b, self.eps).to(x.dtype)


class Linear(nn.Linear):
    """nn.Linear; once prepared for inference, on CPU it calls oneDNN, which at these sizes (a few
    hundred frames) is 10-50 % faster than MKL's sgemm in float32 (benchmarks/linear_kernels.py)."""

    onednn = False  # set by AVHubert.prepare_for_inference

    def forward(self, x: Tensor) -> Tensor:
        if self.onednn and x.device.type == "cpu":
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        return super().forward(x)


_HAS_ONEDNN_LINEAR = torch.backends.mkldnn.is_available() and hasattr(
    torch.ops.mkldnn, "_linear_pointwise"
)


def _activation(config: ModelConfig, channels: int) -> nn.Module:
    return nn.PReLU(channels) if config.resnet_relu_type == "prelu" else nn.ReLU()


class BasicBlock(nn.Module):
    def __init__(self, config: ModelConfig, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = _activation(config, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = _activation(config, planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(inplanes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        residual = x if self.downsample is None else self.downsample(x)
        return self.relu2(out + residual)


class ResNetTrunk(nn.Module):
    """ResNet-18 of BasicBlocks without stem (the 3D front end plays that part)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        widths, inplanes = (64, 128, 256, 512), 64
        for i, planes in enumerate(widths):
            stride = 1 if i == 0 else 2
            blocks = [
                BasicBlock(config, inplanes, planes, stride),
                BasicBlock(config, planes, planes, 1),
            ]
            setattr(self, f"layer{i + 1}", nn.Sequential(*blocks))
            inplanes = planes

    def forward(self, x: Tensor) -> Tensor:
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return x.mean(dim=(2, 3))  # global average pool -> [N, 512]


class ResEncoder(nn.Module):
    """Lip video [B, 1, T, 88, 88] -> [B, T, 512]: 5-frame 3D conv, then a 2D ResNet per frame."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.frontend3D = nn.Sequential(
            nn.Conv3d(1, 64, (5, 7, 7), stride=(1, 2, 2), padding=(2, 3, 3), bias=False),
            nn.BatchNorm3d(64),
            _activation(config, 64),
        )  # the original's MaxPool3d((1, 3, 3)) follows; being per frame, it runs as a 2D pool
        self.trunk = ResNetTrunk(config)
        self.folded = False  # set by fold_batchnorm: inference in chunks of frames

    def forward(self, video: Tensor) -> Tensor:
        b, t = video.shape[0], video.shape[2]
        if self.folded:
            frames = [
                self._chunk(video[i, 0], s, t)
                for i in range(b)
                for s in range(0, t, VIDEO_CHUNK_FRAMES)
            ]
            return torch.cat(frames).view(b, t, -1)
        x = self.frontend3D(video)  # [B, 64, T, 44, 44]
        x = x.transpose(1, 2).reshape(b * t, *x.shape[1:2], *x.shape[3:])  # frames b*T + t
        return self.trunk(F.max_pool2d(x, 3, stride=2, padding=1)).view(b, t, -1)

    def _chunk(self, video: Tensor, start: int, total: int) -> Tensor:
        """Frames start..start+VIDEO_CHUNK_FRAMES of one clip [T, 88, 88] -> [frames, 512].

        The 3D conv becomes a 2D conv whose 5 input channels are each frame's 5-frame window, in
        channels-last layout. Small chunks keep memory bounded on long clips and are much cheaper
        to allocate on CPU; the result equals running all frames at once.
        """
        conv = self.frontend3D[0]
        k, pad = conv.kernel_size[0], conv.padding[0]
        lo, hi = start - pad, min(start + VIDEO_CHUNK_FRAMES, total) + pad
        x = video[max(lo, 0) : hi]
        x = F.pad(x, (0, 0, 0, 0, max(-lo, 0), max(hi - total, 0)))  # zeros beyond the clip
        x = x.unfold(0, k, 1).permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        x = F.conv2d(x, conv.weight[:, 0], conv.bias, conv.stride[1:], conv.padding[1:])
        x = self.frontend3D[2](x)  # the activation; the BatchNorm is folded into the conv
        return self.trunk(F.max_pool2d(x, 3, stride=2, padding=1))

    def fold_batchnorm(self) -> None:
        """Fold every (eval-mode) BatchNorm into the convolution before it, for inference."""
        pairs = [(self.frontend3D, "0", "1")]
        for block in self.trunk.modules():
            if isinstance(block, BasicBlock):
                pairs += [(block, "conv1", "bn1"), (block, "conv2", "bn2")]
                if block.downsample is not None:
                    pairs.append((block.downsample, "0", "1"))
        for parent, conv_name, bn_name in pairs:
            _fold(getattr(parent, conv_name), getattr(parent, bn_name))
            setattr(parent, bn_name, nn.Identity())
        self.trunk.to(memory_format=torch.channels_last)
        self.folded = True


def _fold(conv: nn.Module, bn: nn.Module) -> None:
    scale = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    shift = bn.bias.double() - bn.running_mean.double() * scale
    w = conv.weight.double() * scale.view(-1, *[1] * (conv.weight.dim() - 1))
    conv.weight = nn.Parameter(w.to(conv.weight.dtype), requires_grad=False)
    conv.bias = nn.Parameter(shift.to(conv.weight.dtype), requires_grad=False)


class SubModel(nn.Module):
    """One modality's front end: optional ResNet, then a linear projection to the model width."""

    def __init__(self, in_dim: int, out_dim: int, resnet: nn.Module | None = None):
        super().__init__()
        self.resnet = resnet
        self.proj = Linear(in_dim, out_dim)

    def forward(self, x: Tensor) -> Tensor:
        x = self.resnet(x) if self.resnet is not None else x.transpose(1, 2)
        return self.proj(x)  # [B, T, D]


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.k_proj = Linear(dim, dim)
        self.v_proj = Linear(dim, dim)
        self.q_proj = Linear(dim, dim)
        self.out_proj = Linear(dim, dim)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        b, t, d = x.shape
        q, k, v = (
            p(x).view(b, t, self.heads, -1).transpose(1, 2)
            for p in (self.q_proj, self.k_proj, self.v_proj)
        )
        mask = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class EncoderLayer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d, f = config.encoder_embed_dim, config.encoder_ffn_embed_dim
        self.pre_ln = config.layer_norm_first
        self.self_attn = SelfAttention(d, config.encoder_attention_heads)
        self.self_attn_layer_norm = LayerNorm(d)
        self.fc1 = Linear(d, f)
        self.fc2 = Linear(f, d)
        self.final_layer_norm = LayerNorm(d)

    def _ffn(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x).float()).to(x.dtype))  # erf GELU in float32, as fairseq

    def forward(self, x: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        if self.pre_ln:
            x = x + self.self_attn(self.self_attn_layer_norm(x), key_padding_mask)
            return x + self._ffn(self.final_layer_norm(x))
        x = self.self_attn_layer_norm(x + self.self_attn(x, key_padding_mask))
        return self.final_layer_norm(x + self._ffn(x))


class TransformerEncoder(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        d, k = config.encoder_embed_dim, config.conv_pos
        self.layer_norm_first = config.layer_norm_first
        # The released weight-normed conv (weight_g, weight_v) is folded into `weight` on load.
        self.pos_conv = nn.Conv1d(d, d, k, padding=k // 2, groups=config.conv_pos_groups)
        self.trim = 1 if k % 2 == 0 else 0  # SamePad: an even kernel yields one frame too many
        self.layers = nn.ModuleList(EncoderLayer(config) for _ in range(config.encoder_layers))
        self.layer_norm = LayerNorm(d)

    def forward(self, x: Tensor, padding_mask: Tensor | None, output_layer: int | None) -> Tensor:
        if padding_mask is not None:
            x = x.masked_fill(padding_mask[..., None], 0.0)
        pos = self.pos_conv(x.transpose(1, 2))
        pos = pos[..., : pos.shape[-1] - self.trim]
        x = x + F.gelu(pos).transpose(1, 2)
        if not self.layer_norm_first:
            x = self.layer_norm(x)
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x, padding_mask)
            if i == output_layer:
                return x  # 1-based, and no final LayerNorm, as in the original
        if self.layer_norm_first and output_layer is None:
            x = self.layer_norm(x)
        return x


class AVHubert(nn.Module):
    """The AV-HuBERT encoder (no pre-training head, no decoder)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        d = config.encoder_embed_dim
        self.feature_extractor_audio = SubModel(config.audio_feat_dim, d)
        self.feature_extractor_video = SubModel(512, d, ResEncoder(config))
        fused = 2 * d if config.modality_fuse == "concat" else d
        self.post_extract_proj = Linear(fused, d) if fused != d else None
        self.layer_norm = LayerNorm(fused)
        self.encoder = TransformerEncoder(config)

    def prepare_for_inference(self, dtype: torch.dtype = torch.float32) -> "AVHubert":
        """Eval mode, BatchNorms folded into their convolutions, chunked channels-last ResNet,
        oneDNN linear layers on CPU, weights in `dtype` (LayerNorms stay float32). Inference
        only: the result is no longer trainable."""
        self.eval().requires_grad_(False)
        self.feature_extractor_video.resnet.fold_batchnorm()
        self.to(dtype)
        for module in self.modules():
            if isinstance(module, LayerNorm):
                module.float()
            if isinstance(module, Linear):
                module.onednn = _HAS_ONEDNN_LINEAR
        return self

    @property
    def dtype(self) -> torch.dtype:
        return self.feature_extractor_audio.proj.weight.dtype

    def fuse(self, audio: Tensor | None, video: Tensor | None) -> Tensor:
        """Front ends, then the fused, layer-normed features [B, T, D] before the transformer."""
        if video is not None and (video.dim() != 5 or video.shape[1] != 1):
            raise ValueError(f"video must be [B, 1, T, H, W], not {list(video.shape)}")
        if audio is not None and (audio.dim() != 3 or audio.shape[1] != self.config.audio_feat_dim):
            raise ValueError(
                f"audio must be [B, {self.config.audio_feat_dim}, T], not {list(audio.shape)}"
            )
        fa = None if audio is None else self.feature_extractor_audio(audio.to(self.dtype))
        fv = None if video is None else self.feature_extractor_video(video.to(self.dtype))
        if fa is None and fv is None:
            raise ValueError("extract_features needs video, audio or both")
        fa = torch.zeros_like(fv) if fa is None else fa  # a missing modality is zeros after
        fv = torch.zeros_like(fa) if fv is None else fv  # its front end, before the LayerNorm
        if fa.shape != fv.shape:
            raise ValueError(f"audio has {fa.shape[1]} frames but video has {fv.shape[1]}")
        return self.combine(fa, fv)

    def combine(self, fa: Tensor, fv: Tensor) -> Tensor:
        """The two front ends' outputs [B, T, D] (audio, video) -> fused features [B, T, D]."""
        x = torch.cat([fa, fv], dim=-1) if self.config.modality_fuse == "concat" else fa + fv
        x = self.layer_norm(x)
        return x if self.post_extract_proj is None else self.post_extract_proj(x)

    @torch.no_grad()
    def extract_features(
        self,
        video: Tensor | None = None,
        audio: Tensor | None = None,
        padding_mask: Tensor | None = None,
        output_layer: int | None = None,
    ) -> Tensor:
        """Features [B, T, D] (float32) of `video` [B, 1, T, 88, 88] and/or `audio` [B, 104, T].

        `padding_mask` [B, T] is True at padded frames. `output_layer` is 1-based and, as in the
        original `extract_finetune`, returns that block's output without the final LayerNorm.
        """
        x = self.fuse(audio, video)
        if padding_mask is not None:
            padding_mask = _frame_padding_mask(padding_mask.to(x.device), x.shape[1])
        return self.encoder(x, padding_mask, output_layer).float()


def _frame_padding_mask(mask: Tensor, frames: int) -> Tensor:
    """Reduce an input-rate padding mask [B, T_in] to [B, frames] as the original does."""
    extra = mask.shape[1] % frames
    if extra:
        mask = mask[:, :-extra]
    return mask.view(mask.shape[0], frames, -1).all(-1)
