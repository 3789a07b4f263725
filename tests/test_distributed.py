"""distributed.py: evaluate on a local Ray cluster (2 CPUs) gives the local engine's scores.csv,
survives a killed worker process and a killed driver, and spreads over two nodes."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import SHARED, need

from speechforensics import evaluate
from speechforensics.cli import main
from speechforensics.lists import read_list

ray = pytest.importorskip("ray", reason="the ray extra is not installed")

from speechforensics.distributed import RayEngine

DEV = SHARED / "media/dev"
CLIPS = {  # short dev clips: three genuine, one lip-sync forgery, one that is not there
    "grid_bbaf2n.mpg": 1,
    "vexpress_RD_Radio10_0_clip_0.mp4": 1,
    "lrs2_deepavsr_00008.mp4": 1,
    "gsw2l_result_voice_1.mp4": 0,
    "missing.mp4": 1,
}


@pytest.fixture(scope="module")
def dev_list(tmp_path_factory):
    need(DEV)
    path = tmp_path_factory.mktemp("list") / "list.txt"
    path.write_text("".join(f"{DEV / name} {label}\n" for name, label in CLIPS.items()))
    return path


@pytest.fixture(scope="module")
def local_run(dev_list, tmp_path_factory):
    """The local engine's run of the list (the reference)."""
    out = tmp_path_factory.mktemp("local")
    summary = evaluate.evaluate(read_list(dev_list), out)
    return out, summary


@pytest.fixture
def cluster():
    """A local Ray cluster of 2 CPUs, kept across tests (the two-node test ends it)."""
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="warning")
    yield ray.get_runtime_context().get_node_id()


def _scores(out: Path) -> bytes:
    return (out / "scores.csv").read_bytes()


def test_ray_writes_the_local_engines_scores(dev_list, local_run, cluster, tmp_path):
    local, summary = local_run
    out = tmp_path / "ray"
    assert evaluate.evaluate(read_list(dev_list), out, engine=RayEngine()) == summary
    assert _scores(out) == _scores(local)
    records = evaluate.read_results(out / "results.jsonl")
    assert {r["node"] for r in records} == {cluster}  # the node that scored each clip
    assert [r["file"] for r in records if r["error"]] == [str(DEV / "missing.mp4")]


def _descendants(title: str) -> list[int]:
    """Processes under this one (the local cluster's workers) whose title starts with `title`."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        parents[int(pid)] = (
            int(stat.rpartition(")")[2].split()[1]),
            cmdline.decode(errors="ignore"),
        )
    mine = []
    for pid, (_, cmdline) in parents.items():
        up = pid
        while up in parents and up != os.getpid():
            up = parents[up][0]
        if up == os.getpid() and cmdline.startswith(title):
            mine.append(pid)
    return mine


def _kill_when_running(titles: list[str], killed: list[str], stop: threading.Event) -> None:
    """SIGKILL one worker process of each title, as soon as one runs a task."""
    for title in titles:
        while not stop.is_set():
            pids = _descendants(title)
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(title)
                break
            time.sleep(0.02)


def test_a_killed_worker_loses_no_clip(dev_list, local_run, cluster, tmp_path):
    """A process preparing a clip, then the scorer's, are killed mid-run: Ray re-runs the task
    and restarts the scorer (with its call, if one was running); every clip gets its score."""
    killed, stop = [], threading.Event()
    titles = ["ray::_prepare_task", "ray::Scorer"]  # the scorer busy (.score) or between calls
    killer = threading.Thread(target=_kill_when_running, args=(titles, killed, stop))
    killer.start()
    try:
        evaluate.evaluate(read_list(dev_list), tmp_path, engine=RayEngine())
    finally:
        stop.set()
        killer.join()
    assert killed == titles
    assert _scores(tmp_path) == _scores(local_run[0])


def _cli(*args) -> list[str]:
    return [sys.executable, "-m", "speechforensics", *map(str, args)]


def test_a_killed_driver_resumes_with_what_is_missing(dev_list, local_run, cluster, tmp_path):
    """The driver (with its own local cluster) is killed after its first record; the rerun
    judges only the rest, and scores.csv is the local engine's."""
    results = tmp_path / "results.jsonl"
    driver = subprocess.Popen(
        _cli("evaluate", dev_list, "--out", tmp_path, "--engine", "ray"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # the driver and the cluster it started: one group to kill
    )
    try:
        while not (results.exists() and results.read_bytes().count(b"\n") >= 1):
            assert driver.poll() is None, "the driver finished before it could be killed"
            time.sleep(0.02)
    finally:
        os.killpg(driver.pid, signal.SIGKILL)
        driver.wait()
    before = {r["file"] for r in evaluate.read_results(results)}
    assert 1 <= len(before) < len(CLIPS)
    judged = []
    engine = RayEngine()

    def counting(items, *args):
        judged.extend(str(item.path) for item in items)
        return engine(items, *args)

    evaluate.evaluate(read_list(dev_list), tmp_path, engine=counting)
    records = evaluate.read_results(results)
    assert sorted(judged) == sorted({r["file"] for r in records} - before)
    assert len(records) == len(CLIPS)
    assert _scores(tmp_path) == _scores(local_run[0])


def test_two_nodes_both_score(dev_list, tmp_path):
    """A head and a second node of 1 CPU each on this machine; `evaluate --engine ray --address`
    from the command line records clips scored on both."""
    from ray.cluster_utils import Cluster

    need(DEV)
    ray.shutdown()  # the tests' own cluster: this one replaces it
    two = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        two.add_node(num_cpus=1)
        two.wait_for_nodes()
        run = subprocess.run(
            _cli(
                "evaluate", dev_list, "--out", tmp_path, "--engine", "ray", "--address", two.address
            ),
            capture_output=True,
            text=True,
            timeout=240,
            check=False,
        )
    finally:
        two.shutdown()
    assert run.returncode == 1, run.stderr  # missing.mp4: one line, the run goes on
    records = evaluate.read_results(tmp_path / "results.jsonl")
    assert len(records) == len(CLIPS)
    assert len({r["node"] for r in records}) == 2


def test_detect_on_ray_gives_detects_results(cluster, tmp_path, capsys):
    videos = [need(DEV / name) for name in list(CLIPS)[:2]]
    assert main(["detect", *videos, "--json", tmp_path / "local.json"]) == 0
    assert main(["detect", *videos, "--engine", "ray", "--json", tmp_path / "ray.json"]) == 0
    local, distributed = (
        json.loads((tmp_path / f"{n}.json").read_text()) for n in ("local", "ray")
    )
    assert [r["file"] for r in distributed] == [str(v) for v in videos]  # in the order given
    assert [r["score"] for r in distributed] == [r["score"] for r in local]
    assert len(capsys.readouterr().out.splitlines()) == 4  # a line per video, each run


def test_without_ray_the_error_is_one_line(dev_list, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    assert main(["evaluate", dev_list, "--out", tmp_path, "--engine", "ray"]) == 1
    err = capsys.readouterr().err
    assert (
        err
        == "speechforensics: error: --engine ray needs Ray: pip install 'speechforensics[ray]'\n"
    )


def test_ray_is_imported_only_for_engine_ray():
    code = (
        "import sys; from speechforensics import cli, evaluate; "
        "args = cli._parser('evaluate').parse_args(['evaluate', 'l', '--out', 'o']); "
        "print(cli._engine(args), 'ray' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout == "None False\n"
