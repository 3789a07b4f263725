"""Decode a talking-face video with PyAV into 25 fps RGB frames and 16 kHz mono audio.

Both come on one timeline whose origin is the presentation time of the first video frame:
output frame i shows what a player displays at ``start + i / 25`` s, and audio sample j is
the sound at ``start + j / 16000`` s. The video is read by presentation timestamp, so 29.97,
30, 50 fps and variable-rate sources come out at a constant 25 fps, and a 25 fps source comes
out frame for frame. The display matrix is applied (a phone video comes out upright). The
audio goes through libswresample (``format="s16", layout="mono", rate=16000``), as
``ffmpeg -ar 16000 -ac 1`` does, so the samples are those of the original's WAV.

The pipeline reads a clip twice (faces and landmarks, then mouth crops): ``read_frames``
streams one frame at a time, so a long clip never has all its frames in memory.
"""

import functools
import heapq
import itertools
import math
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from speechforensics.errors import SpeechForensicsError
from speechforensics.features import PCM_FULL_SCALE, SAMPLE_RATE, SAMPLES_PER_FRAME, VIDEO_FPS

MAX_SECONDS = None  # s analysed by default: None, the whole file
PAPER_SECONDS = 50.0  # s: the original SpeechForensics reads the first 50 s of each video
MIN_SECONDS = 1.0  # s: a shorter clip is too short to judge
SHOW_EARLY = 0.5  # source frames: a source frame counts as shown this much before its pts
AUDIO_GAP_SECONDS = 0.010  # s: a jump in audio timestamps this large is filled with silence
VIDEO_GAP_SECONDS = 0.5  # s: a hole in the video timestamps this long is reported
HEADER_SLACK = 0.5  # s the header may claim beyond the readable data before we warn
FPS_RANGE = (1.0, 1000.0)  # frames per second: an average rate outside this is not trusted
FORMATS = "mp4, mov, mkv, webm, avi or mpg"  # named in error messages


@dataclass(frozen=True)
class MediaInfo:
    """What ``probe`` learns about a clip; ``read_frames`` and ``read_audio`` follow it."""

    path: Path
    width: int  # pixels, of the frames read_frames yields (after rotation)
    height: int  # pixels, of the frames read_frames yields (after rotation)
    rotation: int  # degrees clockwise applied to the decoded pictures: 0, 90, 180 or 270
    source_fps: float  # frames per second: the video stream's average rate
    frames: int  # 25 fps frames read_frames yields (after the cap)
    duration: float  # s analysed: frames / 25
    audio_rate: int  # Hz, of the source audio stream
    audio_channels: int  # of the source audio stream
    start: float  # s: presentation time of frame 0, the origin of the common timeline
    truncated: bool  # True when max_seconds cut the clip


def probe(path, max_seconds=MAX_SECONDS) -> MediaInfo:
    """Describe the clip at ``path`` as read_frames and read_audio will see it.

    Cheap: container metadata, one decoded frame (for the rotation and the start time) and a
    walk over the video packets up to the cap without decoding them (for the exact end).
    ``max_seconds=None`` analyses the whole clip. Raises SpeechForensicsError for a file that
    cannot be judged: missing, not media, no video or audio track, no decodable video frame,
    shorter than MIN_SECONDS. A file cut short or damaged but with at least MIN_SECONDS of
    readable video gives a warning, and what can be read is analysed.
    """
    return _probe(path, max_seconds, need_audio=True)


def read_frames(path, max_seconds=MAX_SECONDS) -> Iterator[np.ndarray]:
    """Yield ``probe(path).frames`` frames, [H, W, 3] uint8 RGB at 25 fps, upright, one at a time.

    Frame i is the source frame displayed at ``start + i / 25`` s: the last one whose
    presentation time is at most that, allowing half a source frame early; so a frame is
    repeated where the source has a hole and skipped where the source is faster. A repeated
    frame is a copy. Damaged packets are skipped with a warning. Unlike probe and read_audio,
    this does not need an audio track. Errors are raised by this call, before any ``next()``.
    """
    info = _probe(path, max_seconds, need_audio=False)
    return _frames(info)


