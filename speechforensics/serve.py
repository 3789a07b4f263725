"""`speechforensics serve`: a web page on the user's own machine that checks videos.

The page (static/: plain HTML, CSS and JS) uploads videos to a small HTTP API; a bounded pool of
background workers judges them with `pipeline.prepare` + `pipeline.judge` (one backend loaded per
worker) and writes each result beside its upload. Everything lives under one data folder: an
SQLite database of jobs (`jobs.sqlite3`) and one folder per job (`jobs/<id>/`: the video, the
JSON result, the HTML report, the mouth-crop sheet), so a restart loses nothing and a job that a
restart interrupted is queued again.

Safety: binds to 127.0.0.1 by default and then answers only requests addressed to a loopback
name (no DNS rebinding) and state-changing requests from its own origin (no cross-site posts);
binding elsewhere requires a token. Uploads are size-limited while they stream and typed from
their first bytes before anything decodes them; their names are shown, never used as paths.
FastAPI, uvicorn and python-multipart are the `serve` extra (cli._serve names it when missing).
"""

import hmac
import json
import logging
import os
import queue
import re
import secrets
import shutil
import sqlite3
import threading
import time
from contextlib import asynccontextmanager, closing
from dataclasses import dataclass
from pathlib import Path

import anyio
import cv2
import python_multipart  # noqa: F401 - the multipart parser FastAPI needs, checked at import
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from . import media
from .backends import load_backend
from .errors import SpeechForensicsError
from .pipeline import judge, prepare, thresholds_of
from .report import html_page, plot_png, track_sheet
from .version import __version__

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
MAX_UPLOAD_BYTES = 2 * 1024**3  # 2 GiB per video
CHUNK_BYTES = 1 << 20  # uploads are copied to disk 1 MiB at a time
SNIFF_BYTES = 512  # bytes of an upload's start that its container type is read from
MAX_NAME_CHARS = 200  # an upload's name is cut to this for display
DATA_ENV = "SPEECHFORENSICS_DATA"  # overrides the default data folder
TOKEN_ENV = "SPEECHFORENSICS_TOKEN"  # the token, out of the process list
TOKEN_COOKIE = "speechforensics_token"
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
STATIC = Path(__file__).with_name("static")
JOB_ID = re.compile(r"[0-9a-f]{32}")
VIDEO_FILE = "video"  # jobs/<id>/video.<container extension>
OUTPUTS = {"result.json": "application/json", "report.html": "text/html", "crops.png": "image/png"}
DECLARED_OK = ("video/", "application/octet-stream", "application/mp4", "application/x-matroska")
DECLARED_OK += ("application/x-www-form-urlencoded",)  # curl --data-binary's default: no type
QUEUE_POLL_S = 0.5  # how often an idle worker checks whether the server is stopping

log = logging.getLogger("speechforensics.serve")


@dataclass(frozen=True)
class ServeConfig:
    """What `speechforensics serve` runs with; `data` holds the database and every upload."""

    data: Path
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None  # required when `host` is not a loopback address
    checkpoint: Path | None = None  # passed to backends.load_backend
    calibration: Path | None = None  # thresholds file (None: the one found for the model)
    device: str | None = None  # avhubert: cpu, cuda, cuda:N (None: cuda when there is one)
    dtype: str | None = None  # avhubert: float32 (None), bfloat16, float16
    workers: int = 1  # videos judged at once (0: accept uploads, judge none; for tests)
    max_upload_bytes: int = MAX_UPLOAD_BYTES
    max_seconds: float | None = media.MAX_SECONDS


def default_data_dir() -> Path:
    """$SPEECHFORENSICS_DATA, else $XDG_DATA_HOME/speechforensics (~/.local/share by default)."""
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "speechforensics"


def is_loopback(host: str) -> bool:
    return host.strip("[]") in LOOPBACK_HOSTS or host.startswith("127.")


# The job store: SQLite for the jobs, one folder per job for its files


