"""Shared test fixtures: the reference material in ../shared, found beside the repository."""

import lzma
import shutil
from pathlib import Path

import numpy as np
import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
AVHUBERT_FIXTURES = SHARED / "reference/avhubert/fixtures"


def need(path: Path) -> Path:
    """`path`, or skip the test when the shared reference material is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (reference material lives in ../shared, outside the repo)")
    return path


@pytest.fixture(scope="session")
def fixture_checkpoints(tmp_path_factory):
    """Decompress a fixture checkpoint (*.pt.xz) once per session: `fixture_checkpoints(name)`."""
    out, done = tmp_path_factory.mktemp("checkpoints"), {}

    def get(name: str) -> Path:
        if name not in done:
            src = need(AVHUBERT_FIXTURES / f"{name}.pt.xz")
            with lzma.open(src) as fin, open(out / f"{name}.pt", "wb") as fout:
                shutil.copyfileobj(fin, fout, length=1 << 22)
            done[name] = out / f"{name}.pt"
        return done[name]

    return get


@pytest.fixture(scope="session")
def reference():
    """`reference(name)` -> dict of arrays from AVHUBERT_FIXTURES/name.npz."""

    def get(name: str) -> dict:
        with np.load(need(AVHUBERT_FIXTURES / f"{name}.npz")) as npz:
            return dict(npz)

    return get


@pytest.fixture(autouse=True)
def empty_model_cache(tmp_path_factory, monkeypatch):
    """Tests never see a checkpoint a developer downloaded: the model cache is an empty folder
    (subprocesses inherit it through the environment)."""
    monkeypatch.setenv("SPEECHFORENSICS_CACHE", str(tmp_path_factory.mktemp("cache")))
    monkeypatch.delenv("SPEECHFORENSICS_CHECKPOINT", raising=False)