def read_audio(path, max_seconds=MAX_SECONDS) -> np.ndarray:
    """The audio as float32 mono 16 kHz samples in [-1, 1), aligned with read_frames.

    Sample 0 is at ``start``, the first video frame's presentation time: audio that starts
    later is preceded by zeros, audio that starts earlier loses its first samples. The result
    has exactly ``frames * 640`` samples (640 = 16000 / 25 per video frame): audio that ends
    before the video is padded with zeros at the end, audio that goes on is cut. Holes in the
    audio timestamps (damaged packets) are filled with zeros, so later sound keeps its place.
    """
    info = probe(path, max_seconds)
    total = info.frames * SAMPLES_PER_FRAME
    with _open(info.path) as container:
        stream = _pick(container.streams.audio)
        first, pcm = _resampled_audio(container, stream, info, total)
    offset = round((first - info.start) * SAMPLE_RATE)  # > 0: the audio starts after frame 0
    pcm, at = pcm[max(0, -offset) :], max(0, offset)
    pcm = pcm[: max(0, total - at)]
    out = np.zeros(total, np.float32)
    out[at : at + pcm.size] = pcm.astype(np.float32) / PCM_FULL_SCALE
    return out


# Opening and choosing streams

_FFMPEG_LOG_LEVEL = threading.Lock()  # held while an open raises PyAV's log level


def _open(path) -> av.container.InputContainer:
    """Open a media file for reading, or raise the one-line error that says what to do."""
    path = Path(path)
    if not path.exists():
        raise SpeechForensicsError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise SpeechForensicsError(f"{path} is a directory; pass a video file ({FORMATS})")
    # PyAV's log level is process-wide: raised for the open only (FFmpeg's reason, captured
    # below), and under a lock, so threads opening files at once always restore the caller's.
    with _FFMPEG_LOG_LEVEL:
        level, skip = av.logging.get_level(), av.logging.get_skip_repeated()
        av.logging.set_level(av.logging.ERROR)
        av.logging.set_skip_repeated(False)  # or a second bad file in a row would have no reason
        try:
            with av.logging.Capture() as logs:
                return av.open(str(path))
        except (av.error.FFmpegError, OSError) as err:
            raise SpeechForensicsError(
                f"{path} is not a media file FFmpeg can read ({_reason(err, logs)}); pass a "
                f"video file ({FORMATS}), complete: an mp4 cut short loses its index and cannot "
                "be read"
            ) from err
        finally:
            av.logging.set_level(level)
            av.logging.set_skip_repeated(skip)


def _reason(err: Exception, logs=()) -> str:
    """FFmpeg's words for what went wrong: the error and the last line it logged."""
    reason = getattr(err, "strerror", None) or str(err) or type(err).__name__
    if logs:
        reason = f"{reason}: {logs[-1][2].strip()}"
    return reason


def _pick(streams):
    """The stream ffmpeg would map: the default one first, then the largest picture or the
    most channels, the first on ties; cover art is not video. None when there is none."""
    streams = [s for s in streams if not s.disposition & av.stream.Disposition.attached_pic]
    if not streams:
        return None

    def score(s):  # a stream without a decoder has no size: it comes last
        size = getattr(s, "width", 0) * getattr(s, "height", 1) or getattr(s, "channels", 0)
        return bool(s.disposition & av.stream.Disposition.default), size

    return max(streams, key=score)


def _video_stream(container, path: Path):
    stream = _pick(container.streams.video)
    if stream is None:
        raise SpeechForensicsError(f"{path} has no video track; pass a talking-face video")
    return stream


def _audio_stream(container, path: Path):
    stream = _pick(container.streams.audio)
    if stream is None:
        raise SpeechForensicsError(
            f"{path} has no audio track; speechforensics compares lips with the voice and "
            "needs both"
        )
    return stream


# Probing


def _probe(path, max_seconds, need_audio: bool) -> MediaInfo:
    path = Path(path)
    cap = math.inf if max_seconds is None else float(max_seconds)
    if not cap >= MIN_SECONDS:
        raise SpeechForensicsError(
            f"max_seconds={max_seconds} for {path}; it must be at least {MIN_SECONDS:g} s"
        )
    with _open(path) as container:  # PyAV streams must not be touched once it is closed
        video = _video_stream(container, path)
        audio = _audio_stream(container, path) if need_audio else None
        first, start, end, damage = _scan_video(container, video, path, cap)
        claimed, source_fps = _claimed_seconds(video), _source_fps(video)
        rate, channels = (audio.sample_rate, audio.channels) if audio else (0, 0)
    seconds = end - start
    _check_length(path, seconds, cap, claimed, damage)
    frames = math.ceil(round(seconds * VIDEO_FPS, 6))
    cap_frames = math.floor(cap * VIDEO_FPS) if cap < math.inf else frames
    k = _quarter_turns(first.rotation)
    width, height = (first.height, first.width) if k % 2 else (first.width, first.height)
    return MediaInfo(
        path=path,
        width=width,
        height=height,
        rotation=(-90 * k) % 360,
        source_fps=source_fps,
        frames=min(frames, cap_frames),
        duration=min(frames, cap_frames) / VIDEO_FPS,
        audio_rate=rate,
        audio_channels=channels,
        start=start,
        truncated=frames > cap_frames,
    )


