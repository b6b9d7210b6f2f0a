"""files.py: the one atomic writer, the one lock and the one free-space check every module uses."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import filelock
import pytest

from idc_mcp import files
from idc_mcp.files import PathRefused, atomic_output, atomic_write, file_lock, free_bytes
from idc_mcp.indices.store import write_json_atomic


class Boom(Exception):
    pass


def _only(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_atomic_write_replaces_the_file_and_leaves_nothing_else(tmp_path):
    target = tmp_path / "manifest.txt"
    target.write_text("old")
    with atomic_write(target) as out:
        out.write("new")
        # Until the block ends the old content stays under the final name; the temporary is a
        # dot-file from tempfile in the same folder (so the rename never crosses file systems).
        assert target.read_text() == "old"
        (temp,) = [p for p in tmp_path.iterdir() if p.name != "manifest.txt"]
        assert temp.name.startswith(".manifest.txt.") and temp.name.endswith(".tmp")
    assert target.read_text() == "new"
    assert _only(tmp_path) == ["manifest.txt"]


def test_a_failed_write_keeps_the_old_file_and_removes_its_temporary(tmp_path):
    target = tmp_path / "state.json"
    target.write_text("old")
    with pytest.raises(Boom), atomic_write(target) as out:
        out.write("half of the new")
        raise Boom
    assert target.read_text() == "old"
    assert _only(tmp_path) == ["state.json"]


def test_a_failed_rename_removes_the_temporary(tmp_path, monkeypatch):
    target = tmp_path / "a.txt"
    target.write_text("old")

    def fail(src, dst):  # e.g. the disk went away between write and rename
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError), atomic_write(target) as out:
        out.write("new")
    assert target.read_text() == "old" and _only(tmp_path) == ["a.txt"]


def test_before_replace_can_refuse_and_nothing_is_left(tmp_path):
    def refuse(final: Path) -> None:
        raise Boom(final)

    with pytest.raises(Boom), atomic_write(tmp_path / "x", before_replace=refuse) as out:
        out.write("x")
    assert _only(tmp_path) == []


def test_atomic_write_inside_the_root_rejects_symlink_escape(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "link").symlink_to(outside / "victim")
    with pytest.raises(PathRefused), atomic_write(root / "link", root=root) as out:
        out.write("x")
    (root / "out").symlink_to(outside)
    with pytest.raises(PathRefused), atomic_write(root / "out" / "file", root=root) as out:
        out.write("x")
    assert _only(outside) == [] and _only(root) == ["link", "out"]


def test_binary_writes_and_a_chosen_suffix(tmp_path):
    seen: list[str] = []
    with atomic_write(tmp_path / "img.dcm", binary=True, suffix=".idcpart") as out:
        out.write(b"\x00\x01")
        seen = [p.name for p in tmp_path.iterdir()]
    assert (tmp_path / "img.dcm").read_bytes() == b"\x00\x01"
    assert len(seen) == 1 and seen[0].startswith(".img.dcm.") and seen[0].endswith(".idcpart")


def test_atomic_output_for_producers_that_open_by_name(tmp_path):
    target = tmp_path / "catalog.duckdb"
    target.write_text("old")
    with pytest.raises(Boom), atomic_output(target) as produced:
        produced.write_text("partial")
        produced.with_name(produced.name + ".wal").write_text("log")  # what DuckDB leaves beside it
        raise Boom
    assert target.read_text() == "old" and _only(tmp_path) == ["catalog.duckdb"]
    with atomic_output(target) as produced:
        produced.write_text("complete")
        produced.with_name(produced.name + ".wal").write_text("log")
    assert target.read_text() == "complete" and _only(tmp_path) == ["catalog.duckdb"]


def test_index_records_are_written_atomically_and_a_failure_leaves_no_temporary(tmp_path, monkeypatch):
    # Regression: indices/store.write_json_atomic used to leave its `.meta.tmp` file when the rename failed.
    record = tmp_path / "sm_index.json"
    write_json_atomic(record, {"a": 1})
    assert json.loads(record.read_text()) == {"a": 1}
    monkeypatch.setattr(os, "replace", lambda src, dst: (_ for _ in ()).throw(OSError(28, "No space")))
    with pytest.raises(OSError):
        write_json_atomic(record, {"a": 2})
    assert json.loads(record.read_text()) == {"a": 1} and _only(tmp_path) == ["sm_index.json"]


def test_write_text_inside_refuses_paths_outside_the_root(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    assert files.write_text_inside(root, root / "a.txt", "x").read_text() == "x"
    with pytest.raises(PathRefused):
        files.write_text_inside(root, tmp_path / "b.txt", "x")
    assert not (tmp_path / "b.txt").exists()


def test_file_lock_excludes_other_lock_objects_and_other_threads(tmp_path):
    lock_path = tmp_path / "sub" / ".x.lock"  # the folder is created on demand
    with file_lock(lock_path):
        with pytest.raises(filelock.Timeout):
            filelock.FileLock(lock_path).acquire(timeout=0)
        blocked: list[bool] = []
        thread = threading.Thread(target=lambda: blocked.append(_try(lock_path)))
        thread.start()
        thread.join()
        assert blocked == [False]
    assert _try(lock_path)


def _try(path: Path) -> bool:
    try:
        with file_lock(path).acquire(timeout=0):
            return True
    except filelock.Timeout:
        return False


def test_free_bytes_of_a_folder_not_yet_created_is_that_of_its_nearest_existing_ancestor(tmp_path):
    assert free_bytes(tmp_path / "not" / "yet") == pytest.approx(shutil.disk_usage(tmp_path).free, rel=0.01)


def test_file_lock_excludes_another_process(tmp_path):
    # The catalog build and index fetches rely on this between servers started side by side.
    lock_path = tmp_path / ".x.lock"
    code = (
        "import pathlib, sys; from idc_mcp.files import file_lock; "
        "lock = file_lock(pathlib.Path(sys.argv[1])); lock.acquire(); print('held', flush=True); "
        "sys.stdin.read()"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(lock_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        assert not _try(lock_path)
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(60)
    assert _try(lock_path)
