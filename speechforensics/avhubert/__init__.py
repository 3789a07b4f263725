"""AV-HuBERT in plain PyTorch: the encoder (model.py), safe checkpoint reading (checkpoint.py)."""

from .checkpoint import Checkpoint, convert, load_checkpoint, read_checkpoint
from .model import LARGE, AVHubert, ModelConfig

__all__ = [
    "LARGE",
    "AVHubert",
    "Checkpoint",
    "ModelConfig",
    "convert",
    "load_checkpoint",
    "read_checkpoint",
]