def _scan_video(container, stream, path: Path, cap: float):
    """Decode the first frame, then walk the packets (no decoding) to where the video ends.

    Returns (first frame, start s, end s, damage): the end is that of the last source frame
    (pts + duration), or a little past start + cap where the cap cuts the clip; damage is
    the error that stopped the demuxer early, or None. Warns about holes in the video.
    """
    tb, nominal = stream.time_base, 1 / _source_fps(stream)
    first, decode_error, damage, end = None, None, None, None
    try:
        for packet in container.demux(stream):
            if first is None:
                first, decode_error = _first_frame(stream, packet, decode_error)
            if not _holds_frame(packet):
                continue
            time = float(packet.pts * tb)
            if end is not None and time - end > VIDEO_GAP_SECONDS:
                _warn(
                    f"{path}: no video from {end:.2f} s to {time:.2f} s (damaged data?); "
                    "the frame before the hole is held through it"
                )
            shown = float(packet.duration * tb) if packet.duration else nominal
            end = time + shown if end is None else max(end, time + shown)
            if first is not None and end - _seconds(first, stream) > cap:
                break
    except av.error.FFmpegError as err:
        damage = err
    first = first or _flushed_frame(stream)
    if first is None:
        reason = _reason(decode_error) if decode_error else "no frames"
        raise SpeechForensicsError(
            f"{path}: its video track yields no frames ({reason}); re-encode it, "
            "e.g. ffmpeg -i clip -c:v libx264 -c:a aac fixed.mp4"
        )
    start = _seconds(first, stream)
    return first, start, start if end is None else max(end, start), damage


def _holds_frame(packet) -> bool:
    """Whether a packet holds a frame that will be shown: it has a pts, data, and an edit list
    does not cut it (those the decoder drops)."""
    return packet.pts is not None and packet.size > 0 and not packet.is_discard


def _first_frame(stream, packet, error):
    """(the first frame decoded from this packet or None, the last decoding error)."""
    try:
        return next(iter(stream.decode(packet)), None), error
    except av.error.FFmpegError as err:
        return None, err


def _flushed_frame(stream):
    """The first frame a decoder still holds once its input has ended, or None."""
    try:
        return next(iter(stream.decode(None)), None)
    except av.error.FFmpegError:
        return None


def _seconds(frame, stream) -> float:
    """A decoded frame's presentation time in seconds (the stream's start when it has none)."""
    if frame.pts is not None:
        return float(frame.pts * stream.time_base)
    return float((stream.start_time or 0) * stream.time_base)


def _check_length(path: Path, seconds: float, cap: float, claimed, damage) -> None:
    """Raise when the readable video is too short; warn when it is shorter than it should be."""
    longer = claimed is not None and claimed > seconds + HEADER_SLACK  # the header says more
    cut = damage is not None or longer
    if seconds < MIN_SECONDS:
        why = " that can be read (the file is damaged or cut short)" if cut else ""
        raise SpeechForensicsError(
            f"{path} has only {seconds:.2f} s of video{why}; speechforensics needs at least "
            f"{MIN_SECONDS:g} s, so pass a longer clip"
        )
    if cut and seconds < cap:
        said = f"its header says {claimed:.2f} s" if longer else "there is more"
        cause = f" ({_reason(damage)})" if damage is not None else ""
        _warn(
            f"{path}: only {seconds:.2f} s of video can be read but {said} (damaged or cut "
            f"short{cause}); analysing the {seconds:.2f} s that can be read"
        )


def _claimed_seconds(stream):
    """How long the container's header says the video track is, or None when it does not say.

    The stream duration (mp4, avi), the DURATION tag (mkv, webm) or the frame count over the
    frame rate (avi): a truncated file keeps its header, so these exceed the readable data.
    """
    claims = []
    if stream.duration:
        claims.append(float(stream.duration * stream.time_base))
    tag = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d*)?)", stream.metadata.get("DURATION", ""))
    if tag:
        h, m, s = tag.groups()
        claims.append(int(h) * 3600 + int(m) * 60 + float(s))
    if stream.frames and stream.average_rate:
        claims.append(float(stream.frames / stream.average_rate))
    return max(claims, default=None)


