"""Fetch the official AV-HuBERT checkpoints into a local cache, resumably, and convert them.

`download("base")` streams base_vox_iter5.pt to `<cache>/base_vox_iter5.pt.part` (an interrupted
download resumes with an HTTP Range request), hashing it with SHA-256 as it goes. It then checks
the size against the server's and the hash where one is known, moves the file into place with
`os.replace`, reads it safely and converts it with `convert()` to
`<cache>/base_vox_iter5.safetensors` (+ .json), and deletes the .pt: nothing pickled stays in the
cache. What was downloaded (URL, bytes, SHA-256) is recorded in
`<cache>/base_vox_iter5.download.json`.

The cache is `$SPEECHFORENSICS_CACHE`, else `$XDG_CACHE_HOME/speechforensics`, else
`~/.cache/speechforensics`. `url=` (`--url` on the command line) downloads from another place (a
mirror, a local server in tests); there is no environment variable for it.
"""

import hashlib
import http.client
import json
import os
import re
import sys
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ..errors import SpeechForensicsError

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # per socket operation, not for the whole download

_URL_DIR = "https://dl.fbaipublicfiles.com/avhubert/model/lrs3_vox/clean-pretrain/"


@dataclass(frozen=True)
class Model:
    url: str
    sha256: str | None  # None: not known here; the size and a strict read verify the file instead
    size: int | None  # bytes; None: taken from the server's Content-Length / Content-Range


# The official SHA-256 and sizes were not available when this table was written: fill them in
# from a trusted download rather than guessing. Until then `--sha256` lets a user pin a hash.
_MODELS = {
    "base": Model(_URL_DIR + "base_vox_iter5.pt", None, None),
    "large": Model(_URL_DIR + "large_vox_iter5.pt", None, None),
}


def available_models() -> list[str]:
    return list(_MODELS)


