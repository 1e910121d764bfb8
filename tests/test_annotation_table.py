"""The annotation-table contract: the fixture writer and the annotate stage's writer (shard commit + finalize, no model)
produce tables the analysis reads identically, so a change to either writer is caught without the slow runs."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from tests.annotation_fixtures import write_annotation_dir
from facemac.analysis.inputs import expand_path
from facemac.annotation.run import TargetResult, _commit, _finalize
from facemac.annotation.shards import ShardStore
from facemac.annotation.targets import TargetSpec
from facemac.annotation_table import (FAILURES, MANIFEST, REQUIRED_KEYS, build_part, part_schema, threshold_fields,
                                      verify_table, write_part)
from facemac.data.preprocess import Preprocessor
from facemac.errors import DataError

ATTRS = ["Male", "Young", "Smiling"]
THRESHOLDS = {"Male": 0.5, "Young": 0.3, "Smiling": 0.7}
COUNTING = {"Male": 0.45, "Young": 0.4, "Smiling": 0.6}  # the set the labels use (threshold_fields)
SHA = "ab" * 32
# Manifest fields a reader relies on or reports; root and checkpoint name where the files came from.
SHARED_FIELDS = ("format", "version", "dataset", "group", "source_format", "checkpoint_sha256", "attributes",
                 "thresholds", "num_images", "num_failures", "complete", "mc_samples", "label_rule",
                 "label_thresholds", "counting_thresholds", "counting_rule")


class _Table:
    """The FaceTable fields the annotate stage's commit and finalize read."""

    def __init__(self, keys: list[str], identities: list[str | None]):
        self.keys, self.identities, self.geometry = keys, identities, "arcface_112"

    def __len__(self) -> int:
        return len(self.keys)


def _data(with_reliability: bool):
    rng = np.random.default_rng(7)
    parts = [(rng.random((6, 3), dtype=np.float32), ["a", "b", "b", None, "c", "a"]),
             (rng.random((4, 3), dtype=np.float32), [None, "d", "d", "a"])]
    rel = [rng.random((len(p), 3), dtype=np.float32) for p, _ in parts] if with_reliability else None
    return parts, rel


def _annotate_stage_dir(out: Path, parts, rel) -> Path:
    """What annotate_target leaves behind, minus the model: one committed shard per part, then the finalize step."""
    keys = [f"ds/{i:08d}.jpg" for i in range(sum(len(p) for p, _ in parts))]
    table = _Table(keys, [i for _, ids in parts for i in ids])
    annotator = SimpleNamespace(attributes=ATTRS, thresholds=[THRESHOLDS[a] for a in ATTRS],
                                counting_thresholds=[COUNTING[a] for a in ATTRS], counting_rule="accuracy",
                                label_thresholds=[COUNTING[a] for a in ATTRS], mc_samples=8 if rel is not None else 0,
                                validation=None, preprocessor=Preprocessor("arcface", 112))
    acfg = SimpleNamespace(max_failure_fraction=0.05, mc_samples=annotator.mc_samples, shard_size=6)
    store = ShardStore(out)
    store.prepare()
    shards, start = [], 0
    for k, (probs, _) in enumerate(parts):
        bounds = (start, start + len(probs))
        _commit(store, table, annotator, k, bounds, [np.arange(*bounds)], [torch.from_numpy(probs)],
                [torch.from_numpy(rel[k])] if rel is not None else [], [])
        shards.append(bounds)
        start = bounds[1]
    spec = TargetSpec(name="ds", group="synthetic", format="folders", root=str(out))
    _finalize(spec, table, annotator, store, shards, acfg, {"checkpoint": "m.pt", "checkpoint_sha256": SHA},
              TargetResult("ds", "synthetic", out))
    return out


