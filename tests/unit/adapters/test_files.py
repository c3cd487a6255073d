"""Files replaced whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from usage_adapters.files import replace_file


def test_the_new_content_replaces_the_old_owner_only(tmp_path: Path) -> None:
    """The file holds the new bytes, readable by its owner only, with nothing left beside it."""
    path = tmp_path / "state.json"
    path.write_bytes(b"old")
    replace_file(path, b"new")
    assert path.read_bytes() == b"new"
    assert path.stat().st_mode & 0o777 == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["state.json"]


def test_a_wider_mode_is_applied_before_the_rename(tmp_path: Path) -> None:
    """A textfile for another reader gets the mode asked for."""
    path = tmp_path / "usage_sync.prom"
    replace_file(path, b"x 1\n", mode=0o644)
    assert path.stat().st_mode & 0o777 == 0o644


def test_a_failed_replace_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    """Renaming over a directory fails: the directory stays and the temporary file is gone."""
    target = tmp_path / "taken"
    target.mkdir()
    with pytest.raises(IsADirectoryError):
        replace_file(target, b"new")
    assert target.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == ["taken"]
