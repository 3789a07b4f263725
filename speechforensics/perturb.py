"""Distortions for the robustness study: the seven of DeeperForensics-1.0 on the video frames (at
their five published levels, as the paper's Table 7), and everyday audio damage.

A `Perturbation` (kind, level 1-5, seed) changes decoded 25 fps RGB frames one at a time
(`frames`) and 16 kHz mono audio (`audio`). It is deterministic: frame i's random numbers come
from (seed, i), so decoding a clip twice gives identical frames.

Video (DeeperForensics-1.0 `perturbation/`, same names and parameters):
- `CS` colour saturation: chroma scaled by 0.4 ... 0.0 (grey), in YCbCr.
- `CC` colour contrast: pixel values scaled by 0.85 ... 0.35.
- `BW` block-wise occlusion: 16 ... 80 grey 8x8 blocks per 256 px of the shorter side, placed at
  random in every frame. The original places none in frames under 256 px; we place at least the
  count of one 256 px unit, so small clips (LRS2's 160 px) are occluded too.
- `GNC` white Gaussian noise in YCbCr, variance 0.001 ... 0.05 (in the original's units).
- `GB` Gaussian blur, kernel 7 ... 21 px, sigma kernel / 6.
- `JPEG` pixelation: down-scaled by 2 ... 6 and back (the original calls it JPEG).
- `VC` video compression: H.264 at CRF 30 ... 40 (libx264 defaults otherwise, as `ffmpeg -crf`);
  the whole clip is encoded first (the packets are kept in memory: compressed, they are small),
  then decoded, one thread, frames widened to a multiple of 64 px (see `_padded`): bit-exact.

Video, everyday (not in the paper):
- `scale` down-scaling to a frame height of 720, 480, 360, 240, 180 px (smaller frames kept).
- `fps` frame-rate conversion: a camera at 24, 20, 15, 12, 10 frames per second shown at 25 (each
  output frame repeats the latest frame that camera would have captured: frames repeated, the
  motion in steps), as a low-rate recording converted to 25 fps.

Audio (not in the paper; what users meet every day):
- `noise` white Gaussian noise at an SNR of 30, 20, 10, 5, 0 dB (against the clip's RMS).
- `mp3` / `aac` re-encoding at 64, 32, 24, 16, 8 kbit/s.
- `resample` down to 12, 8, 6, 4, 3 kHz and back to 16 kHz.
- `reverb` a room: the audio convolved with an impulse response of exponentially decaying noise,
  reverberation time (RT60) 0.2, 0.4, 0.6, 0.9, 1.2 s, the direct sound kept; level kept.
"""

import io
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction

import av
import cv2
import numpy as np

from . import media
from .errors import SpeechForensicsError
from .features import SAMPLE_RATE, VIDEO_FPS

PARAMETERS = {  # level 1 ... 5, as DeeperForensics-1.0's get_distortion_parameter
    "CS": (0.4, 0.3, 0.2, 0.1, 0.0),  # chroma scale
    "CC": (0.85, 0.725, 0.6, 0.475, 0.35),  # value scale
    "BW": (16, 32, 48, 64, 80),  # blocks per 256 px of the shorter side
    "GNC": (0.001, 0.002, 0.005, 0.01, 0.05),  # noise variance
    "GB": (7, 9, 13, 17, 21),  # px: Gaussian kernel side
    "JPEG": (2, 3, 4, 5, 6),  # pixelation factor
    "VC": (30, 32, 35, 38, 40),  # H.264 CRF
    "scale": (720, 480, 360, 240, 180),  # px: frame height after down-scaling (never up)
    "fps": (24, 20, 15, 12, 10),  # frames per second of the simulated camera
    "noise": (30, 20, 10, 5, 0),  # dB SNR
    "mp3": (64, 32, 24, 16, 8),  # kbit/s
    "aac": (64, 32, 24, 16, 8),  # kbit/s
    "resample": (12000, 8000, 6000, 4000, 3000),  # Hz
    "reverb": (0.2, 0.4, 0.6, 0.9, 1.2),  # s: time for the room's echo to decay by 60 dB
}
VIDEO_KINDS = ("CS", "CC", "BW", "GNC", "GB", "JPEG", "VC")
EVERYDAY_VIDEO_KINDS = ("scale", "fps")  # not in the paper: what sharing sites do to uploads
AUDIO_KINDS = ("noise", "mp3", "aac", "resample", "reverb")
LEVELS = 5
BLOCK_PX = 8  # side of a BW block
BLOCK_GREY = 128  # value of a BW block
BLOCK_UNIT_PX = 256  # BW: the block count is per this many px of the shorter side
# GNC, CS: DeeperForensics maps OpenCV's float YCrCb (Y in 0-255, chroma around 0.5) to video
# range, (v * 219 + 16) / 255 for Y and (v * 224 + 16) / 255 for chroma, before the change.
Y_RANGE, C_RANGE, RANGE_OFFSET = 219.0, 224.0, 16.0
CHROMA_GREY = (0.5 * 255 - RANGE_OFFSET) / C_RANGE  # chroma the CS change pulls towards
ENCODE_WIDTH_MULTIPLE = 64  # px: VC encodes frames this much wider (see _padded)
ALIGN_SAMPLES = 4096  # max codec delay searched when lining re-encoded audio up again
REVERB_GAP_S = 0.005  # s between the direct sound and the start of the echo
REVERB_TAIL_GAIN = 0.03  # amplitude of the echo's first sample against the direct sound (its
# energy is then that of the direct sound at an RT60 of 0.9 s)