def _source_fps(stream) -> float:
    """The stream's average frame rate, or a plausible stand-in when it has none."""
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and FPS_RANGE[0] <= float(rate) <= FPS_RANGE[1]:
            return float(rate)
    return float(VIDEO_FPS)


def _quarter_turns(ccw_degrees) -> int:
    """Counter-clockwise quarter turns (0..3) that make a frame upright (PyAV's frame.rotation)."""
    return round((ccw_degrees or 0) / 90) % 4


def upright(rgb: np.ndarray, rotation: int) -> np.ndarray:
    """Turn a decoded [H, W, 3] picture ``rotation`` degrees clockwise (MediaInfo.rotation)."""
    k = round(rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, -k) if k else rgb)


def _warn(message: str) -> None:
    """Report a degraded but usable clip (once per message under Python's default filter)."""
    warnings.warn(message, UserWarning, stacklevel=2)


# Decoding


def _decoded(container, stream, path: Path, packet_pts: list | None = None) -> Iterator:
    """Decoded frames of one stream, skipping damaged packets (with one warning per pass).
    The pts of the packets that hold frames go onto the heap ``packet_pts`` (see _timed)."""
    warned = False

    def warn(err, packet=None):
        nonlocal warned
        if not warned:
            known = packet is not None and packet.pts is not None
            at = f" at {float(packet.pts * stream.time_base):.2f} s" if known else ""
            _warn(
                f"{path}: damaged {stream.type} data{at} ({_reason(err)}); going on with "
                "what can be decoded (re-encode the file to repair it)"
            )
        warned = True

    try:
        for packet in container.demux(stream):
            if packet_pts is not None and _holds_frame(packet):
                heapq.heappush(packet_pts, packet.pts)
            try:
                yield from stream.decode(packet)
            except av.error.FFmpegError as err:
                warn(err, packet)
    except av.error.FFmpegError as err:  # the demuxer gave up: what is decoded so far stands
        warn(err)
        try:
            yield from stream.decode(None)
        except av.error.FFmpegError:
            pass


def _frames(info: MediaInfo) -> Iterator[np.ndarray]:
    """The 25 fps frame sequence of a probed clip (see read_frames)."""
    with _open(info.path) as container:
        stream = _video_stream(container, info.path)
        stream.thread_type = "AUTO"
        packet_pts = []
        decoded = _decoded(container, stream, info.path, packet_pts)
        try:
            yield from _resample(_timed(decoded, stream, info, packet_pts), info)
        finally:
            decoded.close()  # before the container closes under it


def _resample(timed, info: MediaInfo) -> Iterator[np.ndarray]:
    """Hold each source frame from half a source frame before its pts until the next one comes,
    and emit it at every 25 fps instant ``start + i / 25`` it covers (``info.frames`` in all)."""
    early = SHOW_EARLY / info.source_fps
    held, done = None, 0
    for time, frame in timed:
        if held is not None:
            shown = min(math.ceil((time - early - info.start) * VIDEO_FPS), info.frames)
            yield from _copies(held, info, shown - done)
            done = max(done, shown)
        if done >= info.frames:
            return
        held = frame
    if held is not None:
        yield from _copies(held, info, info.frames - done)


def _timed(frames, stream, info: MediaInfo, packet_pts: list):
    """(presentation time s, frame) pairs. Frames leave the decoder in display order, so their
    pts must rise; where they fall (h264 in AVI, whose pts are decode times plus a delay), that
    frame and all later ones take the smallest packet pts not yet taken instead."""
    tb, step = stream.time_base, 1 / info.source_fps
    scrambled, time, pending = False, info.start - step, None
    for frame in itertools.chain(frames, [None]):
        if pending is not None:
            held, smallest = pending
            later = None if frame is None else frame.pts
            scrambled = scrambled or held.pts is None or (later is not None and later <= held.pts)
            pts = smallest if scrambled and smallest is not None else held.pts
            time = float(pts * tb) if pts is not None else time + step
            yield time, held
        if frame is not None:
            pending = frame, heapq.heappop(packet_pts) if packet_pts else None


