"""FileSource.read: every byte of every file, whatever the size or how the kernel splits the read."""

import os

import pytest

from facemac.data import sources
from facemac.data.sources import FileSource

SIZES = (0, 1, 4095, 4096, 4097, 200_003, 5_000_011)


@pytest.fixture
def tree(tmp_path):
    rng = __import__("random").Random(0)
    (tmp_path / "a").mkdir()
    for n in SIZES:
        (tmp_path / "a" / f"{n}.bin").write_bytes(rng.randbytes(n))
    return tmp_path


def test_reads_equal_the_files_bytes(tree):
    src = FileSource(tree)
    for n in SIZES:
        assert src.read(f"a/{n}.bin") == (tree / "a" / f"{n}.bin").read_bytes()


def test_short_reads_and_a_file_that_grew_are_read_to_the_end(tree, monkeypatch):
    src = FileSource(tree)
    real_read = os.read
    monkeypatch.setattr(sources.os, "read", lambda fd, n: real_read(fd, min(n, 1000)))  # an NFS-like kernel
    for n in SIZES:
        assert src.read(f"a/{n}.bin") == (tree / "a" / f"{n}.bin").read_bytes()
    monkeypatch.setattr(sources.os, "read", real_read)
    real_fstat = os.fstat
    monkeypatch.setattr(sources.os, "fstat", lambda fd: os.stat_result((*real_fstat(fd)[:6], 10, *real_fstat(fd)[7:])))
    assert src.read("a/200003.bin") == (tree / "a" / "200003.bin").read_bytes()  # fstat said 10 bytes: it grew


def test_missing_files_and_folders_raise_oserror_like_open(tree):
    src = FileSource(tree)
    with pytest.raises(FileNotFoundError):
        src.read("a/nope.jpg")
    with pytest.raises(OSError):
        src.read("a")
