"""The atomic file writer: complete new content or the old file, never half of either."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zeronn._atomic import atomic_path, atomic_write


def test_atomic_path_leaves_nothing_on_failure(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(str(target)) as tmp:
        Path(tmp).write_text("half")
        raise RuntimeError("crash while writing")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with atomic_path(str(target)) as tmp:
        Path(tmp).write_text("new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_atomic_path_keeps_the_suffix_for_format_sniffing_writers(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "fig.png", ".png") as tmp:
        assert tmp.endswith(".png.tmp") and os.path.dirname(tmp) == str(tmp_path)
        Path(tmp).write_bytes(b"png")
    assert (tmp_path / "fig.png").read_bytes() == b"png"


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         where: str) -> None:
    target = tmp_path / "data.bin"
    target.write_bytes(b"old")

    def boom(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt if where == "fsync" else OSError("disk full")

    if where != "write":
        monkeypatch.setattr(os, where, boom)
    with pytest.raises((OSError, KeyboardInterrupt)), atomic_write(target) as f:
        f.write(b"new, half")
        if where == "write":
            boom()
    monkeypatch.undo()
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["data.bin"]


def test_missing_folder_or_a_folder_fails_before_writing(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="folder does not exist"), \
            atomic_write(tmp_path / "nope" / "x.bin"):
        pass
    with pytest.raises(IsADirectoryError), atomic_write(tmp_path):
        pass
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_mode_follows_umask_and_is_kept_on_overwrite(tmp_path: Path) -> None:
    path = tmp_path / "x.bin"
    mask = os.umask(0o022)
    try:
        with atomic_write(path) as f:
            f.write(b"1")
    finally:
        os.umask(mask)
    # mkstemp creates 0600; the result must look like any other new file instead.
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    path.chmod(0o640)
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(b"2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert path.read_bytes() == b"2"
