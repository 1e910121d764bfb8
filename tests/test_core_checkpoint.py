"""Checkpoints: atomic writes, weights_only loads, and a crafted pickle never runs."""

from pathlib import Path

import pytest
import torch

from facemac.errors import CheckpointError
from facemac.checkpoint import load_checkpoint, save_checkpoint
from facemac.hashing import file_sha256


def _payload():
    return {"model_state": {"w": torch.ones(2)}, "attributes": ["Male"], "thresholds": [0.5],
            "model_cfg": {"timm_name": "resnet18"}, "data_cfg": {"input_size": [3, 64, 64]}, "epoch": 1}


def test_roundtrip_with_weights_only(tmp_path):
    path = save_checkpoint(_payload(), tmp_path / "c" / "best.pt")
    raw = torch.load(path, weights_only=True)
    assert raw["attributes"] == ["Male"] and torch.equal(raw["model_state"]["w"], torch.ones(2))
    assert load_checkpoint(path)["epoch"] == 1
    assert [p.name for p in path.parent.iterdir()] == ["best.pt"]  # no temp file left behind


def test_failed_write_leaves_previous_file_intact(tmp_path, monkeypatch):
    path = save_checkpoint(_payload(), tmp_path / "last.pt")
    before = file_sha256(path)

    def boom(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(_payload() | {"epoch": 2}, path)
    assert file_sha256(path) == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class _Evil:
    def __reduce__(self):
        return (Path.touch, (Path(self.target),))


def test_crafted_pickle_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    evil = _Evil()
    evil.target = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"format": "facemac-mac", "payload": evil}, path)
    with pytest.raises(CheckpointError, match="could run code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_truncated_and_foreign_files(tmp_path):
    path = save_checkpoint(_payload(), tmp_path / "best.pt")
    data = path.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(tmp_path / "trunc.pt")
    torch.save({"state_dict": {}}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a facemac"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
