"""AV-HuBERT in plain PyTorch: the encoder (model.py), safe checkpoint reading (checkpoint.py)."""

from .checkpoint import Checkpoint, convert, load_checkpoint, read_checkpoint
from .download import cache_dir, download, find_cached
from .model import LARGE, AVHubert, ModelConfig

__all__ = [
    "LARGE",
    "AVHubert",
    "Checkpoint",
    "ModelConfig",
    "cache_dir",
    "convert",
    "download",
    "find_cached",
    "load_checkpoint",
    "read_checkpoint",
]
