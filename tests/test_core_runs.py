"""One rule says whether a stage input (``ckpt=``, ``annotations=``, analysis ``inputs``) is a W&B artifact reference,
after local paths and ``latest`` were tried."""

from __future__ import annotations

import pytest

from facemac.analysis.inputs import resolve_reference
from facemac.annotation.ckpt_ref import resolve_checkpoint
from facemac.errors import ConfigError, DataError
from facemac.runs import artifact_reference

REFERENCES = {
    "mac-demo_tiny-demo_celeba:best": "mac-demo_tiny-demo_celeba:best",
    "facemac/annotations-ds_a:v3": "facemac/annotations-ds_a:v3",
    "me/facemac/divergence:demo-2026-01-01_10-00-00": "me/facemac/divergence:demo-2026-01-01_10-00-00",
    "wandb:me/facemac/mac:latest": "me/facemac/mac:latest",
    "wandb:any/thing/at/all:v1": "any/thing/at/all:v1",  # explicit: W&B says whether it exists
}
NOT_REFERENCES = ["outputs/train/runs/2026/x/best.pt", "runs/a/b/c:v1", "mac:best.pt", "table:v1.parquet",
                  "no_colon", "name:", ":alias", "has space:v1", "C:\\data\\best.pt", "wandb:", "latest"]


@pytest.mark.parametrize("ref, name", REFERENCES.items())
def test_artifact_references_are_recognised_with_or_without_the_wandb_prefix(ref, name):
    assert artifact_reference(ref) == name


@pytest.mark.parametrize("ref", NOT_REFERENCES)
def test_paths_and_other_strings_are_not_artifact_references(ref):
    assert artifact_reference(ref) is None


class _Recorder:
    """A tracker that records which reference it was asked to download."""

    def __init__(self, folder):
        self.folder, self.asked = folder, []

    def use_artifact(self, ref, type=None):
        self.asked.append(ref)
        return self.folder


@pytest.mark.parametrize("ref", ["me/facemac/mac-x:v3", "wandb:me/facemac/mac-x:v3", "runs/a/b/c:v1"])
def test_checkpoints_and_analysis_inputs_follow_the_same_rule(ref, tmp_path):
    (tmp_path / "best.pt").write_bytes(b"")
    ckpt_tracker, input_tracker = _Recorder(tmp_path), _Recorder(tmp_path)
    expected = artifact_reference(ref)
    if expected is None:
        with pytest.raises(ConfigError, match="no such file"):
            resolve_checkpoint(ref, tmp_path / "logs", ckpt_tracker)
        with pytest.raises(DataError, match="neither 'latest' nor a W&B artifact reference"):
            resolve_reference(ref, str(tmp_path / "logs"), input_tracker)
    else:
        assert resolve_checkpoint(ref, tmp_path / "logs", ckpt_tracker)[0] == tmp_path / "best.pt"
        assert resolve_reference(ref, str(tmp_path / "logs"), input_tracker) == tmp_path
    assert ckpt_tracker.asked == input_tracker.asked == ([expected] if expected else [])
