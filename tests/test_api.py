"""speechforensics/__init__.py: the Python API in three calls, as the README shows it."""

import subprocess
import sys

import pytest
from conftest import SHARED, need

import speechforensics


def test_three_calls_judge_a_video():
    video = need(SHARED / "media/dev/lrs2_deepavsr_00016.mp4")
    backend = speechforensics.load_backend()
    result = speechforensics.detect(video, backend)
    assert isinstance(backend, speechforensics.Backend)
    assert result["backend"] == "lipsync-lite" and result["verdict"] == "real"
    assert result["file"] == str(video) and result["error"] is None
    assert result["score"] >= result["threshold"]


def test_a_bad_file_raises_the_one_line_error(tmp_path):
    with pytest.raises(speechforensics.SpeechForensicsError, match="no such file"):
        speechforensics.detect(tmp_path / "missing.mp4", speechforensics.load_backend())


def test_every_exported_name_resolves_and_import_loads_nothing_heavy():
    for name in speechforensics.__all__:
        assert getattr(speechforensics, name) is not None, name
    with pytest.raises(AttributeError):
        speechforensics.not_a_name  # noqa: B018
    code = "import sys, speechforensics; assert 'torch' not in sys.modules; print('ok')"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.stdout.strip() == "ok", proc.stderr
