"""speechforensics.media on clips the tests write with PyAV (frame index painted on each frame,
a click in the audio) and on the dev clips in ../shared/media/dev."""

import csv
import inspect
import math
import warnings
from fractions import Fraction

import av
import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import media
from speechforensics.errors import SpeechForensicsError
from speechforensics.features import SAMPLE_RATE, VIDEO_FPS

DEV = SHARED / "media/dev"
W, H = 64, 48  # pixels of the written clips
CLICK_AT = 1.0  # s: where the written audio has its click, on the file's timeline
CLICK_SLACK = SAMPLE_RATE // 1000  # samples (1 ms) the click may move through a codec
TB = Fraction(1, 3000)  # video time base of the written clips: exact for 25, 30, 50 fps


# Writing test clips


def picture(k: int) -> np.ndarray:
    """Frame k of a written clip: two flat halves whose grey levels spell k (0..255)."""
    img = np.empty((H, W, 3), np.uint8)
    img[:, : W // 2] = 16 * (k % 16) + 8
    img[:, W // 2 :] = 16 * (k // 16) + 8
    return img


def index(rgb: np.ndarray) -> int:
    """The k that picture(k) painted, read back from the middle of each half."""
    lo, hi = rgb[8:-8, 8 : W // 2 - 8].mean(), rgb[8:-8, W // 2 + 8 : -8].mean()
    return round((lo - 8) / 16) + 16 * round((hi - 8) / 16)


def click_track(seconds: float, rate: int, start: float = 0.0) -> np.ndarray:
    """int16 mono silence from `start` s with a two-sample click at CLICK_AT s."""
    x = np.zeros(round(seconds * rate), np.int16)
    at = round((CLICK_AT - start) * rate)
    if 0 <= at < x.size - 2:
        x[at : at + 2] = 20_000
    return x


def write_clip(path, times, audio=None, rate=16_000, audio_start=0.0, **kw):
    """Write frames shown at `times` (s; frame k is picture(k)) and int16 mono `audio`
    starting at `audio_start` s. kw: vcodec, acodec, layout, fmt, fps, tb (video time base),
    rotation, pictures, size."""
    with av.open(str(path), "w", format=kw.get("fmt")) as out:
        video = out.add_stream(kw.get("vcodec", "libx264"), rate=kw.get("fps", VIDEO_FPS))
        video.width, video.height = kw.get("size", (W, H))
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = tb = kw.get("tb", TB)
        if kw.get("rotation"):
            video.set_display_rotation(-kw["rotation"])  # PyAV counts counter-clockwise
        if audio is not None:
            layout = kw.get("layout", "mono")
            sound = out.add_stream(kw.get("acodec", "pcm_s16le"), rate=rate, layout=layout)
        pictures = kw.get("pictures", picture)
        for k, t in enumerate(times):
            frame = av.VideoFrame.from_ndarray(pictures(k), format="rgb24")
            frame.pts, frame.time_base = round(t / tb), tb
            out.mux(video.encode(frame))
        out.mux(video.encode())
        if audio is not None:
            out.mux(sound.encode(_audio_frame(audio, rate, audio_start, sound.layout.name)))
            out.mux(sound.encode())
    return path


def _audio_frame(x: np.ndarray, rate: int, start: float, layout: str) -> av.AudioFrame:
    channels = 2 if layout == "stereo" else 1
    packed = np.repeat(x, channels)[None, :]
    frame = av.AudioFrame.from_ndarray(packed, format="s16", layout=layout)
    frame.sample_rate, frame.pts, frame.time_base = rate, round(start * rate), Fraction(1, rate)
    return frame


def steady(seconds: float, fps: float = VIDEO_FPS) -> np.ndarray:
    """Presentation times of a constant-rate clip."""
    return np.arange(round(seconds * fps)) / float(fps)


def shown(times, start: float, n: int, fps: float) -> list[int]:
    """The rule media follows: at start + i/25 the last frame whose pts is at most that,
    half a source frame (1 / (2 fps)) early counting as on time."""
    times = np.asarray(times, float)
    return [
        int(np.flatnonzero(times <= start + i / VIDEO_FPS + 0.5 / fps + 1e-9)[-1]) for i in range(n)
    ]


def clip(tmp_path, name="clip.mkv", seconds=2.0, **kw):
    """A steady 25 fps clip with the click track."""
    rate = kw.pop("rate", 16_000)
    return write_clip(tmp_path / name, steady(seconds), click_track(seconds, rate), rate, **kw)


# Video: 25 fps by presentation timestamp


def test_25fps_source_comes_out_frame_for_frame(tmp_path):
    path = clip(tmp_path, "c.mp4", seconds=3.0, acodec="aac")
    info = media.probe(path)
    frames = list(media.read_frames(path))
    assert (info.frames, info.duration, info.start, info.source_fps) == (75, 3.0, 0.0, 25.0)
    assert (info.width, info.height, info.rotation, info.truncated) == (W, H, 0, False)
    assert [index(f) for f in frames] == list(range(75))
    assert all(f.shape == (H, W, 3) and f.dtype == np.uint8 for f in frames)
    assert all(f.flags.c_contiguous for f in frames)


@pytest.mark.parametrize("fps", [30, 50, Fraction(30000, 1001), 15])
def test_other_rates_resample_by_timestamp(tmp_path, fps):
    times = steady(3.0, fps)
    path = write_clip(tmp_path / "c.mkv", times, click_track(3.0, 16_000), fps=fps)
    info = media.probe(path)
    frames = [index(f) for f in media.read_frames(path)]
    assert info.frames == math.ceil(round(len(times) * VIDEO_FPS / fps, 6))
    assert info.source_fps == pytest.approx(float(fps), abs=0.01)
    assert frames == shown(times, 0.0, info.frames, fps)


def test_variable_frame_rate(tmp_path):
    gaps = np.random.default_rng(0).integers(10, 90, 59) / 1000  # s between frames
    times = np.r_[0, np.cumsum(gaps)]
    path = write_clip(tmp_path / "vfr.mp4", times, click_track(3.0, 16_000))
    info = media.probe(path)
    frames = [index(f) for f in media.read_frames(path)]
    end = times[-1] + 1 / info.source_fps  # the last frame lasts one average frame
    assert abs(info.frames - end * VIDEO_FPS) <= 1
    assert frames == shown(times, 0.0, info.frames, info.source_fps)


@pytest.mark.parametrize(
    "name, vcodec, acodec, fmt",
    [
        ("x264.avi", "libx264", "mp2", None),  # AVI has no B-frame pts: FFmpeg's come scrambled
        ("mpeg4.avi", "mpeg4", "pcm_s16le", None),
        ("mpeg1.mpg", "mpeg1video", "mp2", "mpeg"),
        ("vp9.webm", "libvpx-vp9", "libopus", None),
        ("hevc.mov", "libx265", "aac", None),
    ],
)
def test_containers_and_codecs(tmp_path, name, vcodec, acodec, fmt):
    rate = 48_000 if acodec == "libopus" else 44_100
    times = steady(2.0)
    audio = click_track(2.0, rate)
    tb = Fraction(1, VIDEO_FPS)  # AVI and MPEG-1 take only frame-rate time bases
    path = write_clip(
        tmp_path / name, times, audio, rate, vcodec=vcodec, acodec=acodec, fmt=fmt, tb=tb
    )
    info = media.probe(path)
    x = media.read_audio(path)
    assert [index(f) for f in media.read_frames(path)] == list(range(50))
    assert info.frames == 50 and x.size == 50 * 640 and np.abs(x).max() > 0.1


def test_read_frames_streams_and_fails_early(tmp_path):
    path = clip(tmp_path)
    frames = media.read_frames(path)
    assert inspect.isgenerator(frames)
    assert index(next(frames)) == 0 and index(next(frames)) == 1
    frames.close()
    with pytest.raises(SpeechForensicsError):
        media.read_frames(tmp_path / "missing.mp4")  # before any next()


def test_cap(tmp_path):
    path = clip(tmp_path, seconds=3.0)
    info = media.probe(path, max_seconds=2.0)
    assert (info.frames, info.duration, info.truncated) == (50, 2.0, True)
    assert [index(f) for f in media.read_frames(path, max_seconds=2.0)] == list(range(50))
    assert media.read_audio(path, max_seconds=2.0).size == 50 * 640
    whole = media.probe(path, max_seconds=None)
    assert (whole.frames, whole.truncated) == (75, False)
    with pytest.raises(SpeechForensicsError, match="at least 1 s"):
        media.probe(path, max_seconds=0.5)


def test_streams_that_change_mid_way(tmp_path):
    """Two MPEG-TS files joined byte for byte: the picture size and the audio rate and layout
    change at 2 s. Frames keep the first size; the audio keeps its timeline."""
    first = clip(tmp_path, "a.ts", seconds=2.0, acodec="aac", fmt="mpegts")
    bigger = write_clip(
        tmp_path / "b.ts",
        2.0 + steady(2.0),
        np.zeros(2 * 44_100, np.int16),
        44_100,
        2.0,
        acodec="aac",
        layout="stereo",
        fmt="mpegts",
        size=(2 * W, 2 * H),
        pictures=lambda k: np.full((2 * H, 2 * W, 3), 128, np.uint8),
    )
    joined = tmp_path / "joined.ts"
    joined.write_bytes(first.read_bytes() + bigger.read_bytes())
    info = media.probe(joined)
    frames = list(media.read_frames(joined))
    x = media.read_audio(joined)
    assert info.duration > 3.5 and len(frames) == info.frames and x.size == info.frames * 640
    assert {f.shape for f in frames} == {(H, W, 3)}
    assert index(frames[10]) == 10 and abs(int(frames[-1].mean()) - 128) <= 4
    assert abs(click(x) - CLICK_AT * SAMPLE_RATE) <= CLICK_SLACK


# Rotation


def corner(k: int) -> np.ndarray:
    """A picture whose top-left quarter is white: shows which way a frame was turned."""
    img = np.zeros((H, W, 3), np.uint8)
    img[: H // 2, : W // 2] = 255
    return img


@pytest.mark.parametrize("clockwise", [90, 180, 270])
@pytest.mark.parametrize("name", ["r.mp4", "r.mov", "r.mkv"])
def test_rotation_metadata_is_applied(tmp_path, name, clockwise):
    audio = click_track(1.2, 16_000)
    path = write_clip(tmp_path / name, steady(1.2), audio, rotation=clockwise, pictures=corner)
    info = media.probe(path)
    first = next(media.read_frames(path))
    upright = np.rot90(corner(0), -clockwise // 90)  # what a player shows
    assert info.rotation == clockwise
    assert first.shape == upright.shape == (info.height, info.width, 3)
    assert np.abs(first.astype(int) - upright).mean() < 8


def test_upright_turns_clockwise():
    a = np.arange(6).reshape(2, 3, 1)
    assert media.upright(a, 90)[:, :, 0].tolist() == [[3, 0], [4, 1], [5, 2]]
    assert media.upright(a, 180)[:, :, 0].tolist() == [[5, 4, 3], [2, 1, 0]]
    assert media.upright(a, 270)[:, :, 0].tolist() == [[2, 5], [1, 4], [0, 3]]
    assert media.upright(a, 0) is not None and media.upright(a, 360).shape == a.shape


# Audio: 16 kHz mono on the video's timeline


def click(audio: np.ndarray) -> int:
    return int(np.argmax(np.abs(audio)))


@pytest.mark.parametrize(
    "name, acodec, rate, layout",
    [
        ("a.mkv", "pcm_s16le", 16_000, "mono"),
        ("a.mov", "pcm_s16le", 48_000, "stereo"),
        ("a.mp4", "aac", 44_100, "stereo"),
        ("a.ts", "mp2", 44_100, "stereo"),
        ("a.webm", "libopus", 48_000, "mono"),
    ],
)
@pytest.mark.parametrize("audio_start", [0.0, 0.2])
def test_click_lands_on_the_video_timeline(tmp_path, name, acodec, rate, layout, audio_start):
    seconds, vcodec = 2.0, "libvpx" if name.endswith("webm") else "libx264"
    audio = click_track(seconds - audio_start, rate, audio_start)
    path = write_clip(
        tmp_path / name,
        steady(seconds),
        audio,
        rate,
        audio_start,
        acodec=acodec,
        layout=layout,
        vcodec=vcodec,
        fmt="mpegts" if name.endswith("ts") else None,
    )
    info = media.probe(path)
    x = media.read_audio(path)
    assert x.dtype == np.float32 and x.size == info.frames * 640
    # The video was written from 0 s; a muxer may shift both tracks (mpegts: start 0.08 s)
    assert abs(click(x) - CLICK_AT * SAMPLE_RATE) <= CLICK_SLACK
    lead = round(audio_start * SAMPLE_RATE) - CLICK_SLACK
    assert not x[: max(lead, 0)].any()  # zeros before the audio starts


def test_video_that_starts_late_drops_early_audio(tmp_path):
    times = 0.3 + steady(2.0)
    path = write_clip(tmp_path / "late.mkv", times, click_track(2.3, 16_000))
    info = media.probe(path)
    x = media.read_audio(path)
    assert info.start == pytest.approx(0.3) and info.frames == 50 and x.size == 50 * 640
    assert click(x) == round((CLICK_AT - 0.3) * SAMPLE_RATE)
    assert index(next(media.read_frames(path))) == 0


def test_audio_is_exact_int16_and_padded_to_the_video(tmp_path):
    path = write_clip(tmp_path / "short.mkv", steady(2.0), click_track(1.5, 16_000))
    x = media.read_audio(path)
    assert x.size == 50 * 640 and np.all(x[round(1.5 * SAMPLE_RATE) :] == 0)
    pcm = x * 32768
    assert np.array_equal(pcm, np.round(pcm)) and pcm.min() >= -32768 and pcm.max() <= 32767
    assert pcm[16000] == 20_000  # 16 kHz mono s16 in and out: untouched


def test_silent_audio_is_fine(tmp_path):
    path = write_clip(tmp_path / "s.mp4", steady(2.0), np.zeros(32000, np.int16), acodec="aac")
    x = media.read_audio(path)
    assert x.size == media.probe(path).frames * 640 and not x.any()


# Bad input


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(SpeechForensicsError, match="nope.mp4: no such file"):
        media.probe(tmp_path / "nope.mp4")
    with pytest.raises(SpeechForensicsError, match="is a directory"):
        media.read_audio(tmp_path)


def test_text_file_is_not_media(tmp_path):
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 100)
    with pytest.raises(SpeechForensicsError, match="notes.mp4 is not a media file") as err:
        media.probe(path)
    assert "\n" not in str(err.value) and err.value.__cause__ is not None


def test_no_audio_track(tmp_path):
    path = write_clip(tmp_path / "mute.mp4", steady(2.0))
    need_both = "mute.mp4 has no audio track; speechforensics compares lips with the voice"
    with pytest.raises(SpeechForensicsError, match=need_both):
        media.probe(path)
    with pytest.raises(SpeechForensicsError, match=need_both):
        media.read_audio(path)
    assert len(list(media.read_frames(path))) == 50  # the frames alone need no audio


def test_no_video_track(tmp_path):
    path = tmp_path / "voice.mkv"
    with av.open(str(path), "w") as out:
        sound = out.add_stream("pcm_s16le", rate=16_000, layout="mono")
        out.mux(sound.encode(_audio_frame(click_track(2.0, 16_000), 16_000, 0.0, "mono")))
        out.mux(sound.encode())
    with pytest.raises(SpeechForensicsError, match="voice.mkv has no video track"):
        media.probe(path)


def test_video_track_without_frames(tmp_path):
    path = write_clip(tmp_path / "empty.mkv", [], click_track(2.0, 16_000))
    with pytest.raises(SpeechForensicsError, match="empty.mkv: its video track yields no frames"):
        media.probe(path)


def test_too_short(tmp_path):
    times = steady(0.5, fps=30)  # 15 frames: 0.5 s exactly
    path = write_clip(tmp_path / "short.mp4", times, click_track(0.5, 16_000), fps=30)
    with pytest.raises(SpeechForensicsError, match=r"only 0.50 s of video.*at least 1 s"):
        media.probe(path)


def test_mp4_cut_in_half_is_unreadable(tmp_path):
    noise = np.random.default_rng(0).integers(0, 256, (25, H, W, 3), np.uint8)
    path = write_clip(
        tmp_path / "full.mp4",
        steady(2.0),
        click_track(2.0, 16_000),
        pictures=lambda k: noise[k % 25],
    )
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(SpeechForensicsError, match="cut.mp4 is not a media file.*moov atom"):
        media.probe(cut)


@pytest.mark.parametrize(
    "name, fmt, warns", [("full.mkv", None, True), ("full.ts", "mpegts", False)]
)
def test_cut_in_half_uses_what_is_there(tmp_path, name, fmt, warns):
    path = clip(tmp_path, name, seconds=8.0, acodec="aac", fmt=fmt)
    cut = tmp_path / ("cut" + path.suffix)
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        info = media.probe(cut)
        frames = [index(f) for f in media.read_frames(cut)]
        x = media.read_audio(cut)
    assert 1.0 <= info.duration < 6.0 and x.size == info.frames * 640
    assert len(frames) == info.frames and frames[: info.frames - 2] == list(range(info.frames - 2))
    assert any("can be read" in str(w.message) for w in caught) == warns


def test_damaged_middle_keeps_sync(tmp_path):
    path = write_clip(
        tmp_path / "ok.ts",
        steady(4.0),
        click_track(4.0, 44_100),
        44_100,
        acodec="aac",
        fmt="mpegts",
    )
    data = bytearray(path.read_bytes())
    junk = np.random.default_rng(1).integers(0, 256, 500, np.uint8).tobytes()
    data[len(data) // 8 : len(data) // 8 + 500] = junk  # before the click
    bad = tmp_path / "bad.ts"
    bad.write_bytes(bytes(data))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        info = media.probe(bad)
        frames = list(media.read_frames(bad))
        x = media.read_audio(bad)
    assert len(frames) == info.frames and x.size == info.frames * 640
    assert abs(click(x) - CLICK_AT * SAMPLE_RATE) <= CLICK_SLACK  # video written from 0 s


# The dev clips


def manifest() -> list[dict]:
    if not (DEV / "MANIFEST.tsv").exists():
        return []
    with open(DEV / "MANIFEST.tsv", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def video_seconds(path) -> float:
    """The video track's duration by its own metadata (container index), in seconds."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return float(stream.duration * stream.time_base)


@pytest.mark.parametrize("row", manifest() or [None], ids=lambda r: r["file"] if r else "absent")
def test_dev_clip(row):
    need(DEV / "MANIFEST.tsv")
    path = need(DEV / row["file"])
    info = media.probe(path)
    assert (info.width, info.height) == (int(row["width"]), int(row["height"]))
    assert (info.audio_rate, info.audio_channels) == (
        int(row["audio_sr"]),
        int(row["audio_channels"]),
    )
    assert info.source_fps == pytest.approx(float(row["fps"]), abs=0.01)
    assert abs(info.frames - video_seconds(path) * VIDEO_FPS) <= 1
    # The manifest's durations are the container's (the longer track, + up to 0.06 s)
    assert abs(info.duration - float(row["duration_s"])) <= 0.25
    assert next(media.read_frames(path)).shape == (int(row["height"]), int(row["width"]), 3)
    x = media.read_audio(path)
    assert x.size == info.frames * 640 and x.dtype == np.float32 and 0 < np.abs(x).max() <= 1
    pcm = plain_audio(path)  # every dev clip's audio starts with its video, at 0 s
    n = min(x.size, pcm.size)
    assert info.start == 0 and np.array_equal(x[:n], pcm[:n] / np.float32(32768))
    assert not x[n:].any()  # padding, where the audio is shorter than the video


def plain_audio(path) -> np.ndarray:
    """The whole audio track through libswresample to s16 mono 16 kHz, nothing else done."""
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    with av.open(str(path)) as container:
        frames = [r for f in container.decode(audio=0) for r in resampler.resample(f)]
    frames += resampler.resample(None)
    return np.concatenate([f.to_ndarray().ravel() for f in frames])


def decoded(path) -> tuple[list[float], list[np.ndarray]]:
    """Every frame of the video track as PyAV decodes it, with its presentation time."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pairs = [
            (float(f.pts * stream.time_base), f.to_ndarray(format="rgb24"))
            for f in container.decode(stream)
        ]
    return [t for t, _ in pairs], [a for _, a in pairs]


@pytest.mark.parametrize(
    "name",
    [
        "pcavs_Pose_00067.mp4",
        "grid_bbaf2n.mpg",
        "vrt_face4.mp4",
        "vexpress_RD_Radio10_0_clip_0.mp4",
    ],
)
def test_dev_frames_follow_the_timestamps(name):
    path = need(DEV / name)
    info = media.probe(path)
    times, source = decoded(path)
    frames = list(media.read_frames(path))
    expect = shown(times, info.start, info.frames, info.source_fps)
    if info.source_fps == VIDEO_FPS:
        assert expect == list(range(len(source)))  # frame for frame, none dropped or repeated
    assert len(frames) == info.frames
    assert all(np.array_equal(f, source[k]) for f, k in zip(frames, expect))


def test_dev_audio_cap_cuts_the_same_samples():
    path = need(DEV / "vrt_face2.mp4")  # 44.1 kHz stereo AAC
    whole = media.read_audio(path)
    assert np.array_equal(media.read_audio(path, max_seconds=2.0), whole[: 2 * SAMPLE_RATE])


def test_pad_with_silence_or_repeat_to_fill():
    voice = np.arange(1, 6, dtype=np.float32)
    assert media.pad_or_trim(voice, 8).tolist() == [1, 2, 3, 4, 5, 0, 0, 0]
    assert media.repeat_to(voice, 12).tolist() == [1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1, 2]
    assert media.repeat_to(voice, 3).tolist() == media.pad_or_trim(voice, 3).tolist() == [1, 2, 3]
    empty = media.repeat_to(np.zeros(0, np.float32), 4)
    assert empty.dtype == np.float32 and empty.tolist() == [0, 0, 0, 0]


def test_write_clip_round_trip_keeps_sync(tmp_path):
    """media.write_clip: frames and audio come back aligned (no AAC priming delay)."""
    audio = np.zeros(50 * 640)
    audio[16000:16002] = 0.6  # a click at 1.0 s
    path = media.write_clip(tmp_path / "w.mp4", (picture(k) for k in range(50)), audio)
    assert [index(f) for f in media.read_frames(path)] == list(range(50))
    assert abs(click(media.read_audio(path)) - 16000) <= CLICK_SLACK


def test_opening_from_many_threads_leaves_pyav_logging_as_it_was(tmp_path):
    """The log level is raised for an open only, under a lock: threads never leave it changed."""
    import threading

    import av

    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"x" * 500)
    before = av.logging.get_level()

    def open_bad():
        for _ in range(20):
            with pytest.raises(SpeechForensicsError, match="not a media file"):
                media.probe(bad)

    threads = [threading.Thread(target=open_bad) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert av.logging.get_level() == before
