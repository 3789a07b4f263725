"""speechforensics: is this talking-face video forged? Do the lips say what the voice says?

    import speechforensics
    backend = speechforensics.load_backend()          # lipsync-lite, or avhubert with a checkpoint
    result = speechforensics.detect("video.mp4", backend)
    print(result["verdict"], result["score"])

Layers, lowest first. A module imports only from its own layer or the ones below, never up, and
never in a circle (tests/test_layers.py walks every import, function-level ones included):

    0  version, errors, files
    1  features, media, face, shots, mouth, perturb, lists
    2  scoring, speakers, metrics, lite, avhubert (model, checkpoint, download), calibration
    3  pipeline, backends, paper
    4  report
    5  cache, evaluate, calibrate, fakes, fit_lite, pretrain_config, pretrain_data, pretrain
    6  distributed, cli, serve, __main__

The names below are imported when first used, so `import speechforensics` (and the command's
--help) does not wait for torch, OpenCV or dlib to load.
"""

import importlib
from typing import TYPE_CHECKING

from .errors import SpeechForensicsError
from .version import __version__

if TYPE_CHECKING:
    from .avhubert.checkpoint import load_checkpoint as load_checkpoint
    from .avhubert.model import AVHubert as AVHubert, ModelConfig as ModelConfig
    from .backends import (
        AVHubertBackend as AVHubertBackend,
        LiteBackend as LiteBackend,
        load_backend as load_backend,
    )
    from .media import (
        MediaInfo as MediaInfo,
        probe as probe,
        read_audio as read_audio,
        read_frames as read_frames,
    )
    from .pipeline import (
        Backend as Backend,
        Prepared as Prepared,
        detect as detect,
        judge as judge,
        prepare as prepare,
    )

_API = {  # public name -> the module that defines it
    "AVHubert": ".avhubert.model",
    "ModelConfig": ".avhubert.model",
    "load_checkpoint": ".avhubert.checkpoint",
    "AVHubertBackend": ".backends",
    "Backend": ".pipeline",
    "LiteBackend": ".backends",
    "load_backend": ".backends",
    "MediaInfo": ".media",
    "probe": ".media",
    "read_audio": ".media",
    "read_frames": ".media",
    "Prepared": ".pipeline",
    "detect": ".pipeline",
    "judge": ".pipeline",
    "prepare": ".pipeline",
}

__all__ = [
    "AVHubert",
    "AVHubertBackend",
    "Backend",
    "LiteBackend",
    "MediaInfo",
    "ModelConfig",
    "Prepared",
    "SpeechForensicsError",
    "__version__",
    "detect",
    "judge",
    "load_backend",
    "load_checkpoint",
    "prepare",
    "probe",
    "read_audio",
    "read_frames",
]


def __getattr__(name: str):
    if name not in _API:
        raise AttributeError(f"module 'speechforensics' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name], __name__), name)
    globals()[name] = value  # looked up once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