@pytest.mark.parametrize("with_reliability", [False, True], ids=["plain", "mc_dropout"])
def test_fixture_and_annotate_writer_tables_read_the_same(tmp_path, with_reliability):
    parts, rel = _data(with_reliability)
    fixture = write_annotation_dir(tmp_path / "fixture", "ds", "synthetic", ATTRS, parts, thresholds=THRESHOLDS,
                                   reliability=rel, checkpoint_sha256=SHA,
                                   extra=threshold_fields(ATTRS, [COUNTING[a] for a in ATTRS], "accuracy"))
    stage = _annotate_stage_dir(tmp_path / "stage", parts, rel)

    (m_fix, files_fix), (m_stage, files_stage) = verify_table(fixture), verify_table(stage)
    assert set(REQUIRED_KEYS) <= set(m_fix) and set(m_fix) <= set(m_stage)  # the stage may add extras, never lack one
    assert {k: m_fix[k] for k in SHARED_FIELDS} == {k: m_stage[k] for k in SHARED_FIELDS}
    assert [(p["file"], p["rows"]) for p in m_fix["parts"]] == [(p["file"], p["rows"]) for p in m_stage["parts"]]
    assert [f.name for f in files_fix] == [f.name for f in files_stage] == ["part-00000.parquet", "part-00001.parquet"]
    assert (fixture / FAILURES).read_text() == (stage / FAILURES).read_text() == "path,reason\n"

    expected_schema = part_schema(ATTRS, with_reliability)
    for a, b in zip(files_fix, files_stage):
        ta, tb = pq.read_table(a), pq.read_table(b)
        assert ta.schema.equals(expected_schema) and tb.schema.equals(expected_schema)
        assert ta.equals(tb)

    (d_fix,), (d_stage,) = expand_path(fixture), expand_path(stage)
    for d in (d_fix, d_stage):
        assert (d.name, d.group, d.kind, d.attributes, d.thresholds) == ("ds", "synthetic", "annotations", ATTRS,
                                                                         COUNTING)  # labels use the counting set
    skip = {"root", "checkpoint"}
    assert {k: v for k, v in d_fix.details.items() if k not in skip} == \
           {k: v for k, v in d_stage.details.items() if k not in skip}
    assert d_fix.details["has_reliability"] is with_reliability
    for min_rel in (None, 0.5):
        got = [list(d.batches(ATTRS, batch_size=4, min_reliability=min_rel)) for d in (d_fix, d_stage)]
        assert len(got[0]) == len(got[1]) == 3  # batches of 4 within each part: 4 + 2, then 4
        for x, y in zip(*got):
            for field in ("values", "valid", "identity_codes", "identity_names", "dropped"):
                np.testing.assert_array_equal(getattr(x, field), getattr(y, field), err_msg=field)
        if with_reliability and min_rel is not None:
            assert sum(int(b.dropped.sum()) for b in got[0]) > 0  # the filter really read the reliability columns


def test_a_part_whose_attribute_columns_are_not_probabilities_is_refused(tmp_path):
    parts, _ = _data(False)
    d = write_annotation_dir(tmp_path / "t", "t", "real", ATTRS, parts)
    assert (d / MANIFEST).is_file() and verify_table(d)
    table = pq.read_table(d / "part-00000.parquet")
    as_int = table.set_column(2, "Male", pa.array(np.zeros(table.num_rows, np.int32)))
    write_part(as_int, d / "part-00000.parquet")
    with pytest.raises(DataError, match=r"part-00000.parquet: attribute columns \['Male'\] are not probabilities"):
        verify_table(d, check_sha=False)


def test_build_part_refuses_arrays_that_disagree():
    with pytest.raises(ValueError, match="disagree"):
        build_part(["a", "b"], ["x"], np.zeros((2, 3)), ATTRS)
    with pytest.raises(ValueError, match="reliability"):
        build_part(["a"], ["x"], np.zeros((1, 3)), ATTRS, reliability=np.zeros((1, 2)))


def test_resume_hints_name_the_smallest_accepting_limit_and_the_pipeline_folder(tmp_path):
    from facemac.annotation_resume import resume_command, suggested_limit

    for failures, listed in ((9, 102), (180, 1000), (1, 3), (0, 5), (7, 7), (5, 100)):
        limit = suggested_limit(failures, listed)
        assert failures <= limit * listed and (limit == 0 or failures > (limit - 0.01) * listed), (failures, listed)
    table = tmp_path / "exp" / "annotate" / "annotations" / "syn_gan"
    table.mkdir(parents=True)
    (tmp_path / "exp" / "pipeline.json").write_text("{}")
    assert resume_command(table, ["annotate.max_failure_fraction=0.2"]) == \
        f"re-run the pipeline with --dir {tmp_path / 'exp'} annotate.max_failure_fraction=0.2"
