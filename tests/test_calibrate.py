"""`speechforensics calibrate`: thresholds from genuine dev clips, then found by detect."""

import json
import shutil
from pathlib import Path

import pytest
from conftest import SHARED, need

from speechforensics import calibration
from speechforensics.calibrate import genuine_items, speech_pieces
from speechforensics.cli import main
from speechforensics.lite import PARAMS

DEV = SHARED / "media/dev"
GENUINE = [  # short genuine dev clips (3-5 s): six are enough to run, not to be stable
    "grid_bbaf2n.mpg", "grid_brbk7n.mpg", "grid_lbax4n.mpg", "grid_lbbc2a.mpg",
    "grid_lrwp9a.mpg", "lrs2_deepavsr_00001.mp4",
]  # fmt: skip
CLIP = "lrs2_deepavsr_00004.mp4"  # genuine, not among GENUINE


@pytest.fixture(scope="module")
def genuine_list(tmp_path_factory):
    folder = tmp_path_factory.mktemp("list")
    lines = [f"{need(DEV / name)} 1" for name in GENUINE] + [f"{DEV / 'missing.mp4'} 1"]
    (folder / "genuine.txt").write_text("\n".join(lines) + "\n")
    return folder / "genuine.txt"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One preprocessing cache for the module's runs (the clips are prepared once)."""
    return tmp_path_factory.mktemp("prepared")


def test_genuine_items_from_a_list_or_a_folder(tmp_path):
    manifest = need(DEV / "MANIFEST.tsv")
    assert len(genuine_items(manifest)) == 29  # its real ones
    for name in GENUINE[:2]:
        (tmp_path / "any" / "deeper").mkdir(parents=True, exist_ok=True)
        shutil.copy(DEV / name, tmp_path / "any" / "deeper" / name)
    assert [i.label for i in genuine_items(tmp_path / "any")] == [1, 1]  # a folder: all genuine
    (tmp_path / "split" / "real").mkdir(parents=True)
    (tmp_path / "split" / "fake").mkdir()
    shutil.copy(DEV / GENUINE[0], tmp_path / "split" / "real" / "a.mpg")
    shutil.copy(DEV / GENUINE[1], tmp_path / "split" / "fake" / "b.mpg")
    assert [i.path.name for i in genuine_items(tmp_path / "split")] == ["a.mpg"]


def test_speech_pieces_are_consecutive_runs_of_speech():
    import numpy as np

    usable = np.zeros(200, bool)
    usable[10:60] = usable[100:170] = True  # 120 frames of speech: two pieces of 2 s (50)
    pieces = speech_pieces(usable, 2.0)
    assert [int(p.sum()) for p in pieces] == [50, 50]
    assert not (pieces[0] & pieces[1]).any() and not ((pieces[0] | pieces[1]) & ~usable).any()
    assert np.flatnonzero(pieces[1])[0] == 100  # the second starts where the first ended


def test_calibrate_then_detect_with_lipsync_lite(genuine_list, prepared, tmp_path, capsys):
    params = tmp_path / "params.npz"
    shutil.copy(PARAMS, params)
    args = ["calibrate", genuine_list, "--lite-params", params, "--cache", prepared]
    assert main([*args, "--out", calibration.beside(params)]) == 1  # the missing clip: exit 1
    out, err = capsys.readouterr()
    assert "missing.mp4" in err and "6 genuine clips (1 skipped)" in out
    made = calibration.read(calibration.beside(params))
    assert made.backend == "lipsync-lite" and len(made.clips) == 6
    assert made.skipped[0]["file"] == "missing.mp4" and made.warnings
    assert [c["file"] for c in made.clips] == GENUINE
    result = tmp_path / "r.json"
    assert main(["detect", need(DEV / CLIP), "--lite-params", params, "--json", result]) == 0
    report = json.loads(result.read_text())[0]
    assert report["threshold"] == made.clip_threshold != 0.277
    assert report["verdict"] in ("real", "fake")


def test_calibrate_writes_to_the_cache_where_detect_finds_it(genuine_list, prepared, tmp_path):
    assert main(["calibrate", genuine_list, "--cache", prepared, "--quiet"]) == 1
    written = list((calibration.in_cache("lipsync-lite", "x").parent).glob("lipsync-lite-*"))
    assert len(written) == 1 and calibration.read(written[0]).model_file == PARAMS.name
    result = tmp_path / "r.json"
    assert main(["detect", DEV / CLIP, "--json", result]) == 0  # the shipped parameters
    threshold = json.loads(result.read_text())[0]["threshold"]
    assert threshold == calibration.read(written[0]).clip_threshold
    written[0].unlink()


