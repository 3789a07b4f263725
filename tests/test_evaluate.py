"""evaluate.py: the run with resume after a kill and its cache, workers,
--trim-silence, perturbations, the robustness table and the command line, on dev clips."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED, need

from speechforensics import cache, evaluate, fakes, pipeline
from speechforensics.cli import main
from speechforensics.errors import SpeechForensicsError
from speechforensics.evaluate import EvalConfig
from speechforensics.lists import Item, read_list
from speechforensics.perturb import Perturbation

DEV = SHARED / "media/dev"
CLIPS = {  # short dev clips: three genuine, one lip-sync forgery
    "grid_bbaf2n.mpg": 1,
    "vexpress_RD_Radio10_0_clip_0.mp4": 1,
    "lrs2_deepavsr_00008.mp4": 1,
    "gsw2l_result_voice_1.mp4": 0,
}
REPO = Path(__file__).resolve().parents[1]


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def dev_list(tmp_path):
    need(DEV)
    lines = "".join(f"{DEV / name} {label}\n" for name, label in CLIPS.items())
    return _write(tmp_path / "list.txt", lines)


# --- the run ---------------------------------------------------------------------------------


def _scores(out: Path) -> list[dict]:
    with open(out / "scores.csv") as f:
        return list(csv.DictReader(f))


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items()} for r in rows]


def test_evaluate_writes_scores_summary_and_plots(dev_list, tmp_path):
    summary = evaluate.evaluate(read_list(dev_list), tmp_path / "out")
    out = tmp_path / "out"
    rows = _scores(out)
    assert [Path(r["file"]).name for r in rows] == list(CLIPS)
    assert all(r["error"] == "" and float(r["score"]) == float(r["score"]) for r in rows)
    saved = json.loads((out / "summary.json").read_text())
    assert saved == json.loads(json.dumps(summary))
    for key in ("n", "failures", "auc", "ap", "eer", "per_category", "auc_ci", "tpr_at_5fpr"):
        assert key in summary
    assert summary["n"] == 4 and summary["failures"] == 0
    assert set(summary["per_category"]) == {"real", "fake"}
    records = evaluate.read_results(out / "results.jsonl")
    labels = [r["label"] for r in records]
    assert summary["auc"] == pytest.approx(
        evaluate.metrics.auc(labels, [r["score"] for r in records])
    )
    assert (out / "roc.png").stat().st_size > 1000 and (out / "scores.png").stat().st_size > 1000
    table = evaluate.table(summary)
    assert table.splitlines()[2].startswith("| all | 4 | 0 |")


def test_scores_are_those_of_detect(dev_list, tmp_path):
    from speechforensics.backends import load_backend

    item = read_list(dev_list)[0]
    record = evaluate.judge_item(item, EvalConfig(), load_backend(), tmp_path)
    report = pipeline.detect(item.path, load_backend())
    assert record["score"] == report["score"] and record["segments"] == report["segments"]


def test_resume_after_a_kill_gives_the_clean_results(dev_list, tmp_path, monkeypatch):
    clean = tmp_path / "clean"
    evaluate.evaluate(read_list(dev_list), clean)
    killed = tmp_path / "killed"
    command = [sys.executable, "-m", "speechforensics", "evaluate", str(dev_list)]
    env = os.environ | {"PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(command + ["--out", str(killed), "--quiet"], env=env)
    log = killed / "results.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (log.exists() and log.read_text().count("\n") >= 1):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    finished = log.read_text().count("\n")
    assert 1 <= finished < len(CLIPS), "the run was not interrupted mid-way"
    with open(log, "a") as f:
        f.write('{"file": "torn')  # a crash in the middle of a write
    judged = []
    real_prepare = pipeline.prepare
    monkeypatch.setattr(
        pipeline, "prepare", lambda *a, **k: judged.append(a[0]) or real_prepare(*a, **k)
    )
    assert main([*command[3:], "--out", str(killed), "--quiet"]) == 0
    assert len(judged) <= len(CLIPS) - finished  # finished videos were not judged again
    assert _scores(killed) == _scores(clean)
    assert len(evaluate.read_results(log)) == len(CLIPS)
    # a rerun with the results gone but the cache kept prepares nothing
    judged.clear()
    log.unlink()
    evaluate.evaluate(read_list(dev_list), killed)
    assert judged == [] and _scores(killed) == _scores(clean)
    assert all(r["cached"] for r in evaluate.read_results(log))


def test_an_unexpected_failure_is_one_record_and_the_run_goes_on(
    dev_list, tmp_path, monkeypatch, capsys
):
    items = read_list(dev_list)[:2]
    real_prepare = pipeline.prepare

    def prepare(path, *args, **kwargs):
        if path == items[0].path:
            raise ValueError("injected: PyAV tripped over a packet")
        return real_prepare(path, *args, **kwargs)

    monkeypatch.setattr(pipeline, "prepare", prepare)
    summary = evaluate.evaluate(items, tmp_path / "out")
    assert summary["failures"] == 1 and summary["n"] == 2
    first, second = evaluate.read_results(tmp_path / "out/results.jsonl")
    assert first["error"].startswith(f"{items[0].path}: unexpected ValueError (injected")
    assert "Traceback" in first["traceback"] and second["error"] is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_two_workers_give_the_results_of_one(dev_list, tmp_path):
    items = read_list(dev_list)
    one = evaluate.evaluate(items, tmp_path / "one")
    two = evaluate.evaluate(items, tmp_path / "two", workers=2)
    assert _scores(tmp_path / "one") == _scores(tmp_path / "two")
    assert one == two


def test_other_settings_in_the_same_folder_are_refused(dev_list, tmp_path):
    items = read_list(dev_list)[:1]
    evaluate.evaluate(items, tmp_path, EvalConfig(max_seconds=3))
    with pytest.raises(SpeechForensicsError, match="other settings \\(max_seconds\\)"):
        evaluate.evaluate(items, tmp_path, EvalConfig(max_seconds=4))


def test_failures_are_recorded_and_counted(tmp_path):
    need(DEV)
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    listing = _write(tmp_path / "l.txt", f"broken.mp4 0\n{DEV / 'grid_bbaf2n.mpg'} 1\n")
    summary = evaluate.evaluate(read_list(listing), tmp_path / "out")
    rows = _scores(tmp_path / "out")
    assert "broken.mp4" in rows[0]["error"] and rows[1]["error"] == ""
    assert summary["failures"] == 1 and summary["auc"] is None


def test_trim_silence_drops_the_leading_silence(tmp_path):
    clip = need(DEV / "pcavs_Pose_00067.mp4")
    fakes.make(clip, clip, tmp_path, kinds=("shift1s",))  # 1 s of silence, then the voice
    shifted = tmp_path / "pcavs_Pose_00067__shift1s.mp4"
    items = [Item(shifted, 0, "shift1s"), Item(clip, 1, "real")]
    summary = evaluate.evaluate(items, tmp_path / "out", EvalConfig(trim_silence=True))
    records = evaluate.read_results(tmp_path / "out/results.jsonl")
    assert records[0]["trim_start_s"] == pytest.approx(1.0, abs=0.25)
    assert records[1]["trim_start_s"] < 0.5
    assert "untrimmed" in summary and records[0]["score_untrimmed"] is not None
    prepared, _ = cache.load_prepared(shifted, tmp_path / "out/cache")
    trimmed, start = evaluate.trim_silence(prepared)
    cut = round(start * 25)
    assert trimmed.info.frames == len(trimmed.audio) // 640
    np.testing.assert_array_equal(
        trimmed.audio, prepared.audio[cut * 640 : (cut + trimmed.info.frames) * 640]
    )


def test_perturbed_runs_are_cached_apart_and_differ(dev_list, tmp_path):
    items = read_list(dev_list)[:1]
    cache = tmp_path / "cache"
    clean = evaluate.evaluate(items, tmp_path / "clean", cache_dir=cache)
    config = EvalConfig(perturbation="JPEG:5")
    pixelated = evaluate.evaluate(items, tmp_path / "jpeg", config, cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2
    assert pixelated["perturbation"] == "JPEG:5" and clean["perturbation"] is None
    scores = [
        evaluate.read_results(tmp_path / d / "results.jsonl")[0]["score"] for d in ("clean", "jpeg")
    ]
    assert scores[0] != scores[1]
    again = evaluate.evaluate(items, tmp_path / "jpeg2", config, cache_dir=tmp_path / "c2")
    assert again == pixelated  # seeded by the file: the same distortion every time


def test_robustness_table(dev_list, tmp_path):
    items = read_list(dev_list)
    conditions = [Perturbation("GB", 1), Perturbation("GB", 5), Perturbation("noise", 5)]
    result = evaluate.robustness(items, tmp_path, EvalConfig(max_seconds=3), conditions)
    assert set(result["auc"]) == {"clean", "GB:1", "GB:5", "noise:5"}
    assert result["by_type"]["GB"] == pytest.approx(
        (result["auc"]["GB:1"] + result["auc"]["GB:5"]) / 2
    )
    assert result["average"] == pytest.approx(
        (result["by_type"]["GB"] + result["by_type"]["noise"]) / 2
    )
    assert result["drop"] == pytest.approx(result["auc"]["clean"] - result["average"])
    table = (tmp_path / "robustness.md").read_text().splitlines()
    assert table[0] == "|  | clean | GB | noise | average | drop |"
    assert table[2].startswith(f"| AUC | {result['auc']['clean']:.3f} |")
    assert table[3].startswith("| not judged | 0 |")
    assert (tmp_path / "GB-5/scores.csv").exists() and (tmp_path / "clean/summary.json").exists()


def test_localisation_in_the_summary():
    timeline = [
        {"start_s": s / 5, "end_s": s / 5 + 1, "score": -1.0 if 10 <= s < 20 else 1.0}
        for s in range(30)
    ]
    base = {
        "error": None,
        "threshold": 0.0,
        "backend": "x",
        "perturbation": None,
        "timeline": timeline,
    }
    records = [
        base
        | {"file": "a", "label": 0, "category": "splice", "score": 0.1, "segments": [[2.1, 4.9]]},
        base | {"file": "b", "label": 1, "category": "real", "score": 0.5, "segments": []},
    ]
    items = [Item(Path("a"), 0, "splice", ((2.0, 4.0),)), Item(Path("b"), 1, "real")]
    summary = evaluate.summarise(records, items)
    assert summary["localisation"]["n"] == 2 and summary["localisation"]["ap@0.5"] == 1.0
    assert "localisation" not in evaluate.summarise(records, [Item(Path("a"), 0, "s")])


# --- the command line -----------------------------------------------------------------------


def test_cli_prints_the_table_and_refuses_bad_input(dev_list, tmp_path, capsys):
    assert main(["evaluate", str(dev_list), "--out", str(tmp_path / "o"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("| | n | failures | AUC") and "| fake | 1 | 0 |" in out
    assert main(["evaluate", str(tmp_path / "none.txt"), "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("speechforensics: error: ") and "none.txt" in err and "\n" not in err
    with pytest.raises(SystemExit) as e:
        main(["evaluate", str(dev_list), "--out", str(tmp_path / "y"), "--perturb", "fog:1"])
    assert e.value.code == 2


# --- batched: workers prepare, the model runs here on several clips at once -------------------


@pytest.mark.parametrize(
    "name", ["small_pretrain", pytest.param("base_pretrain", marks=pytest.mark.slow)]
)
def test_batched_judging_gives_the_scores_of_judging_one_by_one(
    name, dev_list, fixture_checkpoints, tmp_path
):
    """--batch 3 with 2 preparing workers (the GPU path, here on the CPU) against each clip
    judged alone where it was prepared: the same records, scores to float rounding."""
    items = read_list(dev_list) + [Item(DEV / "missing.mp4", 1, "real")]
    config = EvalConfig(backend="avhubert", checkpoint=str(fixture_checkpoints(name)))
    assert evaluate.batch_size(config, None) == 1  # no GPU here: judged where prepared
    cached = tmp_path / "cache"
    one = evaluate.evaluate(items, tmp_path / "one", config, cached, batch=1)
    many = evaluate.evaluate(items, tmp_path / "many", config, cached, workers=2, batch=3)
    assert one["failures"] == many["failures"] == 1
    rows = _scores(tmp_path / "one"), _scores(tmp_path / "many")
    assert [r["file"] for r in rows[0]] == [r["file"] for r in rows[1]]
    for a, b in zip(*rows, strict=True):
        assert (a["score"] == "") == (b["score"] == "") and a["verdict"] == b["verdict"]
        if a["score"]:
            assert float(b["score"]) == pytest.approx(float(a["score"]), abs=1e-5)
            assert a["offset_frames"] == b["offset_frames"]


def test_cli_runs_avhubert_in_bfloat16_on_the_cpu(dev_list, fixture_checkpoints, tmp_path, capsys):
    checkpoint = str(fixture_checkpoints("small_pretrain"))
    out = tmp_path / "out"
    args = ["evaluate", dev_list, "--out", out, "--checkpoint", checkpoint, "--quiet"]
    assert main([*args, "--device", "cpu", "--dtype", "bfloat16", "--batch", "2"]) == 0
    settings = json.loads((out / "settings.json").read_text())
    assert settings["dtype"] == "bfloat16" and "device" not in settings  # resumable elsewhere
    rows = _scores(out)
    assert len(rows) == 4 and all(r["backend"] == "avhubert" and r["score"] for r in rows)
    args[3] = tmp_path / "other"
    assert main([*args, "--dtype", "float16", "--device", "cpu"]) == 1
    assert "--dtype float16 needs a GPU" in capsys.readouterr().err
