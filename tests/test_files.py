"""files.py: a file is replaced whole or not at all."""

import pytest

from speechforensics.files import replacing


def test_the_file_appears_whole_and_only_when_the_block_ends(tmp_path):
    path = tmp_path / "sub/out.json"
    with replacing(path) as tmp:
        tmp.write_text("{}")
        assert tmp.suffix == ".json" and tmp.parent == path.parent and not path.exists()
    assert path.read_text() == "{}" and list(path.parent.iterdir()) == [path]


def test_a_failed_write_leaves_the_old_file_and_no_part(tmp_path):
    path = tmp_path / "out.csv"
    path.write_text("old")
    with pytest.raises(RuntimeError), replacing(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert path.read_text() == "old" and list(tmp_path.iterdir()) == [path]
