"""The preprocessing pipeline end to end: every dev clip in, mouth crops and audio features out."""

import csv
import subprocess
import sys

import av
import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics.detect import prepare
from speechforensics.errors import SpeechForensicsError
from speechforensics.features import AUDIO_FEAT_DIM

DEV = SHARED / "media/dev"
REFERENCE = SHARED / "reference/preprocessing/mouth_crop_reference.npz"


def manifest() -> list[str]:
    if not (DEV / "MANIFEST.tsv").exists():
        return []
    with open(DEV / "MANIFEST.tsv") as f:
        return [row["file"] for row in csv.DictReader(f, delimiter="\t")]


@pytest.mark.slow
@pytest.mark.parametrize("name", manifest() or ["(no dev clips)"])
def test_every_dev_clip_gives_mouth_crops(name):
    clip = prepare(need(DEV / name))
    t = clip.info.frames
    assert clip.audio.shape == (t * 640,) and clip.audio_features.shape == (t, AUDIO_FEAT_DIM)
    main = clip.tracks[0]
    assert main.crops.shape == (t, 96, 96) and main.crops.dtype == np.uint8
    assert main.face.frames >= 0.9 * t, f"main face measured on {main.face.frames} of {t} frames"
    assert not main.missing.any()
    assert 20 < main.crops.mean() < 235  # a picture, not a black or blown-out canvas


@pytest.mark.parametrize(
    "clip, file",
    [("lrs2_deepavsr_00016", "lrs2_deepavsr_00016.mp4"), ("grid_lbax4n", "grid_lbax4n.mpg")],
)
def test_pipeline_lands_near_the_original_crops(clip, file):
    """Our landmarks differ from the reference's by about half a pixel (and the reference dropped
    some on purpose), so the crops differ by a few grey levels; test_mouth checks the crop exactly
    from the reference landmarks."""
    with np.load(need(REFERENCE)) as ref:
        expected = ref[f"{clip}__gray96"]
    crops = prepare(need(DEV / file)).tracks[0].crops
    assert crops.shape == expected.shape
    assert np.abs(crops.astype(int) - expected).mean() < 3.0


def write_faceless_clip(path, seconds=2.0):
    """Flat grey frames and a tone: a valid clip with nobody in it."""
    with av.open(str(path), "w") as out:
        video = out.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = 128, 96, "yuv420p"
        audio = out.add_stream("aac", rate=16000, layout="mono")
        for _ in range(int(seconds * 25)):
            frame = av.VideoFrame.from_ndarray(np.full((96, 128, 3), 128, np.uint8), format="rgb24")
            out.mux(video.encode(frame))
        out.mux(video.encode())
        tone = (8000 * np.sin(np.arange(int(seconds * 16000)) * 0.1)).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(tone[None], format="s16", layout="mono")
        frame.sample_rate = 16000
        out.mux(audio.encode(frame))
        out.mux(audio.encode())


def test_clip_without_a_face_is_a_clear_error(tmp_path):
    path = tmp_path / "nobody.mp4"
    write_faceless_clip(path)
    with pytest.raises(SpeechForensicsError, match=r"nobody\.mp4: no face long enough to judge"):
        prepare(path)


def run_cli(*args):
    return subprocess.run(
        [sys.executable, "-m", "speechforensics", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
    )


def test_crops_command_writes_a_contact_sheet(tmp_path):
    video, sheet = need(DEV / "grid_lbax4n.mpg"), tmp_path / "sheet.png"
    proc = run_cli("crops", video, sheet)
    assert proc.returncode == 0, proc.stderr
    assert '"frames_measured": 75' in proc.stdout
    import cv2

    image = cv2.imread(str(sheet), cv2.IMREAD_GRAYSCALE)
    assert image.shape[1] == 960 and image.shape[0] > 96 * 6


@pytest.mark.parametrize("content", [None, b"not a video\n"])
def test_crops_command_bad_input_is_one_line(tmp_path, content):
    video = tmp_path / "clip.mp4"
    if content is not None:
        video.write_bytes(content)
    proc = run_cli("crops", video, tmp_path / "sheet.png")
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("speechforensics: error: ")
    assert str(video) in proc.stderr and "Traceback" not in proc.stderr


def test_faceless_clip_from_the_cli(tmp_path):
    video = tmp_path / "nobody.mp4"
    write_faceless_clip(video)
    proc = run_cli("crops", video, tmp_path / "sheet.png")
    assert proc.returncode == 1 and "no face" in proc.stderr and "Traceback" not in proc.stderr