@dataclass(frozen=True)
class Perturbation:
    """One distortion at one level (1-5); `seed` makes its randomness repeatable."""

    kind: str
    level: int
    seed: int = 0

    def __post_init__(self):
        if self.kind not in PARAMETERS:
            known = ", ".join(PARAMETERS)
            raise SpeechForensicsError(f"unknown perturbation {self.kind!r}; one of {known}")
        if not 1 <= self.level <= LEVELS:
            raise SpeechForensicsError(f"{self.kind}: level {self.level} is not 1 to {LEVELS}")

    @property
    def parameter(self) -> float:
        return PARAMETERS[self.kind][self.level - 1]

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.level}"

    @property
    def is_video(self) -> bool:
        return self.kind in VIDEO_KINDS + EVERYDAY_VIDEO_KINDS

    def frames(self, frames) -> Iterator[np.ndarray]:
        """The frames, distorted (audio kinds: unchanged)."""
        if self.kind == "VC":
            return decompress(*compress(frames, int(self.parameter)))
        if self.kind == "fps":
            return held_frames(frames, self.parameter)
        if not self.is_video:
            return iter(frames)
        return (self.frame(f, i) for i, f in enumerate(frames))

    def frame(self, rgb: np.ndarray, index: int) -> np.ndarray:
        """Frame `index` of a clip, distorted (any kind but VC, which needs the whole stream)."""
        rng = np.random.default_rng([self.seed, index])
        p = self.parameter
        match self.kind:
            case "CS":
                return saturation(rgb, p)
            case "CC":
                return (rgb.astype(np.float32) * p).astype(np.uint8)
            case "BW":
                return blocks(rgb, int(p), rng)
            case "GNC":
                return colour_noise(rgb, p, rng)
            case "GB":
                return cv2.GaussianBlur(rgb, (int(p), int(p)), p / 6)
            case "JPEG":
                return pixelate(rgb, int(p))
            case "scale":
                return downscale(rgb, int(p))
        return rgb

    def audio(self, audio: np.ndarray) -> np.ndarray:
        """16 kHz mono float32 audio, distorted (video kinds: unchanged); same length."""
        p = self.parameter
        match self.kind:
            case "noise":
                return add_noise(audio, p, np.random.default_rng([self.seed, 1 << 30]))
            case "mp3":
                return reencode(audio, "libmp3lame", "mp3", int(p))
            case "aac":
                return reencode(audio, "aac", "adts", int(p))
            case "resample":
                return resample(audio, int(p))
            case "reverb":
                return reverberate(audio, p, np.random.default_rng([self.seed, 1 << 31]))
        return audio


def parse(spec: str, seed: int = 0) -> Perturbation:
    """'GB:3' -> Perturbation('GB', 3, seed); the kind is case-insensitive."""
    kind, _, level = spec.partition(":")
    names = {k.lower(): k for k in PARAMETERS}
    if kind.lower() not in names or not level.strip().isdigit():
        raise SpeechForensicsError(
            f"--perturb {spec!r}: expected TYPE:LEVEL, TYPE one of {', '.join(PARAMETERS)} and "
            f"LEVEL 1 to {LEVELS}"
        )
    return Perturbation(names[kind.lower()], int(level), seed)


def all_video() -> list[Perturbation]:
    """The 35 of the paper's robustness table: each video kind at each level."""
    return [Perturbation(k, level) for k in VIDEO_KINDS for level in range(1, LEVELS + 1)]


def all_audio() -> list[Perturbation]:
    return [Perturbation(k, level) for k in AUDIO_KINDS for level in range(1, LEVELS + 1)]


def _to_video_range(ycrcb: np.ndarray) -> np.ndarray:
    """OpenCV float YCrCb -> DeeperForensics' units (see Y_RANGE)."""
    out = ycrcb.copy()
    out[..., 0] = (ycrcb[..., 0] * Y_RANGE + RANGE_OFFSET) / 255
    out[..., 1:] = (ycrcb[..., 1:] * C_RANGE + RANGE_OFFSET) / 255
    return out


