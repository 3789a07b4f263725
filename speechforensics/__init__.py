"""speechforensics: is this talking-face video forged? Do the lips say what the voice says?"""

from .avhubert import AVHubert, ModelConfig, load_checkpoint
from .errors import SpeechForensicsError

__version__ = "0.1.0"

__all__ = ["AVHubert", "ModelConfig", "SpeechForensicsError", "__version__", "load_checkpoint"]
