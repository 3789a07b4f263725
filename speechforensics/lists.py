"""Lists of labelled videos as researchers already have them: the original SpeechForensics lists
(`relative/path label` per line), CSV/TSV manifests with file and label columns, and folders with
real/ and fake/ subfolders. Labels follow the paper: 1 = real, 0 = fake.
"""

import csv
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import SpeechForensicsError

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".m4v")
LABELS = {"1": 1, "real": 1, "genuine": 1, "0": 0, "fake": 0, "forged": 0}
PATH_COLUMNS = ("file", "path", "video", "filename")
CATEGORY_COLUMNS = ("category", "kind", "type", "method")
# Folder names that name a category wherever they appear in a path (FakeAVCeleb, FF++).
KNOWN_CATEGORIES = (
    "RealVideo-RealAudio", "RealVideo-FakeAudio", "FakeVideo-RealAudio", "FakeVideo-FakeAudio",
    "original_sequences", "Deepfakes", "Face2Face", "FaceSwap", "NeuralTextures", "FaceShifter",
    "DeepFakeDetection",
)  # fmt: skip


@dataclass(frozen=True)
class Item:
    """One video of a list: label 1 = real, 0 = fake (the paper's convention)."""

    path: Path
    label: int
    category: str
    segments: tuple[tuple[float, float], ...] = ()  # manipulated [start, end) seconds, if known


def read_list(
    list_path: Path, root: Path | None = None, category_regex: str | None = None
) -> list[Item]:
    """The videos of a list file or a folder with real/ and fake/ subfolders. Relative paths are
    resolved against `root` (default: the list's folder). The category comes from a
    kind/category column, else from a known folder name in the path (FakeAVCeleb's
    `FakeVideo-FakeAudio/...`, FF++'s `Deepfakes/...`), else the label; `category_regex`
    (searched in the path; its first group, or the whole match) overrides both."""
    list_path = Path(list_path)
    if not list_path.exists():
        raise SpeechForensicsError(f"{list_path}: no such list file or folder")
    if list_path.is_dir():
        rows = _folder_rows(list_path)
        root = Path(root) if root is not None else list_path
    else:
        rows = _file_rows(list_path)
        root = Path(root) if root is not None else list_path.parent
    pattern = _compile(category_regex)
    items = []
    for where, name, label, category, segments in rows:
        category = _category(name, label, category, pattern)
        path = Path(os.path.normpath(name if Path(name).is_absolute() else root / name))
        items.append(Item(path, label, category, segments))
    if not items:
        raise SpeechForensicsError(f"{list_path}: lists no videos")
    return items


def _compile(regex: str | None):
    if regex is None:
        return None
    try:
        return re.compile(regex)
    except re.error as e:
        raise SpeechForensicsError(f"--category-regex {regex!r}: {e}") from e


def _category(name: str, label: int, column: str, pattern) -> str:
    if pattern is not None and (m := pattern.search(name)):
        return m.group(1) if m.groups() and m.group(1) else m.group(0)
    if column:
        return column
    parts = Path(name).parts
    for known in KNOWN_CATEGORIES:
        if known in parts:
            return known
    return "real" if label == 1 else "fake"


def _label(value: str, where: str) -> int:
    label = LABELS.get(value.strip().lower())
    if label is None:
        raise SpeechForensicsError(f"{where}: label {value!r} is neither real/fake nor 1/0")
    return label


def _segments(value: str, where: str) -> tuple[tuple[float, float], ...]:
    """'1.0-3.0;5-6' (or JSON-like '[[1.0, 3.0]]') -> ((1.0, 3.0), (5.0, 6.0))."""
    numbers = re.findall(r"\d+(?:\.\d+)?", value)
    if len(numbers) % 2:
        raise SpeechForensicsError(f"{where}: segments {value!r} are not start-end pairs")
    pairs = [(float(a), float(b)) for a, b in zip(numbers[::2], numbers[1::2], strict=True)]
    if any(b <= a for a, b in pairs):
        raise SpeechForensicsError(f"{where}: segment in {value!r} ends before it starts")
    return tuple(pairs)


def _file_rows(list_path: Path) -> list[tuple]:
    try:
        text = list_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise SpeechForensicsError(f"{list_path}: cannot read the list ({e})") from e
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), "")
    delimiter = "\t" if "\t" in first else "," if "," in first else None
    header = [c.strip().lower() for c in re.split(delimiter or r"\s+", first.strip())]
    if delimiter and any(c in PATH_COLUMNS for c in header) and "label" in header:
        return _table_rows(list_path, lines, delimiter)
    return _plain_rows(list_path, lines)


def _plain_rows(list_path: Path, lines: list[str]) -> list[tuple]:
    """The original lists: `relative/path label` per line, split on the last space."""
    rows = []
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{list_path}, line {n}"
        name, _, label = line.rstrip().rpartition(" ")
        if not name.strip():
            raise SpeechForensicsError(
                f"{where}: expected 'path label' (or a CSV/TSV with file and label columns)"
            )
        rows.append((where, name.strip(), _label(label, where), "", ()))
    return rows


def _table_rows(list_path: Path, lines: list[str], delimiter: str) -> list[tuple]:
    reader = csv.reader(lines, delimiter=delimiter)
    header = [c.strip().lower() for c in next(reader)]
    path_col = header.index(next(c for c in PATH_COLUMNS if c in header))
    label_col = header.index("label")
    category_col = next((header.index(c) for c in CATEGORY_COLUMNS if c in header), None)
    segments_col = header.index("segments") if "segments" in header else None
    rows = []
    for n, cells in enumerate(reader, 2):
        if not any(c.strip() for c in cells):
            continue
        where = f"{list_path}, line {n}"
        if len(cells) < len(header):
            raise SpeechForensicsError(
                f"{where}: {len(cells)} columns, the header has {len(header)}"
            )
        category = cells[category_col].strip() if category_col is not None else ""
        spans = _segments(cells[segments_col], where) if segments_col is not None else ()
        rows.append(
            (where, cells[path_col].strip(), _label(cells[label_col], where), category, spans)
        )
    return rows


def _folder_rows(folder: Path) -> list[tuple]:
    """real/ and fake/ subfolders (searched recursively); the category is the first folder below
    them, if any."""
    rows = []
    for name, label in (("real", 1), ("fake", 0)):
        sub = folder / name
        for path in sorted(p for p in sub.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES):
            relative = path.relative_to(folder)
            category = relative.parts[1] if len(relative.parts) > 2 else ""
            rows.append((str(path), str(relative), label, category, ()))
    if not (folder / "real").is_dir() and not (folder / "fake").is_dir():
        raise SpeechForensicsError(
            f"{folder}: a folder list needs real/ and fake/ subfolders of videos"
        )
    return rows


def official_parser_keeps(list_path: Path) -> int | None:
    """How many of a plain list's videos the official SpeechForensics evaluate.py would score:
    it takes the text before the first space as the path (``split(' ')[0]``), so a line whose
    path holds a space (or that is separated by a tab) names a file that does not exist and is
    skipped without a word. None for CSV/TSV lists and folders, which it cannot read."""
    list_path = Path(list_path)
    if list_path.is_dir():
        return None
    rows = _file_rows(list_path)
    lines = list_path.read_text(encoding="utf-8-sig").splitlines()
    plain = [line for line in lines if line.strip() and not line.lstrip().startswith("#")]
    if len(plain) != len(rows):  # a table: a header line that is no video
        return None
    return sum(line.split(" ")[0] == name for line, (_, name, *_) in zip(plain, rows, strict=True))
