"""speechforensics: is this talking-face video forged? Do the lips say what the voice says?"""

from .avhubert import AVHubert, ModelConfig, load_checkpoint
from .detect import Prepared, prepare
from .errors import SpeechForensicsError
from .media import MediaInfo, probe, read_audio, read_frames

__version__ = "0.1.0"

__all__ = [
    "AVHubert",
    "MediaInfo",
    "ModelConfig",
    "Prepared",
    "SpeechForensicsError",
    "__version__",
    "load_checkpoint",
    "prepare",
    "probe",
    "read_audio",
    "read_frames",
]