def _copies(frame, info: MediaInfo, count: int) -> Iterator[np.ndarray]:
    """``count`` RGB arrays of one source frame, converted once (no work when count <= 0).
    A frame whose size differs from the first one's (the stream changed size) is scaled to it."""
    if count <= 0:
        return
    turned = info.rotation in (90, 270)
    width, height = (info.height, info.width) if turned else (info.width, info.height)
    rgb = upright(frame.to_ndarray(format="rgb24", width=width, height=height), info.rotation)
    yield rgb
    for _ in range(count - 1):
        yield rgb.copy()


def _resampled_audio(container, stream, info: MediaInfo, total: int):
    """(start s of the audio, int16 16 kHz mono samples from there), enough to fill ``total``
    samples of the timeline from ``info.start``; the resampler is flushed at the stream's end."""
    resampler = _resampler()
    first, chunks, have, needed = None, [], 0, total
    for frame in _gaps_filled(_decoded(container, stream, info.path), stream):
        if first is None:
            first = info.start if frame.pts is None else _seconds(frame, stream)
            needed = total - round((first - info.start) * SAMPLE_RATE)
        try:
            outs = resampler.resample(frame)
        except ValueError:  # the rate, layout or sample format changed mid-stream: start anew
            outs, resampler = resampler.resample(None), _resampler()
            outs += resampler.resample(frame)
        for out in outs:
            chunks.append(out.to_ndarray().reshape(-1))
            have += chunks[-1].size
        if have >= needed:
            break
    else:
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    if first is None:
        raise SpeechForensicsError(
            f"{info.path}: its audio track yields no samples; re-encode it, "
            "e.g. ffmpeg -i clip -c:v libx264 -c:a aac fixed.mp4"
        )
    return first, np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


def read_pcm16(path) -> np.ndarray:
    """All of the audio as ``ffmpeg -i FILE -vn -ar 16000 -ac 1 out.wav`` writes it (what the
    original SpeechForensics scores): int16 mono 16 kHz from the first decoded sample, through
    one resampler, with no alignment to the video and no gaps filled (paper.py)."""
    path = Path(path)
    with _open(path) as container:
        stream = _audio_stream(container, path)
        resampler, chunks = _resampler(), []
        for frame in _decoded(container, stream, path):
            chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(frame)]
        chunks += [out.to_ndarray().reshape(-1) for out in resampler.resample(None)]
    if not chunks:
        raise SpeechForensicsError(f"{path}: its audio track yields no samples; re-encode it")
    return np.concatenate(chunks)


def _resampler() -> av.AudioResampler:
    """libswresample to s16 mono 16 kHz, with FFmpeg's defaults (as ``ffmpeg -ar 16000 -ac 1``)."""
    return av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)


def _gaps_filled(frames, stream) -> Iterator:
    """Decoded audio frames with silence inserted where the timestamps jump ahead by
    AUDIO_GAP_SECONDS or more (skipped damaged packets, dropouts), so later sound keeps sync."""
    expected = None  # s: where the next frame should start
    for frame in frames:
        time = expected if frame.pts is None else _seconds(frame, stream)
        if expected is not None and time - expected >= AUDIO_GAP_SECONDS:
            yield _silence(frame, round((time - expected) * frame.sample_rate))
        expected = (time if time is not None else 0.0) + frame.samples / frame.sample_rate
        yield frame


def _silence(like, samples: int):
    """An audio frame of ``samples`` zero samples in the format, layout and rate of ``like``."""
    frame = av.AudioFrame(format=like.format.name, layout=like.layout.name, samples=samples)
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    frame.sample_rate = like.sample_rate
    return frame