class JobStore:
    """Jobs in `data/jobs.sqlite3`, their files in `data/jobs/<id>/`; safe across threads (each
    call opens its own connection)."""

    def __init__(self, data: Path):
        self.data = Path(data)
        self.jobs = self.data / "jobs"
        try:
            self.jobs.mkdir(parents=True, exist_ok=True)
            with self._db() as db:
                db.execute(
                    "CREATE TABLE IF NOT EXISTS jobs (id TEXT PRIMARY KEY, name TEXT NOT NULL, "
                    "status TEXT NOT NULL, size INTEGER NOT NULL, created REAL NOT NULL, "
                    "started REAL, finished REAL, error TEXT, result TEXT, about TEXT)"
                )
        except (OSError, sqlite3.Error) as e:
            raise SpeechForensicsError(
                f"{self.data}: cannot keep the job database there ({e}); pass --data DIR"
            ) from e

    def _db(self):
        db = sqlite3.connect(self.data / "jobs.sqlite3", timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")
        return closing(db)

    def _write(self, sql: str, *args) -> int:
        with self._db() as db:
            return db.execute(sql, args).rowcount

    def folder(self, job_id: str) -> Path:
        if not JOB_ID.fullmatch(job_id):  # never a path outside the jobs folder
            raise SpeechForensicsError(f"{job_id!r} is not a job id")
        return self.jobs / job_id

    def new_id(self) -> str:
        return secrets.token_hex(16)

    def add(self, job_id: str, name: str, size: int) -> None:
        self._write(
            "INSERT INTO jobs (id, name, status, size, created) VALUES (?, ?, 'queued', ?, ?)",
            job_id, name, size, time.time(),
        )  # fmt: skip

    def get(self, job_id: str) -> dict | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else dict(row)

    def all(self) -> list[dict]:
        with self._db() as db:
            return [dict(r) for r in db.execute("SELECT * FROM jobs ORDER BY created, rowid")]

    def claim(self, job_id: str) -> bool:
        """Mark a queued job running; False when it is gone or not queued."""
        sql = "UPDATE jobs SET status = 'running', started = ? WHERE id = ? AND status = 'queued'"
        return self._write(sql, time.time(), job_id) == 1

    def finish(self, job_id: str, result: dict, about: str) -> bool:
        sql = "UPDATE jobs SET status = 'done', finished = ?, result = ?, about = ? WHERE id = ?"
        return self._write(sql, time.time(), json.dumps(result), about, job_id) == 1

    def fail(self, job_id: str, error: str) -> bool:
        sql = "UPDATE jobs SET status = 'failed', finished = ?, error = ? WHERE id = ?"
        return self._write(sql, time.time(), error, job_id) == 1

    def delete(self, job_id: str) -> bool:
        gone = self._write("DELETE FROM jobs WHERE id = ?", job_id) == 1
        shutil.rmtree(self.folder(job_id), ignore_errors=True)
        return gone

    def requeue_interrupted(self) -> list[str]:
        """Jobs left running by a stopped server go back in the queue; returns every queued id,
        oldest first."""
        self._write("UPDATE jobs SET status = 'queued', started = NULL WHERE status = 'running'")
        return [j["id"] for j in self.all() if j["status"] == "queued"]

    def video(self, job_id: str) -> Path | None:
        return next(self.folder(job_id).glob(f"{VIDEO_FILE}.*"), None)


# Uploads: type from the first bytes, size limited while streaming, stored under a random id


def sniff(head: bytes) -> str | None:
    """The container extension of a video file's first bytes, or None when it is not one of
    media.FORMATS (mp4/mov, mkv/webm, avi, mpg)."""
    if head[4:8] in (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip", b"pnot"):
        return "mp4"  # ISO base media / QuickTime
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "mkv"  # EBML: Matroska and WebM
    if head.startswith(b"RIFF") and head[8:12] == b"AVI ":
        return "avi"
    if head.startswith((b"\x00\x00\x01\xba", b"\x00\x00\x01\xb3")):
        return "mpg"  # MPEG program stream / elementary video
    if len(head) > 376 and head[0] == head[188] == head[376] == 0x47:
        return "ts"  # MPEG transport stream
    return None


def display_name(name: str | None) -> str:
    """An upload's name, for showing only: its last path part, printable, cut short."""
    name = re.split(r"[/\\]", name or "")[-1]
    name = "".join(c for c in name if c.isprintable()).strip()
    return name[:MAX_NAME_CHARS] or "video"


def check_declared_type(name: str, content_type: str | None) -> None:
    """Refuse an upload whose declared type is plainly not a video (a browser sends none for
    types it does not know, and application/octet-stream for many)."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind and not kind.startswith(DECLARED_OK):
        raise HTTPException(415, f"{name} is {kind}, not a video; upload a video ({media.FORMATS})")


async def save_upload(store: JobStore, chunks, name: str, limit: int) -> str:
    """Stream an upload into a new job's folder; returns the job id. Refuses (HTTPException) a
    file that is empty, too large or not a video container before anything decodes it."""
    job_id = store.new_id()
    folder = store.folder(job_id)
    folder.mkdir()
    part, size, head = folder / "upload.part", 0, b""
    try:
        async with await anyio.open_file(part, "wb") as out:
            async for chunk in chunks:
                size += len(chunk)
                if size > limit:
                    raise HTTPException(413, _too_large(name, limit))
                if len(head) < SNIFF_BYTES:
                    head += chunk[: SNIFF_BYTES - len(head)]
                await out.write(chunk)
        kind = sniff(head)
        if size == 0:
            raise HTTPException(400, f"{name} is empty; upload a video ({media.FORMATS})")
        if kind is None:
            raise HTTPException(415, f"{name} is not a video: its first bytes are none of "
                                f"{media.FORMATS}; upload a video file")  # fmt: skip
        part.replace(folder / f"{VIDEO_FILE}.{kind}")
        store.add(job_id, name, size)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return job_id


def _too_large(name: str, limit: int) -> str:
    return (
        f"{name} is larger than the upload limit of {limit / 1024**2:,.0f} MiB; cut the clip "
        "(only its start is judged) or start the server with a larger --max-upload-mb"
    )


async def _multipart_chunks(request: Request):
    """(name, declared type, chunks) of the one file in a multipart form (field `file`)."""
    form = await request.form(max_files=1)
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise HTTPException(400, "no video in the form; send it as the multipart field `file`")

    async def chunks():
        while chunk := await upload.read(CHUNK_BYTES):
            yield chunk

    return upload.filename, upload.content_type, chunks()


# The workers


def describe(backend) -> str:
    """What the backend sees and cannot see, in plain words: its `about` line, else the first
    paragraph of its class docstring."""
    text = getattr(backend, "about", None) or (type(backend).__doc__ or "").split("\n\n")[0]
    return " ".join(str(text).split())


def analyse(video: Path, name: str, backend, max_seconds: float) -> tuple[dict, str, bytes]:
    """The report for one uploaded video (named `name`, not by its path), its HTML page and
    the PNG of its mouth crops; SpeechForensicsError names the upload, not the stored file."""
    try:
        clip = prepare(video, max_seconds)
        result = judge(clip, backend) | {"file": name}
    except SpeechForensicsError as e:
        raise SpeechForensicsError(str(e).replace(str(video), name)) from e
    crops = next(t.crops for t in clip.tracks if t.face.id == result["face"])
    page = html_page(result, plot_png(result, crops))
    ok, png = cv2.imencode(".png", track_sheet(clip.tracks))
    if not ok:
        raise SpeechForensicsError(f"{name}: could not encode the contact sheet of its crops")
    return result, page, png.tobytes()


def run_job(store: JobStore, job_id: str, backend, max_seconds: float) -> None:
    """Judge one queued job and record the outcome; never raises (a video that cannot be judged
    becomes a failed job with its one-line reason)."""
    if not store.claim(job_id):
        return  # deleted while queued, or already handled
    job, video = store.get(job_id), store.video(job_id)
    try:
        if job is None or video is None:
            raise SpeechForensicsError("the uploaded video is gone; upload it again")
        result, page, png = analyse(video, job["name"], backend, max_seconds)
        if store.get(job_id) is None:
            return  # deleted while it ran (its folder is gone with it)
        folder = store.folder(job_id)
        (folder / "report.html").write_text(page)
        (folder / "crops.png").write_bytes(png)
        (folder / "result.json").write_text(json.dumps(result, indent=1) + "\n")
        recorded = store.finish(job_id, result, describe(backend))
    except SpeechForensicsError as e:
        recorded = store.fail(job_id, str(e))
    except Exception as e:  # a bug must fail this one job, not stop the worker
        log.exception("job %s failed", job_id)
        recorded = store.fail(job_id, f"internal error ({type(e).__name__}: {e}); please report")
    if not recorded:  # deleted while it ran: drop what it wrote
        shutil.rmtree(store.folder(job_id), ignore_errors=True)


class Workers:
    """A bounded pool of threads judging queued jobs, each with its own backend."""

    def __init__(self, store: JobStore, config: ServeConfig):
        self.store, self.config = store, config
        self.backends = [
            load_backend(
                None, config.checkpoint, None, config.calibration, config.device, config.dtype
            )
            for _ in range(config.workers)
        ]
        self.queue: queue.Queue[str] = queue.Queue()
        self.stop = threading.Event()

    def start(self) -> None:
        for job_id in self.store.requeue_interrupted():
            self.queue.put(job_id)
        for n, backend in enumerate(self.backends):
            thread = threading.Thread(target=self._loop, args=(backend,), name=f"worker-{n}")
            thread.daemon = True  # a job cut off by a stop is re-queued at the next start
            thread.start()

    def close(self) -> None:
        self.stop.set()

    def _loop(self, backend) -> None:
        while not self.stop.is_set():
            try:
                job_id = self.queue.get(timeout=QUEUE_POLL_S)
            except queue.Empty:
                continue
            run_job(self.store, job_id, backend, self.config.max_seconds)


# The web app: a guard in front, the page and the API behind


class Guard:
    """ASGI middleware every request passes first: the token (when set), the Host and Origin
    checks, and the upload size limit (from Content-Length, then counted while it streams)."""

    def __init__(self, app, config: ServeConfig):
        self.app, self.config = app, config
        self.check_host = is_loopback(config.host) and not config.token
        self.body_limit = config.max_upload_bytes + CHUNK_BYTES  # room for the form's framing

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message = refusal
            if scope["path"].startswith("/api/"):
                response = JSONResponse({"detail": message}, status)
            else:
                response = Response(message + "\n", status, media_type="text/plain")
            return await response(scope, receive, send)
        if scope["method"] == "POST":
            receive = self._counted(receive)
        await self.app(scope, receive, send)

    def _refusal(self, scope, headers: dict) -> tuple[int, str] | None:
        host = headers.get("host", "")
        if self.check_host and not is_loopback(_hostname(host)):
            return 421, f"this server answers only for 127.0.0.1 or localhost, not {host!r}"
        origin = headers.get("origin")
        if scope["method"] not in ("GET", "HEAD") and origin and _netloc(origin) != host:
            return 403, f"requests from {origin} are refused: use the page this server serves"
        if self.config.token and not _token_ok(self.config.token, scope, headers):
            return 401, (
                "a token is needed: open the address `speechforensics serve` printed (it ends "
                "in ?token=...), or send the header Authorization: Bearer TOKEN"
            )
        length = headers.get("content-length", "")
        if scope["method"] == "POST" and length.isdigit() and int(length) > self.body_limit:
            return 413, _too_large("the upload", self.config.max_upload_bytes)
        return None

    def _counted(self, receive):
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.body_limit:
                raise HTTPException(413, _too_large("the upload", self.config.max_upload_bytes))
            return message

        return counted


def _hostname(host: str) -> str:
    """The name part of a Host header: 'localhost:8765' -> 'localhost', '[::1]:80' -> '::1'."""
    if host.startswith("["):
        return host[1:].split("]")[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def _netloc(origin: str) -> str:
    return origin.split("://", 1)[-1].rstrip("/")


def _token_ok(token: str, scope, headers: dict) -> bool:
    """The token from `Authorization: Bearer`, `X-Token`, the cookie or `?token=`."""
    from http.cookies import SimpleCookie
    from urllib.parse import parse_qs

    sent = [headers.get("x-token", ""), headers.get("authorization", "").removeprefix("Bearer ")]
    cookie = SimpleCookie(headers.get("cookie", "")).get(TOKEN_COOKIE)
    sent.append(cookie.value if cookie else "")
    sent += parse_qs(scope.get("query_string", b"").decode("latin-1")).get("token", [])
    return any(hmac.compare_digest(s.encode(), token.encode()) for s in sent if s)


class Api:
    """The page's routes and the HTTP API (see README, "Web page (serve)")."""

    def __init__(self, store: JobStore, workers: Workers, config: ServeConfig):
        self.store, self.workers, self.config = store, workers, config

    def routes(self, app: FastAPI) -> None:
        app.add_api_route("/", self.index, methods=["GET"], include_in_schema=False)
        app.add_api_route("/api/info", self.info, methods=["GET"])
        app.add_api_route("/api/jobs", self.create_job, methods=["POST"], status_code=201)
        app.add_api_route("/api/jobs", self.list_jobs, methods=["GET"])
        app.add_api_route("/api/jobs/{job_id}", self.get_job, methods=["GET"])
        app.add_api_route(
            "/api/jobs/{job_id}", self.delete_job, methods=["DELETE"], status_code=204
        )
        app.add_api_route("/api/jobs/{job_id}/{output}", self.output, methods=["GET"])
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    async def index(self, request: Request):
        """The page; `/?token=T` stores the token in a cookie and drops it from the address."""
        if self.config.token and "token" in request.query_params:
            response = RedirectResponse("/", 303)
            response.set_cookie(TOKEN_COOKIE, self.config.token, httponly=True, samesite="strict")
            return response
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def info(self) -> dict:
        """The backend that judges new uploads, what it can see, and the upload limits."""
        backend = self.workers.backends[0] if self.workers.backends else None
        return {
            "version": __version__,
            "backend": None if backend is None else backend.name,
            "about": None if backend is None else describe(backend),
            "threshold": None if backend is None else thresholds_of(backend).clip,
            "workers": self.config.workers,
            "max_upload_bytes": self.config.max_upload_bytes,
            "max_seconds": self.config.max_seconds,
            "formats": media.FORMATS,
        }

    async def create_job(self, request: Request) -> JSONResponse:
        """Upload one video: multipart field `file`, or the raw bytes as the body with the name
        in `?name=`. Answers 201 with the queued job."""
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            name, declared, chunks = await _multipart_chunks(request)
        else:
            name, declared = request.query_params.get("name"), content_type
            chunks = request.stream()
        name = display_name(name)
        check_declared_type(name, declared)
        job_id = await save_upload(self.store, chunks, name, self.config.max_upload_bytes)
        self.workers.queue.put(job_id)
        headers = {"Location": f"/api/jobs/{job_id}"}
        return JSONResponse(self._public(self.store.get(job_id)), 201, headers=headers)

    async def list_jobs(self) -> dict:
        """Every job, oldest first, without the full results."""
        jobs = self.store.all()
        return {"jobs": [self._public(j, queued=jobs) for j in jobs]}

    async def get_job(self, job_id: str) -> dict:
        """One job; `result` holds the full report (as `detect --json`) once it is done."""
        return self._public(self._job(job_id), full=True)

    async def delete_job(self, job_id: str) -> Response:
        """Remove a job, its upload and its results."""
        self._job(job_id)
        self.store.delete(job_id)
        return Response(status_code=204)

    async def output(self, job_id: str, output: str) -> FileResponse:
        """A finished job's result.json, report.html (self-contained) or crops.png."""
        self._job(job_id)
        path = self.store.folder(job_id) / output
        if output not in OUTPUTS or not path.exists():
            raise HTTPException(404, f"no {output} for job {job_id}")
        return FileResponse(path, media_type=OUTPUTS[output])

    def _job(self, job_id: str) -> dict:
        job = self.store.get(job_id) if JOB_ID.fullmatch(job_id) else None
        if job is None:
            raise HTTPException(404, f"no job {job_id}")
        return job

    def _public(self, job: dict, full: bool = False, queued: list[dict] | None = None) -> dict:
        """A job as the API shows it: summary fields, links when done, the report if `full`."""
        result = json.loads(job["result"]) if job["result"] else None
        queued = [j["id"] for j in (queued or self.store.all()) if j["status"] == "queued"]
        out = {k: job[k] for k in ("id", "name", "status", "created", "started", "finished")}
        out |= {"size_bytes": job["size"], "error": job["error"], "about": job["about"]}
        out["queue_position"] = queued.index(job["id"]) + 1 if job["id"] in queued else None
        for key in ("verdict", "score", "threshold", "backend"):
            out[key] = result and result[key]
        if result is not None:
            out["links"] = {n.split(".")[0]: f"/api/jobs/{job['id']}/{n}" for n in OUTPUTS}
        if full:
            out["result"] = result
        return out


def create_app(config: ServeConfig) -> FastAPI:
    """The web app; its workers start and stop with it (lifespan). Raises SpeechForensicsError
    for a configuration that cannot serve (a backend that does not load, a public address
    without a token, a data folder that cannot be written)."""
    if not is_loopback(config.host) and not config.token:
        raise SpeechForensicsError(
            f"binding to {config.host} lets other machines reach the page; pass --token SECRET "
            f"(or set ${TOKEN_ENV}), or keep the default --host {DEFAULT_HOST}"
        )
    store = JobStore(config.data)
    workers = Workers(store, config)

    @asynccontextmanager
    async def lifespan(app):
        workers.start()
        yield
        workers.close()

    app = FastAPI(  # no /docs page: it would load its scripts from a CDN, off this machine
        title="speechforensics", version=__version__, lifespan=lifespan, docs_url=None,
        redoc_url=None, openapi_url="/api/openapi.json",
    )  # fmt: skip
    app.state.store, app.state.workers = store, workers
    Api(store, workers, config).routes(app)
    app.add_middleware(Guard, config=config)
    return app


def serve(config: ServeConfig) -> None:
    """Run the page until Ctrl-C (`speechforensics serve`)."""
    import socket
    import sys

    app = create_app(config)
    family = socket.AF_INET6 if ":" in config.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((config.host, config.port))
    except OSError as e:
        sock.close()
        raise SpeechForensicsError(
            f"cannot listen on {config.host}:{config.port} ({e.strerror}); is another server "
            "running there? pass another --port"
        ) from e
    host = f"[{config.host}]" if ":" in config.host else config.host
    url = f"http://{host}:{config.port}/" + (f"?token={config.token}" if config.token else "")
    if not is_loopback(config.host):
        print(
            f"speechforensics: WARNING: listening on {config.host}: anyone who can reach this "
            "machine and has the token can upload videos and read every result",
            file=sys.stderr,
        )
    backend = app.state.workers.backends[0]
    print(
        f"speechforensics: open {url} in your browser (backend {backend.name}; data in "
        f"{config.data}); Ctrl-C stops",
        file=sys.stderr,
        flush=True,
    )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    server.run(sockets=[sock])
