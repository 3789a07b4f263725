"""lists.py: every list format (the original lists, CSV/TSV, real/ and fake/ folders) and the
one-line errors for bad ones."""

from pathlib import Path

import pytest
from conftest import SHARED, need

from speechforensics.errors import SpeechForensicsError
from speechforensics.lists import Item, official_parser_keeps, read_list

DEV = SHARED / "media/dev"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_original_list_splits_on_the_last_space_and_finds_categories(tmp_path):
    listing = _write(
        tmp_path / "test.txt",
        "real videos/my clip 01.mp4 1\n"
        "\n"
        "FakeAVCeleb/FakeVideo-FakeAudio/African/men/id00076/00109.mp4 0\n"
        "manipulated_sequences/Deepfakes/c23/videos/000_003.mp4 0\n",
    )
    items = read_list(listing, root=Path("/data"))
    assert items[0] == Item(Path("/data/real videos/my clip 01.mp4"), 1, "real")
    assert [i.category for i in items] == ["real", "FakeVideo-FakeAudio", "Deepfakes"]
    assert [i.label for i in items] == [1, 0, 0]
    assert read_list(listing)[0].path == tmp_path / "real videos/my clip 01.mp4"  # default root
    regex = read_list(listing, category_regex=r"^(\w+)/")
    assert [i.category for i in regex] == ["real", "FakeAVCeleb", "manipulated_sequences"]


def test_csv_with_words_for_labels_categories_and_segments(tmp_path):
    listing = _write(
        tmp_path / "list.csv",
        "path,label,category,segments\n"
        "/abs/a.mp4,real,original,\n"
        "b.mp4,fake,splice,1.5-3.5\n"
        'c.mp4,FAKE,splice,"[[0.0, 1.0], [2.0, 2.5]]"\n',
    )
    items = read_list(listing)
    assert items[0].path == Path("/abs/a.mp4") and items[0].category == "original"
    assert items[1] == Item(tmp_path / "b.mp4", 0, "splice", ((1.5, 3.5),))
    assert items[2].segments == ((0.0, 1.0), (2.0, 2.5))


def test_the_dev_manifest_tsv():
    items = read_list(need(DEV / "MANIFEST.tsv"))
    assert len(items) == 51 and sum(i.label for i in items) == 29
    assert all(i.path.parent == DEV for i in items)
    wav2lip = [i for i in items if i.path.name == "gsw2l_result_voice.mp4"]
    assert wav2lip[0].label == 0 and wav2lip[0].category == "Wav2Lip output"


def test_real_and_fake_folders(tmp_path):
    for name in ("real/a.mp4", "real/b.MOV", "fake/Deepfakes/c.mp4", "fake/d.mkv", "fake/x.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    items = read_list(tmp_path)
    assert [(i.path.name, i.label, i.category) for i in items] == [
        ("a.mp4", 1, "real"),
        ("b.MOV", 1, "real"),
        ("c.mp4", 0, "Deepfakes"),
        ("d.mkv", 0, "fake"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("a.mp4 1\nb.mp4 maybe\n", "line 2: label 'maybe'"),
        ("a.mp4\n", "line 1: expected 'path label'"),
        ("file\tlabel\tkind\na.mp4\treal\n", "line 2: 2 columns, the header has 3"),
        ("file,label,segments\na.mp4,fake,3-1\n", "line 2: segment in '3-1' ends before"),
        ("# nothing\n", "lists no videos"),
    ],
)
def test_bad_lists_name_the_file_and_line(tmp_path, text, message):
    listing = _write(tmp_path / "bad.txt", text)
    with pytest.raises(SpeechForensicsError, match=message) as e:
        read_list(listing)
    assert str(listing) in str(e.value) and "\n" not in str(e.value)


def test_missing_list_empty_folder_and_bad_regex(tmp_path):
    with pytest.raises(SpeechForensicsError, match="no such list"):
        read_list(tmp_path / "nope.txt")
    with pytest.raises(SpeechForensicsError, match="real/ and fake/"):
        read_list(tmp_path)
    with pytest.raises(SpeechForensicsError, match="category-regex"):
        read_list(_write(tmp_path / "l.txt", "a.mp4 1\n"), category_regex="(")


def test_official_parser_keeps_only_paths_without_spaces(tmp_path):
    """The official evaluate.py takes split(' ')[0] as the path: FakeAVCeleb's paths with spaces
    are dropped without a word (17,455 of its 21,544 lines); we keep every line."""
    listing = tmp_path / "list.txt"
    listing.write_text("a/b c.mp4 1\nd/e.mp4 0\n\nf g/h i.mp4 1\nok.mp4 fake\n")
    assert len(read_list(listing)) == 4 and official_parser_keeps(listing) == 2
    table = tmp_path / "list.csv"
    table.write_text("file,label\nx y.mp4,1\n")
    assert official_parser_keeps(table) is None