def rgb_frame(frame, index: int, what: str) -> np.ndarray:
    """`frame` as an [H, W, 3] uint8 RGB array, or the one-line error saying `what` needs one."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise SpeechForensicsError(
            f"frame {index} is {frame.dtype} {frame.shape}; {what} needs [H, W, 3] uint8 RGB "
            "frames (decode with speechforensics.media)"
        )
    return frame


def pcm16(audio: np.ndarray) -> np.ndarray:
    """float samples in [-1, 1) as int16 PCM for an encoder (rounded, clipped at full scale)."""
    return np.clip(np.round(np.asarray(audio) * PCM_FULL_SCALE), -32768, 32767).astype(np.int16)


def pad_or_trim(audio: np.ndarray, samples: int) -> np.ndarray:
    """`audio` cut to `samples`, or padded at its end with silence (zeros) to that length."""
    return np.pad(audio[:samples], (0, max(0, samples - len(audio))))


def repeat_to(audio: np.ndarray, samples: int) -> np.ndarray:
    """`audio` repeated end to end and cut to `samples`: a voice that fills the whole length, as
    a dub fills the picture (silence after a short voice would leave the rest of the clip
    unjudged and make a swapped voice easier to tell by its length alone)."""
    if not len(audio):
        return np.zeros(samples, audio.dtype)
    return np.resize(audio, samples)


# Writing (constructed test clips, re-encoded copies)

WRITE_CRF = 18  # H.264 quality of written clips (visually lossless)


def write_clip(path, frames, audio: np.ndarray | None = None) -> Path:
    """Encode RGB frames ([H, W, 3] uint8, any iterable) at 25 fps as H.264 and, if given,
    ``audio`` (float in [-1, 1), 16 kHz mono) as AAC, both starting at 0 s, into ``path``."""
    frames = iter(frames)
    first = next(frames)
    path = Path(path)
    with av.open(str(path), "w") as out:
        options = {"crf": str(WRITE_CRF), "x264-params": x264_repeatable()}
        video = out.add_stream("libx264", rate=VIDEO_FPS, options=options)
        video.width, video.height, video.pix_fmt = first.shape[1], first.shape[0], "yuv420p"
        voice = None if audio is None else out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for frame in itertools.chain([first], frames):
            out.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        out.mux(video.encode())
        if voice is not None:
            sound = av.AudioFrame.from_ndarray(pcm16(audio)[None], format="s16", layout="mono")
            sound.sample_rate = SAMPLE_RATE
            # an explicit start, or the encoder's 1024 priming samples delay the sound
            sound.pts, sound.time_base = 0, Fraction(1, SAMPLE_RATE)
            out.mux(voice.encode(sound))
            out.mux(voice.encode())
    return path


def redub(path, video_from, audio: np.ndarray) -> Path:
    """Copy the video track of ``video_from`` into ``path`` as it is (not re-encoded) with
    ``audio`` (float in [-1, 1), 16 kHz mono) as its AAC sound from 0 s: a clip write_clip
    wrote, with other sound, for the cost of the sound alone."""
    path = Path(path)
    with _open(video_from) as source, av.open(str(path), "w") as out:
        stream = _video_stream(source, Path(video_from))
        video = out.add_stream_from_template(stream)
        voice = out.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for packet in source.demux(stream):
            if packet.dts is not None:  # not the demuxer's empty packet at the end
                packet.stream = video
                out.mux(packet)
        sound = av.AudioFrame.from_ndarray(pcm16(audio)[None], format="s16", layout="mono")
        sound.sample_rate = SAMPLE_RATE
        sound.pts, sound.time_base = 0, Fraction(1, SAMPLE_RATE)  # as in write_clip
        out.mux(voice.encode(sound))
        out.mux(voice.encode())
    return path


X264_AVX512 = "AVX512"  # x264's name for the instruction set whose mbtree code reads past rows


@functools.cache
def x264_repeatable() -> str:
    """The x264 option (``x264-params``) that makes libx264 give the same bytes for the same
    frames in every process: every instruction set x264 finds on this CPU but AVX-512. x264's
    AVX-512 macroblock-tree code takes 8 macroblocks at a time and so reads past the end of a row
    whose width is not a multiple of 8 macroblocks, at the last rows into memory whose contents
    vary: the same frames came out differently run after run (PyAV's x264 core 165), a mouth ROI
    as well as a 160-px clip recompressed by perturb's VC."""
    found = _x264_instruction_sets()
    if found is None:  # x264 did not say what it uses: plain C, the same on every machine
        return "asm=0"
    return f"asm={','.join(name for name in found if name != X264_AVX512)}"


def _x264_instruction_sets() -> list[str] | None:
    """The instruction sets x264 picks on this CPU (its "using cpu capabilities: ..." line, in
    its own names, which its ``asm`` option reads back), or None if it does not say."""
    context = av.CodecContext.create("libx264", "w")
    context.width = context.height = 64
    context.pix_fmt, context.time_base = "yuv420p", Fraction(1, VIDEO_FPS)
    with _FFMPEG_LOG_LEVEL:  # PyAV's log level is process-wide: raised for this open only
        level = av.logging.get_level()
        av.logging.set_level(av.logging.INFO)
        try:
            with av.logging.Capture() as logs:
                context.open()
        finally:
            av.logging.set_level(level)
    for _, _, message in logs:
        if message.startswith("using cpu capabilities:"):
            return message.split(":", 1)[1].split()
    return None
