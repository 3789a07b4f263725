"""The command line: results on stdout, one-line errors on stderr, exit codes."""

import json
import subprocess
import sys

import pytest
from conftest import SHARED, need

from speechforensics.cli import main


@pytest.fixture
def dev():
    return need(SHARED / "media/dev")


def test_inspect_describes_a_checkpoint(fixture_checkpoints, capsys):
    assert main(["inspect", str(fixture_checkpoints("small_finetuned_s2s"))]) == 0
    out = capsys.readouterr().out
    assert "fine-tuned" in out and "layers 2, width 64, heads 4, FFN 128" in out
    assert "float16" in out and "loads: yes" in out


def test_inspect_json(fixture_checkpoints, capsys):
    assert main(["inspect", "--json", str(fixture_checkpoints("small_pretrain"))]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["kind"] == "pre-trained" and info["size"] == "custom" and info["loads"] is True
    assert info["layers"] == 2 and info["weight_dtype"] == "float32"
    assert info["parameters"] == 11_334_656


@pytest.mark.slow
def test_inspect_names_the_base_size(fixture_checkpoints, capsys):
    assert main(["inspect", "--json", str(fixture_checkpoints("base_pretrain"))]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["size"] == "BASE" and info["parameters"] == 102_620_160


def test_convert_then_inspect(fixture_checkpoints, tmp_path, capsys):
    out = tmp_path / "small.safetensors"
    assert main(["convert", str(fixture_checkpoints("small_pretrain")), str(out)]) == 0
    assert out.exists() and out.with_suffix(".json").exists()
    assert main(["inspect", str(out)]) == 0
    assert "converted" in capsys.readouterr().out


@pytest.mark.parametrize("content", [b"", b"not a checkpoint", b"PK\x03\x04garbage"])
def test_bad_checkpoint_is_one_line_and_exit_1(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    proc = subprocess.run(
        [sys.executable, "-m", "speechforensics", "inspect", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("speechforensics: error: ")
    assert str(path) in proc.stderr and "Traceback" not in proc.stderr


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["inspect"])
    assert e.value.code == 2
    assert main([]) == 2


def test_malformed_sha256_is_a_usage_error():
    with pytest.raises(SystemExit) as e:
        main(["download", "large", "--sha256", "not-a-hash"])
    assert e.value.code == 2


DEV_CLIP = "grid_bbaf2n.mpg"  # 3 s, one face


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False, timeout=300
    )


def test_help_and_a_lipsync_lite_detect_never_import_torch(dev):
    """Start-up: torch (seconds to load) is imported only by what needs it."""
    code = f"""
import sys
from speechforensics.cli import main
try:
    main(["--help"])
except SystemExit:
    pass
assert "torch" not in sys.modules, "--help imported torch"
assert "cv2" not in sys.modules and "numpy" not in sys.modules, "--help imported OpenCV/numpy"
assert main(["detect", {str(dev / DEV_CLIP)!r}, "--quiet"]) == 0
assert "torch" not in sys.modules, "a lipsync-lite detect imported torch"
"""
    proc = _run_python(code)
    assert proc.returncode == 0, proc.stderr
    assert "real" in proc.stdout or "fake" in proc.stdout


def test_a_batch_goes_on_after_an_unexpected_failure(dev, monkeypatch, capsys):
    """One file that trips a library in an unforeseen way is that file's one line; the next
    file is still judged, and the exit status says something failed."""
    from speechforensics import pipeline

    real = pipeline.prepare
    broken = dev / "grid_brbk7n.mpg"

    def prepare(path, *args, **kwargs):
        if str(path) == str(broken):
            raise RuntimeError("injected: OpenCV tripped\nover this frame")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare", prepare)
    assert main(["detect", str(broken), str(dev / DEV_CLIP), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert out.count("\n") == 1 and out.startswith(str(dev / DEV_CLIP))
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{broken}: unexpected RuntimeError (injected: OpenCV tripped over this frame)" in err

    assert main(["--debug", "detect", str(broken), str(dev / DEV_CLIP), "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" in err and "injected" in err and out.startswith(str(dev / DEV_CLIP))