def _from_video_range(v: np.ndarray) -> np.ndarray:
    out = v.astype(np.float32)
    out[..., 0] = (v[..., 0] * 255 - RANGE_OFFSET) / Y_RANGE
    out[..., 1:] = (v[..., 1:] * 255 - RANGE_OFFSET) / C_RANGE
    return out


def saturation(rgb: np.ndarray, scale: float) -> np.ndarray:
    """CS: chroma scaled towards grey by `scale` (0: grey), then truncated to uint8."""
    v = _to_video_range(cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2YCrCb))
    v[..., 1:] = 0.5 + (v[..., 1:] - 0.5) * scale
    out = cv2.cvtColor(_from_video_range(v), cv2.COLOR_YCrCb2RGB)
    return np.clip(out, 0, 255).astype(np.uint8)


def colour_noise(rgb: np.ndarray, variance: float, rng: np.random.Generator) -> np.ndarray:
    """GNC: white Gaussian noise of `variance` added to every YCbCr component (in the original's
    units: video-range values divided by 255)."""
    v = _to_video_range(cv2.cvtColor(rgb.astype(np.float32), cv2.COLOR_RGB2YCrCb)) / 255
    v = (v + np.sqrt(variance) * rng.standard_normal(v.shape)) * 255
    out = cv2.cvtColor(_from_video_range(v), cv2.COLOR_YCrCb2RGB)
    return np.clip(out, 0, 255).astype(np.uint8)


