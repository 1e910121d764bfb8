"""One lock-then-rename rule for folders built once and shared (the demo data, decoded caches): a build lands whole or
not at all, replaces an outdated folder only when complete, and what a killed builder left is cleaned up."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from facemac.atomic import LOCKS, build_folder_once


def _marked(folder) -> bool:
    return (folder / "done").is_file()


def _writes(text: str):
    def build(tmp):
        (tmp / "data").write_text(text)
        (tmp / "done").write_text("")
    return build


def test_a_folder_is_built_once_then_reused(tmp_path):
    final = tmp_path / "cache" / "x"
    assert build_folder_once(final, _marked, _writes("one"), "test data") is True
    assert build_folder_once(final, _marked, _writes("two"), "test data") is False  # current: not rebuilt
    assert (final / "data").read_text() == "one"
    assert sorted(p.name for p in final.parent.iterdir()) == [LOCKS, "x"]


def test_a_failed_build_leaves_the_outdated_folder_and_no_temporary_one(tmp_path):
    final = tmp_path / "x"
    final.mkdir()
    (final / "data").write_text("old")  # outdated: no done marker

    def dies(tmp):
        (tmp / "data").write_text("half")
        raise KeyboardInterrupt("killed mid-build")

    with pytest.raises(KeyboardInterrupt):
        build_folder_once(final, _marked, dies, "test data")
    assert (final / "data").read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == [LOCKS, "x"]
    assert build_folder_once(final, _marked, _writes("new"), "test data")  # the outdated folder is replaced whole
    assert (final / "data").read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == [LOCKS, "x"]


def test_temporary_folders_of_dead_builders_on_this_host_go_and_live_ones_stay(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    host = socket.gethostname()
    left_by_dead = tmp_path / f".tmp-x-{host}-{int(dead.stdout)}-abcd1234"
    in_progress = tmp_path / f".tmp-x-{host}-{os.getpid()}-live0000"  # this process is alive
    other_host = tmp_path / ".tmp-x-another-host-1-abcd1234"
    for folder in (left_by_dead, in_progress, other_host):
        folder.mkdir()
    build_folder_once(tmp_path / "x", _marked, _writes("one"), "test data")
    assert not left_by_dead.exists() and in_progress.exists() and other_host.exists()


def test_a_lock_file_of_its_own_can_be_named(tmp_path):
    build_folder_once(tmp_path / "x", _marked, _writes("one"), "test data", lock_file=tmp_path / ".x.lock")
    assert sorted(p.name for p in tmp_path.iterdir()) == [".x.lock", "x"]
