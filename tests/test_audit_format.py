"""The audit file contract: templates round-trip, fills are read with both codings, bad files are refused by name."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from facemac.audit.format import AuditDesign, read_audit, sidecar_path, write_template
from facemac.errors import DataError

ATTRS = ["Smiling", "Eyeglasses", "Bald"]
PATHS = [f"id{i % 3}/{i}.jpg" for i in range(6)]


def _template(tmp_path, strata=True):
    design = AuditDesign(dataset="d", kind="stratified" if strata else "simple", size=6, seed=1,
                         strata={"a": {"size": 40, "sampled": 4}, "b": {"size": 60, "sampled": 2}} if strata else {},
                         annotation={"num_images": 100, "checkpoint_sha256": "x"})
    return write_template(tmp_path / "d.csv", PATHS, [p.split("/")[0] for p in PATHS], ATTRS,
                          strata=list("aaaabb") if strata else None,
                          stratum_sizes={"a": 40, "b": 60} if strata else None, design=design)


def _fill(path, cells):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    for (r, a), v in cells.items():
        frame.loc[r, a] = v
    frame.to_csv(path, index=False)


def test_template_is_blank_and_refused_until_filled(tmp_path):
    path = _template(tmp_path)
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert list(frame.columns[:5]) == ["path", "identity", "stratum", "stratum_size", "weight"]
    assert (frame[ATTRS] == "").all().all()
    assert frame["weight"].astype(float).tolist() == [10, 10, 10, 10, 30, 30]
    with pytest.raises(DataError, match="unfilled template"):
        read_audit(path, "d", ATTRS + ["Male"], known_paths=PATHS, num_images=100)


def test_partly_filled_audit_keeps_blanks_unjudged(tmp_path):
    path = _template(tmp_path)
    _fill(path, {(0, "Smiling"): "1", (1, "Smiling"): "0", (4, "Bald"): "1"})
    audit = read_audit(path, "d", ATTRS, known_paths=set(PATHS), num_images=100)
    lab, judged = audit.column("Smiling")
    assert judged.tolist() == [True, True, False, False, False, False]
    assert lab[:2].tolist() == [1, 0]
    assert audit.num_judgements == 3
    assert audit.stratum_sizes == {"a": 40, "b": 60}
    assert audit.design is not None and audit.design.kind == "stratified"
    assert audit.identities == ["id0", "id1", "id2", "id0", "id1", "id2"]


def test_plus_minus_one_coding(tmp_path):
    path = _template(tmp_path, strata=False)
    _fill(path, {(0, "Bald"): "-1", (1, "Bald"): "1"})
    audit = read_audit(path, "d", ATTRS)
    lab, judged = audit.column("Bald")
    assert lab[:2].tolist() == [0, 1] and judged.sum() == 2
    assert audit.strata is None and audit.weights is None


@pytest.mark.parametrize("cells, match", [
    ({(0, "Bald"): "-1", (1, "Bald"): "0"}, "one coding per file"),
    ({(0, "Bald"): "yes"}, "not a judgement"),
    ({(0, "Bald"): "2"}, "not a judgement"),
])
def test_bad_cells_are_refused_with_line_and_column(tmp_path, cells, match):
    path = _template(tmp_path)
    _fill(path, cells)
    with pytest.raises(DataError, match=match) as e:
        read_audit(path, "d", ATTRS)
    assert "d.csv" in str(e.value)


def test_unknown_attribute_and_foreign_paths(tmp_path):
    path = _template(tmp_path)
    _fill(path, {(0, "Smiling"): "1"})
    with pytest.raises(DataError, match="neither audit columns"):
        read_audit(path, "d", ["Smiling", "Eyeglasses"])
    with pytest.raises(DataError, match="not a face of the annotation"):
        read_audit(path, "d", ATTRS, known_paths=PATHS[1:])


def test_sidecar_and_strata_must_fit_the_annotation(tmp_path):
    path = _template(tmp_path)
    _fill(path, {(0, "Smiling"): "1"})
    with pytest.raises(DataError, match="drawn from 100"):
        read_audit(path, "d", ATTRS, num_images=90)
    doc = json.loads(sidecar_path(path).read_text())
    doc["format"] = "other"
    sidecar_path(path).write_text(json.dumps(doc))
    with pytest.raises(DataError, match="not a facemac audit sidecar"):
        read_audit(path, "d", ATTRS)
    sidecar_path(path).unlink()
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[1, "stratum_size"] = "41"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match="has sizes 40 and 41"):
        read_audit(path, "d", ATTRS)


def test_duplicate_face_is_refused(tmp_path):
    path = tmp_path / "d.csv"
    pd.DataFrame({"path": ["a.jpg", "a.jpg"], "Smiling": ["1", "0"]}).to_csv(path, index=False)
    with pytest.raises(DataError, match="audited twice"):
        read_audit(path, "d", ATTRS)
    pd.DataFrame({"path": ["a.jpg", "b.jpg"], "Smiling": ["1", ""]}).to_csv(path, index=False)
    audit = read_audit(path, "d", ATTRS)
    assert np.array_equal(audit.judged[:, 0], [True, False])
