"""The command line: results on stdout, one-line errors on stderr, exit codes."""

import json
import subprocess
import sys

import pytest

from speechforensics.cli import main


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
