"""AV-HuBERT in plain PyTorch: the encoder (model.py), safe checkpoint reading and conversion
(checkpoint.py), the official weights' download and cache (download.py).

Import from those modules directly: this package's own import loads nothing, so that finding a
cached checkpoint (download.find_cached) does not wait for torch.
"""