@pytest.mark.parametrize(
    "name", ["small_pretrain", pytest.param("base_pretrain", marks=pytest.mark.slow)]
)
def test_calibrate_then_detect_with_avhubert(
    name, genuine_list, prepared, fixture_checkpoints, tmp_path, capsys
):
    """The fixture checkpoints have random weights: the verdicts say the machinery works, not
    what a trained model would decide."""
    checkpoint = tmp_path / f"{name}.pt"
    shutil.copy(fixture_checkpoints(name), checkpoint)
    result = tmp_path / "r.json"
    detect = ["detect", DEV / CLIP, "--checkpoint", checkpoint, "--json", result]
    assert main(detect) == 0  # not calibrated: inconclusive, and says how to calibrate
    report = json.loads(result.read_text())[0]
    assert report["verdict"] == "inconclusive" and report["segments"] == []
    assert any("speechforensics calibrate" in w for w in report["warnings"])
    bf16 = ["--device", "cpu", "--dtype", "bfloat16"]
    args = ["calibrate", genuine_list, "--checkpoint", checkpoint, "--cache", prepared, *bf16]
    assert main([*args, "--out", calibration.beside(checkpoint), "--batch", "4"]) == 1
    made = calibration.read(calibration.beside(checkpoint))
    assert made.backend == "avhubert" and made.settings["dtype"] == "bfloat16"
    assert made.model_sha256 == calibration.file_hash(checkpoint)
    capsys.readouterr()
    assert main([*detect, *bf16]) == 0
    report = json.loads(result.read_text())[0]
    assert report["verdict"] in ("real", "fake") and report["threshold"] == made.clip_threshold
    lite = calibration.write(
        calibration.make("lipsync-lite", PARAMS, "ours", calibration.fit(_scores(), {}, [])),
        tmp_path / "lite.json",
    )
    assert main([*detect, "--calibration", lite]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "a calibration of the lipsync-lite backend" in err


PAPER_LANDMARKS = Path(__file__).parent / "fixtures/paper/landmarks"  # official-format files
PAPER_GENUINE = [  # genuine dev clips with landmark files there, and one scored with ours (dlib)
    "vexpress_RD_Radio10_0_clip_0.mp4", "lrs2_deepavsr_00008.mp4", "pcavs_Input_00010.mp4",
    "vrt_face4.mp4", "grid_brbk7n.mpg",
]  # fmt: skip
PAPER_FAKE = "gsw2l_result_voice_1.mp4"  # a forgery with a landmark file there


def test_calibrate_paper_protocol_then_detect_and_evaluate(fixture_checkpoints, tmp_path, capsys):
    """calibrate --protocol paper: a clip threshold from the paper's scores (no turns, no
    segments) that detect and evaluate --protocol paper then find for the checkpoint; a
    calibration of the other protocol is ignored when found beside it and refused when given."""
    checkpoint = tmp_path / "small.pt"
    shutil.copy(fixture_checkpoints("small_pretrain"), checkpoint)
    genuine = tmp_path / "genuine"
    genuine.mkdir()
    for name in PAPER_GENUINE:
        shutil.copy(need(DEV / name), genuine / name)
    ours = calibration.write(  # found beside the checkpoint, but made for our protocol's scores
        calibration.make("avhubert", checkpoint, "ours", calibration.fit(_scores(), {}, [])),
        calibration.beside(checkpoint),
    )
    paper = ["--checkpoint", checkpoint, "--protocol", "paper", "--landmarks", PAPER_LANDMARKS]
    result = tmp_path / "r.json"
    detect = ["detect", need(DEV / PAPER_FAKE), *paper, "--json", result]
    assert main(detect) == 0  # not calibrated for the paper's protocol: inconclusive, says how
    report = json.loads(result.read_text())[0]
    assert report["verdict"] == "inconclusive" and report["threshold"] is None
    assert any("calibrate GENUINE --protocol paper" in w for w in report["warnings"])

    assert main(["calibrate", genuine, *paper, "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "(paper protocol)" in out and "turns and segments: none" in out
    written = calibration.in_cache("avhubert", calibration.file_hash(checkpoint), protocol="paper")
    made = calibration.read(written)
    assert written.name.endswith(".paper.json") and made.protocol == "paper"
    assert made.turns == () and made.segment_threshold is None and "paper" in made.settings["note"]
    clips = {c["file"]: c["score"] for c in made.clips}
    assert sorted(clips) == sorted(PAPER_GENUINE) and not made.skipped
    scores = sorted(clips.values())
    assert scores[0] <= made.clip_threshold <= scores[1]  # the 5th percentile of 5 scores
    [rate] = [r for r in made.rates if r["false_alarm"] == made.false_alarm]
    assert rate["interval"][0] <= made.clip_threshold <= rate["interval"][1]
    assert calibration.read(ours).protocol == "ours"  # the other protocol's file is left alone

    assert main(detect) == 0
    report = json.loads(result.read_text())[0]
    assert report["threshold"] == made.clip_threshold and report["warnings"] == []
    assert report["verdict"] == ("fake" if report["score"] < made.clip_threshold else "real")
    listing = tmp_path / "list.txt"
    listing.write_text(f"{genuine / PAPER_GENUINE[0]} 1\n")
    run = ["evaluate", listing, "--out", tmp_path / "run", *paper, "--quiet"]
    assert main(run) == 0
    [record] = [json.loads(line) for line in (tmp_path / "run/results.jsonl").open()]
    assert record["threshold"] == made.clip_threshold and record["protocol"] == "paper"
    assert record["verdict"] == ("fake" if record["score"] < made.clip_threshold else "real")

    capsys.readouterr()
    assert main([*detect, "--calibration", ours]) == 1  # given: refused, one line
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "calibrated with the 'ours' protocol" in err
    assert (
        main(["detect", DEV / PAPER_FAKE, "--checkpoint", checkpoint, "--calibration", written])
        == 1
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "calibrated with the 'paper' protocol" in err


def _scores() -> dict:
    return {f"c{i}.mp4": ("0" * 64, 0.1 * i) for i in range(6)}
