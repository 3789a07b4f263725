"""The web page's HTTP API, through FastAPI's test client, on real dev clips: uploads are
judged exactly as `detect` judges the file, bad uploads are refused with one clear line, the
token and the loopback guard hold, and a restart re-queues an interrupted job."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pytest

from speechforensics import media
from speechforensics.backends import load_backend
from speechforensics.errors import SpeechForensicsError
from speechforensics.pipeline import detect

pytest.importorskip("fastapi", reason="the serve extra is not installed")
pytest.importorskip("httpx", reason="FastAPI's test client needs httpx")
from conftest import SHARED, need
from fastapi.testclient import TestClient

from speechforensics import serve

DEV = SHARED / "media/dev"
CLIP = "lrs2_deepavsr_00001.mp4"  # 4.8 s, 160x160: judged in about a second
MPG = "grid_bbaf2n.mpg"  # 3 s MPEG program stream
BASE = "http://127.0.0.1:8765"
WAIT_S = 120


def client(tmp_path, **overrides) -> TestClient:
    config = serve.ServeConfig(data=tmp_path / "data", **overrides)
    return TestClient(serve.create_app(config), base_url=BASE)


def upload(c: TestClient, path, name=None, content_type="video/mp4"):
    files = {"file": (name or path.name, path.read_bytes(), content_type)}
    return c.post("/api/jobs", files=files)


def wait(c: TestClient, job_id: str) -> dict:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        job = c.get(f"/api/jobs/{job_id}").json()
        if job["status"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} not finished in {WAIT_S} s: {job}")


def test_upload_is_judged_as_detect_judges_the_file(tmp_path):
    video = need(DEV / CLIP)
    with client(tmp_path) as c:
        answer = upload(c, video)
        assert answer.status_code == 201, answer.text
        job = answer.json()
        assert answer.headers["location"] == f"/api/jobs/{job['id']}"
        assert job["name"] == CLIP and job["status"] in ("queued", "running")
        job = wait(c, job["id"])
        assert job["status"] == "done", job["error"]
        expected = detect(video, load_backend()) | {"file": CLIP}
        assert job["result"] == json.loads(json.dumps(expected))
        assert job["verdict"] == expected["verdict"] and job["backend"] == expected["backend"]
        assert job["about"]  # the plain-language line on what the backend sees
        listed = c.get("/api/jobs").json()["jobs"]
        assert [j["id"] for j in listed] == [job["id"]] and "result" not in listed[0]
        assert c.get(job["links"]["result"]).json() == job["result"]
        report = c.get(job["links"]["report"])
        assert report.headers["content-type"].startswith("text/html")
        assert CLIP in report.text and "data:image/png;base64," in report.text
        assert c.get(job["links"]["crops"]).content.startswith(b"\x89PNG")
        page = c.get("/")
        assert page.status_code == 200 and "/static/app.js" in page.text
        assert c.get("/static/app.js").status_code == 200


def test_raw_body_upload_and_delete(tmp_path):
    video = need(DEV / MPG)
    with client(tmp_path) as c:
        answer = c.post("/api/jobs?name=../../etc/passwd", content=video.read_bytes(), headers={})
        assert answer.status_code == 201, answer.text
        job = wait(c, answer.json()["id"])
        assert job["name"] == "passwd" and job["status"] == "done", job["error"]
        folder = tmp_path / "data/jobs" / job["id"]
        assert sorted(p.name for p in folder.iterdir()) == [
            "crops.png",
            "report.html",
            "result.json",
            "video.mpg",
        ]
        assert c.get(f"/api/jobs/{job['id']}/..%2Fjobs.sqlite3").status_code == 404
        assert c.get("/api/jobs/..%2F..%2Fetc").status_code == 404
        assert c.delete(f"/api/jobs/{job['id']}").status_code == 204
        assert not folder.exists() and c.get("/api/jobs").json()["jobs"] == []
        assert c.get(f"/api/jobs/{job['id']}").status_code == 404


@pytest.mark.parametrize(
    ("content", "name", "content_type", "status", "says"),
    [
        (b"just some notes\n" * 64, "notes.mp4", "video/mp4", 415, "notes.mp4 is not a video"),
        (b"\x89PNG\r\n\x1a\n" + bytes(600), "face.png", "image/png", 415, "face.png is image/png"),
        (b"", "empty.mp4", "video/mp4", 400, "empty.mp4 is empty"),
        (bytes(4) + b"ftyp" + bytes(6000), "big.mp4", "video/mp4", 413, "big.mp4 is larger"),
    ],
)
def test_bad_upload_is_refused_with_one_clear_line(
    tmp_path, content, name, content_type, status, says
):
    with client(tmp_path, workers=0, max_upload_bytes=5000) as c:
        answer = c.post("/api/jobs", files={"file": (name, content, content_type)})
        assert answer.status_code == status
        detail = answer.json()["detail"]
        assert detail.startswith(says) and "\n" not in detail
        assert c.get("/api/jobs").json()["jobs"] == []
        assert list((tmp_path / "data/jobs").iterdir()) == []


def test_oversized_body_refused_before_reading_it(tmp_path):
    with client(tmp_path, workers=0, max_upload_bytes=1000) as c:
        answer = c.post(
            "/api/jobs?name=x.mp4", content=bytes(4) + b"ftyp" + bytes(3 << 20)
        )  # over the limit plus the room left for a form's framing
        assert answer.status_code == 413 and "upload limit" in answer.json()["detail"]
        assert list((tmp_path / "data/jobs").iterdir()) == []


def test_unjudgeable_video_fails_its_job_not_the_worker(tmp_path):
    video = need(DEV / CLIP)
    blank = tmp_path / "blank.mp4"  # a valid video without a face
    frames = np.full((50, 64, 64, 3), 128, np.uint8)
    noise = np.random.default_rng(0).normal(0, 0.1, 50 * 640).astype(np.float32)
    media.write_clip(blank, frames, noise)
    with client(tmp_path) as c:
        bad = upload(c, blank, name="holiday.mp4").json()
        good = upload(c, video).json()
        bad, good = wait(c, bad["id"]), wait(c, good["id"])
        assert bad["status"] == "failed" and bad["result"] is None
        assert bad["error"].startswith("holiday.mp4: no face") and "\n" not in bad["error"]
        assert str(tmp_path) not in bad["error"]  # the stored file's path is not shown
        assert good["status"] == "done"


def test_token_is_enforced(tmp_path):
    with client(tmp_path, workers=0, token="s3cret") as c:
        assert c.get("/api/jobs").status_code == 401
        assert "token" in c.get("/api/jobs").json()["detail"]
        assert c.get("/").status_code == 401
        assert c.get("/api/jobs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/api/jobs", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.get("/api/jobs", headers={"X-Token": "s3cret"}).status_code == 200
        first = c.get("/?token=s3cret", follow_redirects=False)
        assert first.status_code == 303 and first.headers["location"] == "/"
        assert serve.TOKEN_COOKIE in first.headers["set-cookie"]
        assert "HttpOnly" in first.headers["set-cookie"]
        assert c.get("/api/info").status_code == 200  # the client kept the cookie
        c.cookies.clear()
        assert c.get("/api/info").status_code == 401


def test_public_address_needs_a_token(tmp_path):
    with pytest.raises(SpeechForensicsError, match="--token"):
        serve.create_app(serve.ServeConfig(data=tmp_path, host="0.0.0.0"))
    app = serve.create_app(serve.ServeConfig(data=tmp_path, host="0.0.0.0", token="t", workers=0))
    with TestClient(app, base_url="http://192.0.2.7:8765") as c:
        assert c.get("/api/info", headers={"X-Token": "t"}).status_code == 200


def test_other_hosts_and_origins_are_refused(tmp_path):
    with client(tmp_path, workers=0) as c:
        assert c.get("/api/jobs", headers={"Host": "evil.example:8765"}).status_code == 421
        assert c.get("/api/jobs", headers={"Host": "localhost:8765"}).status_code == 200
        post = c.post(
            "/api/jobs?name=a.mp4", content=b"x", headers={"Origin": "http://evil.example"}
        )
        assert post.status_code == 403


def test_restart_requeues_an_interrupted_job(tmp_path):
    video = need(DEV / CLIP)
    with client(tmp_path, workers=0) as c:
        job_id = upload(c, video).json()["id"]
        store = c.app.state.store
        assert store.claim(job_id)  # a worker took it, then the server stopped
        assert c.get(f"/api/jobs/{job_id}").json()["status"] == "running"
    with client(tmp_path) as c:
        job = wait(c, job_id)
        assert job["status"] == "done" and job["name"] == CLIP


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (bytes(4) + b"ftypisom", "mp4"),
        (bytes(4) + b"moov", "mp4"),
        (b"\x1a\x45\xdf\xa3\x9f", "mkv"),
        (b"RIFF\x00\x00\x00\x00AVI LIST", "avi"),
        (b"\x00\x00\x01\xba\x21", "mpg"),
        (bytes([0x47] + [0] * 187) * 3, "ts"),
        (b"<!doctype html>" + bytes(400), None),
        (b"ID3\x03" + bytes(400), None),
        (b"", None),
    ],
)
def test_sniff(head, kind):
    assert serve.sniff(head) == kind


def test_dev_clips_are_recognised():
    for name in (CLIP, MPG):
        with open(need(DEV / name), "rb") as f:
            assert serve.sniff(f.read(serve.SNIFF_BYTES)) is not None


def test_display_name_is_never_a_path():
    assert serve.display_name("../../etc/passwd") == "passwd"
    assert serve.display_name("C:\\Users\\me\\clip.mp4") == "clip.mp4"
    assert serve.display_name("a\x00b\nc.mp4") == "abc.mp4"
    assert serve.display_name("") == "video" and len(serve.display_name("x" * 999)) == 200


def test_cli_refuses_a_public_address_without_token(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "speechforensics", "serve", "--host", "0.0.0.0"]
        + ["--data", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "SPEECHFORENSICS_TOKEN": ""},
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith("speechforensics: error: binding to 0.0.0.0") and "--token" in (
        proc.stderr
    )


def test_cli_names_the_extra_when_fastapi_is_missing(monkeypatch, capsys):
    import speechforensics
    from speechforensics.cli import main

    monkeypatch.delitem(sys.modules, "speechforensics.serve", raising=False)
    monkeypatch.delattr(speechforensics, "serve", raising=False)
    monkeypatch.setitem(sys.modules, "fastapi", None)
    assert main(["serve"]) == 1
    err = capsys.readouterr().err
    assert err == (
        "speechforensics: error: speechforensics serve needs fastapi: "
        "pip install 'speechforensics[serve]'\n"
    )


def test_cli_serves_avhubert_in_bfloat16_with_its_calibration(
    tmp_path, monkeypatch, fixture_checkpoints
):
    """serve --checkpoint --device cpu --dtype bfloat16 --calibration: uploads get verdicts."""
    from speechforensics import calibration
    from speechforensics.cli import main

    checkpoint = fixture_checkpoints("small_pretrain")
    scores = {f"c{i}.mp4": ("0" * 64, 0.1 * i) for i in range(6)}
    fitted = calibration.fit(scores, {}, [])
    made = calibration.make("avhubert", checkpoint, "ours", fitted)
    calibrated = calibration.write(made, tmp_path / "c.json")
    seen = {}
    monkeypatch.setattr(serve, "serve", lambda config: seen.update(config=config))
    args = ["serve", "--checkpoint", checkpoint, "--calibration", calibrated, "--data", tmp_path]
    assert main([*args, "--device", "cpu", "--dtype", "bfloat16"]) == 0
    config = seen["config"]
    assert (config.device, config.dtype, config.calibration) == ("cpu", "bfloat16", calibrated)
    with TestClient(serve.create_app(config), base_url=BASE) as c:
        info = c.get("/api/info").json()
        assert info["backend"] == "avhubert" and info["threshold"] == made.clip_threshold
        job = wait(c, upload(c, need(DEV / CLIP)).json()["id"])
        assert job["status"] == "done", job["error"]
        assert job["verdict"] in ("real", "fake") and job["threshold"] == made.clip_threshold
