"""The local-folder storage: atomic puts, path checks, listing without temp files."""

from __future__ import annotations

import os
from pathlib import PurePosixPath

import pytest

from archive.naming import TEMP_PREFIX, check_relative
from archive.storage import LocalStorage, Storage


def test_put_get_list_exists_delete(tmp_path):
    """The five operations of the protocol on a real folder."""
    s = LocalStorage(tmp_path / "a")
    assert isinstance(s, Storage)
    p = PurePosixPath("2026/11/某公司_2026-11-22_投诉_261122-0007_v1.pdf")
    s.put(p, b"one")
    assert s.get(p) == b"one" and s.exists(p)
    s.put(p, b"two")  # replaced atomically
    assert s.get(p) == b"two"
    s.put(PurePosixPath("MANIFEST.jsonl"), b"{}\n")
    assert list(s.list()) == [PurePosixPath("2026/11/某公司_2026-11-22_投诉_261122-0007_v1.pdf"), PurePosixPath("MANIFEST.jsonl")]
    assert list(s.list("2026")) == [p]
    s.delete(p)
    assert not s.exists(p)
    with pytest.raises(FileNotFoundError):
        s.get(p)
    with pytest.raises(FileNotFoundError):
        s.delete(p)


@pytest.mark.parametrize("bad", ["/etc/passwd", "../x", "a/../../x", "", ".", "a//b/..", f"a/{TEMP_PREFIX}x", "a\\..\\b"])
def test_paths_outside_the_archive_are_refused(tmp_path, bad):
    """Absolute paths, '..', temp names and backslashes never reach the file system."""
    s = LocalStorage(tmp_path / "a")
    with pytest.raises(ValueError):
        s.put(PurePosixPath(bad) if bad else bad, b"x")
    with pytest.raises(ValueError):
        check_relative(bad)
    assert not (tmp_path / "x").exists()


def test_a_failed_put_leaves_neither_temp_file_nor_partial_file(tmp_path, monkeypatch):
    """If the rename fails, the old file is intact and no temp file is left behind."""
    s = LocalStorage(tmp_path / "a")
    p = PurePosixPath("2026/11/x.pdf")
    s.put(p, b"old")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(OSError):
        s.put(p, b"new")
    monkeypatch.undo()
    assert s.get(p) == b"old"
    assert sorted(os.listdir(tmp_path / "a" / "2026" / "11")) == ["x.pdf"]


def test_temp_files_of_an_interrupted_put_are_not_listed(tmp_path):
    s = LocalStorage(tmp_path / "a")
    (tmp_path / "a" / f"{TEMP_PREFIX}abc").write_bytes(b"partial")
    assert list(s.list()) == []


def test_put_fsyncs_the_file_before_the_rename_and_the_folder_after(tmp_path, monkeypatch):
    """Durable when put returns: data fsync'd, renamed into place, then the folder fsync'd."""
    s = LocalStorage(tmp_path / "a")
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("rename", os.path.basename(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    s.put(PurePosixPath("2026/11/x.pdf"), b"data")
    assert events[-3][0] == "fsync" and events[-3][1].startswith(TEMP_PREFIX)  # the data
    assert events[-2] == ("rename", "x.pdf")
    assert events[-1] == ("fsync", "11")  # the folder holding the new name
    assert ("fsync", "2026") in events[:-3]  # new folders are made durable too