def cache_dir() -> Path:
    """`$SPEECHFORENSICS_CACHE`, else `$XDG_CACHE_HOME/speechforensics`, else ~/.cache/..."""
    if os.environ.get("SPEECHFORENSICS_CACHE"):
        return Path(os.environ["SPEECHFORENSICS_CACHE"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(xdg).expanduser() / "speechforensics"


def find_cached(name: str, cache: str | Path | None = None) -> Path | None:
    """The converted checkpoint of model `name` in the cache, or None if it was not downloaded."""
    out = _target(name, cache)
    return out if out.is_file() else None


def download(
    name: str,
    cache: str | Path | None = None,
    url: str | None = None,
    sha256: str | None = None,
    progress: bool = False,
) -> Path:
    """Download model `name` ("base" or "large") into the cache; the converted .safetensors path.

    A converted file already in the cache is checked (it loads; its recorded hash is `sha256`) and
    returned. `sha256` (hex) pins the hash of the .pt; it defaults to the table's, if known.
    """
    out, model = _target(name, cache), _MODELS[name]
    url = url or model.url
    expected = _normalise_sha256(sha256 or model.sha256)
    if out.is_file():
        problem = _cached_problem(out, expected)
        if problem is None:
            return out
        warnings.warn(f"{out}: {problem}; downloading it again", stacklevel=2)
        _remove(out, out.with_suffix(".json"), _record(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    pt = out.with_suffix(".pt")
    part = pt.with_name(pt.name + ".part")
    if pt.exists():  # left by a run stopped before converting: verify it again like a download
        os.replace(pt, part)
    digest, nbytes = _fetch(url, part, model.size, progress)
    if expected is not None and digest != expected:
        part.unlink()
        raise SpeechForensicsError(
            f"{url}: SHA-256 mismatch: expected {expected}, got {digest}; "
            "the download was deleted, check the hash or the URL"
        )
    os.replace(part, pt)
    _install(pt, out, url)
    record = {"url": url, "file": pt.name, "bytes": nbytes, "sha256": digest}
    _record(out).write_text(json.dumps(record, indent=2) + "\n")
    return out


def _target(name: str, cache: str | Path | None) -> Path:
    if name not in _MODELS:
        raise SpeechForensicsError(
            f"unknown model '{name}'; available: {', '.join(available_models())}"
        )
    stem = Path(_MODELS[name].url.rsplit("/", 1)[-1]).stem
    return Path(cache if cache is not None else cache_dir()) / f"{stem}.safetensors"


def _record(out: Path) -> Path:
    return out.with_suffix(".download.json")


def _remove(*paths: Path) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _normalise_sha256(sha256: str | None) -> str | None:
    if sha256 is None:
        return None
    if not re.fullmatch(r"[0-9a-fA-F]{64}", sha256):
        raise SpeechForensicsError(f"'{sha256}' is not a SHA-256 (64 hexadecimal digits)")
    return sha256.lower()


def _cached_problem(out: Path, expected: str | None) -> str | None:
    """Why the cached `out` cannot be used, or None if it can."""
    if expected is not None:
        try:
            recorded = json.loads(_record(out).read_text()).get("sha256")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded != expected:
            return f"downloaded with SHA-256 {recorded}, not {expected}"
    from .checkpoint import load_checkpoint  # here: finding a cached file needs no torch

    try:
        load_checkpoint(out)
    except SpeechForensicsError as e:
        return str(e).removeprefix(f"{out}: ")
    return None


def _fetch(url: str, part: Path, size: int | None, progress: bool) -> tuple[str, int]:
    """Download `url` into `part`, resuming from its current length; (SHA-256 hex, bytes)."""
    offset = part.stat().st_size if part.exists() else 0
    response, start, total = _open(url, offset)
    if response is None and total != offset:  # 416: the part is longer than the file
        part.unlink()
        response, start, total = _open(url, 0)
    if start not in (0, offset):
        response.close()
        raise SpeechForensicsError(f"{url}: asked to resume at byte {offset}, got byte {start}")
    if size is not None and total is not None and total != size:
        if response is not None:
            response.close()
        raise SpeechForensicsError(
            f"{url}: the server's file has {total} bytes, not the {size} expected; check the URL"
        )
    hasher = _hash_prefix(part, start)
    if response is not None:
        with response:
            _stream(response, part, hasher, start, total, progress, url)
    nbytes = part.stat().st_size
    if total is not None and nbytes > total:
        part.unlink()
        raise SpeechForensicsError(
            f"{url}: got {nbytes} bytes, more than the {total} announced; "
            "the download was deleted, run the command again"
        )
    if total is not None and nbytes < total:
        raise SpeechForensicsError(
            f"{url}: the connection closed after {nbytes} of {total} bytes; "
            "run the command again to resume"
        )
    return hasher.hexdigest(), nbytes


def _open(url: str, offset: int) -> tuple[http.client.HTTPResponse | None, int, int | None]:
    """(response or None when there is nothing left to read, first byte, total bytes or None)."""
    headers = {"User-Agent": "speechforensics", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as e:
        with e:
            if e.code == 416 and offset:
                return None, offset, _content_range(e.headers.get("Content-Range", ""))[1]
        kept = " (the partial download is kept)" if offset else ""
        raise SpeechForensicsError(f"{url}: HTTP {e.code} {e.reason}; check the URL{kept}") from e
    except (urllib.error.URLError, OSError, http.client.HTTPException, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise SpeechForensicsError(
            f"{url}: {reason}; check the network and run the command again"
        ) from e
    if response.status == 206:
        return (response, *_content_range(response.headers.get("Content-Range", "")))
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def _content_range(value: str) -> tuple[int, int | None]:
    """(first byte, total or None) of a Content-Range header: 'bytes 10-99/100', 'bytes */100'."""
    m = re.fullmatch(r"bytes (?:(\d+)-\d+|\*)/(\d+|\*)", value.strip())
    if m is None:
        raise SpeechForensicsError(f"unreadable Content-Range '{value}' from the server")
    first, total = m.groups()
    return int(first or 0), None if total == "*" else int(total)


def _hash_prefix(part: Path, start: int):
    """SHA-256 state after the first `start` bytes of `part` (the bytes a resume keeps)."""
    hasher = hashlib.sha256()
    if start:
        with open(part, "rb") as f:
            while chunk := f.read(min(CHUNK_BYTES, start - f.tell())):
                hasher.update(chunk)
    return hasher


def _stream(response, part: Path, hasher, start: int, total, progress: bool, url: str) -> None:
    name = part.name.removesuffix(".part")
    with (
        open(part, "r+b" if start else "wb") as f,
        tqdm(
            total=total,
            initial=start,
            desc=name,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not progress,
            file=sys.stderr,
        ) as bar,
    ):
        f.seek(start)
        f.truncate()
        while True:
            try:
                chunk = response.read(CHUNK_BYTES)
            except (OSError, http.client.HTTPException) as e:
                raise SpeechForensicsError(
                    f"{url}: download interrupted after {f.tell()} bytes ({e}); "
                    "run the command again to resume"
                ) from e
            if not chunk:
                return
            hasher.update(chunk)
            f.write(chunk)
            bar.update(len(chunk))


def _install(pt: Path, out: Path, url: str) -> None:
    """Convert `pt` to `out` (strictly checked), then delete `pt` whatever happened."""
    from .checkpoint import convert, load_checkpoint  # here: finding a cached file needs no torch

    try:
        convert(pt, out)
        load_checkpoint(out)  # strict: every weight present with its shape
    except SpeechForensicsError as e:
        _remove(out, out.with_suffix(".json"), out.with_name(out.name + ".part"))
        why = str(e).removeprefix(f"{pt}: ").removesuffix("; download it again")
        raise SpeechForensicsError(
            f"{url}: not a usable AV-HuBERT checkpoint ({why}); the download was deleted"
        ) from e
    finally:
        pt.unlink(missing_ok=True)
