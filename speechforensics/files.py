"""Writing files whole: a reader, a crash or a second process never sees half a file."""

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

from .errors import SpeechForensicsError

HASH_CHUNK_BYTES = 1 << 22


@contextlib.contextmanager
def replacing(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` (same suffix, so writers that go by it still work) to write
    to; moved onto `path` when the block ends, deleted if it raises. Creates the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.part{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def file_hash(path: str | Path) -> str:
    """The SHA-256 of a file's content (hex), read in chunks."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(HASH_CHUNK_BYTES):
                digest.update(chunk)
    except OSError as e:
        raise SpeechForensicsError(f"{path}: cannot read ({e.strerror or e})") from e
    return digest.hexdigest()