def blocks(rgb: np.ndarray, per_unit: int, rng: np.random.Generator) -> np.ndarray:
    """BW: grey 8x8 blocks at random places, `per_unit` per 256 px of the shorter side."""
    h, w = rgb.shape[:2]
    count = max(1, min(h, w) // BLOCK_UNIT_PX) * per_unit
    out = rgb.copy()
    ys = rng.integers(0, h - BLOCK_PX, count, endpoint=False)
    xs = rng.integers(0, w - BLOCK_PX, count, endpoint=False)
    for y, x in zip(ys, xs, strict=True):
        out[y : y + BLOCK_PX, x : x + BLOCK_PX] = BLOCK_GREY
    return out


def downscale(rgb: np.ndarray, height: int) -> np.ndarray:
    """The frame shrunk to `height` rows (area averaging, aspect kept); smaller frames as they
    are. The frame stays small: landmarks are then found on fewer pixels, as on a 360p upload."""
    h, w = rgb.shape[:2]
    if h <= height:
        return rgb
    width = max(round(w * height / h / 2) * 2, 2)  # even, as video encoders need
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


def held_frames(frames, fps: float) -> Iterator[np.ndarray]:
    """fps: each 25 fps frame replaced by the latest one a camera running at `fps` captured (the
    camera's k-th picture is the 25 fps frame at or after k / fps s)."""
    held, capture = None, 0
    for i, rgb in enumerate(frames):
        if i >= capture * VIDEO_FPS / fps - 1e-9:  # the camera takes a picture now
            held, capture = rgb, capture + 1
            while capture * VIDEO_FPS / fps <= i + 1e-9:  # faster than 25 fps: skip the rest
                capture += 1
        yield held


def pixelate(rgb: np.ndarray, factor: int) -> np.ndarray:
    """JPEG (as DeeperForensics names it): bilinear down-scaling by `factor` and back."""
    h, w = rgb.shape[:2]
    small = cv2.resize(rgb, (max(1, w // factor), max(1, h // factor)))
    return cv2.resize(small, (w, h))


def compress(frames, crf: int) -> tuple[list[bytes], tuple]:
    """VC: the frames encoded as H.264 at `crf` (yuv420p, libx264's defaults otherwise, one
    thread, AVX-512 off: media.x264_repeatable), as in `ffmpeg -crf`: the packets, kept in
    memory (compressed, they are small), and the frame shape. `decompress` gives the frames
    back, the same on every call."""
    encoder, shape, packets = None, None, []
    for i, rgb in enumerate(frames):
        if encoder is None:
            shape = rgb.shape
            encoder = _h264_encoder(shape, crf)
        picture = av.VideoFrame.from_ndarray(_padded(rgb), format="rgb24")
        picture.pts = i
        packets += [bytes(p) for p in encoder.encode(picture)]
    if encoder is not None:
        packets += [bytes(p) for p in encoder.encode(None)]
    return packets, shape


def decompress(packets: list[bytes], shape: tuple) -> Iterator[np.ndarray]:
    decoder = av.CodecContext.create("h264", "r")
    decoder.open()
    for data in [*packets, None]:
        for frame in decoder.decode(None if data is None else av.Packet(data)):
            yield frame.to_ndarray(format="rgb24")[: shape[0], : shape[1]].copy()


def _h264_encoder(shape: tuple, crf: int):
    encoder = av.CodecContext.create("libx264", "w")
    encoder.height, encoder.width = _padded(np.zeros((shape[0], shape[1], 1), np.uint8)).shape[:2]
    encoder.pix_fmt, encoder.time_base = "yuv420p", Fraction(1, VIDEO_FPS)
    encoder.framerate = Fraction(VIDEO_FPS)
    encoder.options = {"crf": str(crf), "threads": "1", "x264-params": media.x264_repeatable()}
    encoder.open()
    return encoder


def _padded(rgb: np.ndarray) -> np.ndarray:
    """The frame widened to a multiple of ENCODE_WIDTH_MULTIPLE px and made even in height, by
    repeating its last column / row (cropped off after decoding). libx264 reads the unused
    bytes at the end of each row of its input, which are whatever memory held before: only
    rows without such bytes make the encoding repeatable."""
    h, w = rgb.shape[:2]
    pad_w = -w % ENCODE_WIDTH_MULTIPLE
    return np.pad(rgb, ((0, h % 2), (0, pad_w), (0, 0)), mode="edge") if pad_w or h % 2 else rgb


def add_noise(audio: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at `snr_db` below the clip's RMS level."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    noise = rng.standard_normal(len(audio)) * rms * 10 ** (-snr_db / 20)
    return np.clip(audio + noise, -1, 1).astype(np.float32)


def reverberate(audio: np.ndarray, rt60: float, rng: np.random.Generator) -> np.ndarray:
    """reverb: `audio` convolved with a unit direct sound plus exponentially decaying white noise
    that falls 60 dB in `rt60` s (starting 5 ms after the direct sound), scaled back to the
    clip's RMS."""
    n = int(rt60 * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    tail = rng.standard_normal(n) * 10 ** (-3 * t / rt60) * REVERB_TAIL_GAIN
    response = np.concatenate([[1.0], np.zeros(int(REVERB_GAP_S * SAMPLE_RATE)), tail])
    size = 1 << int(np.ceil(np.log2(len(audio) + len(response))))
    wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(response, size), size)[: len(audio)]
    rms_in = np.sqrt(np.mean(np.square(audio, dtype=np.float64)))
    rms_out = np.sqrt(np.mean(np.square(wet)))
    wet *= rms_in / rms_out if rms_out > 0 else 1.0
    return np.clip(wet, -1, 1).astype(np.float32)


def reencode(audio: np.ndarray, codec: str, container: str, kbps: int) -> np.ndarray:
    """`audio` encoded with `codec` at `kbps` in memory, decoded and lined up again."""
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container) as out:
        stream = out.add_stream(codec, rate=SAMPLE_RATE, layout="mono")
        stream.bit_rate = kbps * 1000
        out.mux(stream.encode(_audio_frame(audio, SAMPLE_RATE)))
        out.mux(stream.encode(None))
    buffer.seek(0)
    with av.open(buffer, "r") as source:
        decoded = _pcm(source.decode(audio=0), SAMPLE_RATE)
    return _aligned(decoded, audio)


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Down to `rate` Hz and back to 16 kHz with libswresample (as ffmpeg -ar)."""
    low = _pcm([_audio_frame(audio, SAMPLE_RATE)], rate)
    return _aligned(_pcm([_audio_frame(low, rate)], SAMPLE_RATE), audio)


def _audio_frame(audio: np.ndarray, rate: int):
    frame = av.AudioFrame.from_ndarray(media.pcm16(audio)[None], format="s16", layout="mono")
    frame.sample_rate, frame.pts, frame.time_base = rate, 0, Fraction(1, rate)
    return frame


def _pcm(frames, rate: int) -> np.ndarray:
    """Decoded frames -> float32 mono at `rate`."""
    resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
    parts = [f.to_ndarray()[0] for frame in frames for f in resampler.resample(frame)]
    parts += [f.to_ndarray()[0] for f in resampler.resample(None)]
    return np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, np.float32)


def _aligned(decoded: np.ndarray, original: np.ndarray) -> np.ndarray:
    """`decoded` shifted by the codec's delay (the lag, within +-ALIGN_SAMPLES, at which it
    correlates best with `original`) and cut or zero-padded to the original's length."""
    n = len(original)
    size = 1 << int(np.ceil(np.log2(max(n, len(decoded)) + ALIGN_SAMPLES + 1)))
    spectrum = np.fft.rfft(decoded, size) * np.conj(np.fft.rfft(original, size))
    corr = np.fft.irfft(spectrum, size)
    lags = np.arange(-ALIGN_SAMPLES, ALIGN_SAMPLES + 1)
    lag = int(lags[np.argmax(corr[lags])])
    out = decoded[lag:] if lag >= 0 else np.concatenate([np.zeros(-lag, decoded.dtype), decoded])
    return np.pad(out[:n], (0, max(0, n - len(out)))).astype(np.float32)
