"""Inputs labelled by different MACs are refused unless asked for, and attributes an input lacks are named (#22 item 2:
`analyze.py inputs=[<annotations by MAC A>, <annotations by MAC B>]` with 24 and 3 attributes exited 0, 21 attributes
dropped without a log line and no word that two classifiers were mixed)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.annotation_fixtures import write_annotation_dir
from facemac.analysis.run import run
from facemac.attributes import CELEBA_ATTRIBUTES
from facemac.errors import ConfigError

SHA_A, SHA_B = "a1" * 32, "b2" * 32
NARROW = ["Male", "Smiling", "Young"]  # MAC B's 3 ...
WIDE = NARROW + [a for a in CELEBA_ATTRIBUTES if a not in NARROW][:21]  # ... all among MAC A's 24


def _table(root, name, group, attributes, sha, seed):
    rng = np.random.default_rng(seed)
    probs = rng.random((40, len(attributes))).astype(np.float32)
    return write_annotation_dir(root / name, name, group, attributes, [(probs, [f"{name}{i % 8}" for i in range(40)])],
                                checkpoint_sha256=sha)


@pytest.fixture
def mixed(tmp_path):
    return (_table(tmp_path, "real_a", "real", WIDE, SHA_A, 0), _table(tmp_path, "synth_b", "synthetic", NARROW, SHA_B, 1))


def test_inputs_from_two_macs_are_refused_naming_both_checkpoints_and_the_key(make_cfg, mixed):
    cfg = make_cfg("analyze", ["logger=none", f"inputs=[{mixed[0]},{mixed[1]}]", "analyze.n_boot=0"])
    with pytest.raises(ConfigError) as e:
        run(cfg)
    msg = str(e.value)
    assert "\n" not in msg and "2 different MACs" in msg
    assert f"checkpoint sha256 {SHA_A[:16]}… labelled real_a" in msg and f"{SHA_B[:16]}… labelled synth_b" in msg
    assert "analyze.allow_mixed_checkpoints=true" in msg


def test_with_the_opt_in_the_log_and_report_say_what_was_mixed_and_dropped(make_cfg, mixed, caplog):
    caplog.set_level("WARNING")
    cfg = make_cfg("analyze", ["logger=none", f"inputs=[{mixed[0]},{mixed[1]}]", "analyze.n_boot=0",
                               "analyze.allow_mixed_checkpoints=true"])
    res = run(cfg)
    assert res["attributes"] == NARROW
    dropped = [a for a in WIDE if a not in NARROW]
    assert len(dropped) == 21
    line = next(r.getMessage() for r in caplog.records if "left out because an input lacks them" in r.getMessage())
    assert line == f"21 attribute(s) left out because an input lacks them: not in synth_b: {', '.join(dropped)}"
    assert any("comparing datasets labelled by 2 different MACs" in r.getMessage() for r in caplog.records)
    report = (res["output_dir"] / "report.md").read_text()
    assert "**The inputs were labelled by 2 different MACs**" in report and SHA_B[:16] in report
    assert f"21 left out because an input lacks them (not in synth_b: {', '.join(dropped)})" in report
    assert set(pd.read_csv(res["output_dir"] / "rates.csv").attribute) == set(NARROW)


def test_one_mac_passes_and_a_shared_attribute_set_logs_nothing(make_cfg, tmp_path, caplog):
    caplog.set_level("WARNING")
    a = _table(tmp_path, "real_a", "real", NARROW, SHA_A, 0)
    b = _table(tmp_path, "synth_b", "synthetic", NARROW, SHA_A, 1)
    res = run(make_cfg("analyze", ["logger=none", f"inputs=[{a},{b}]", "analyze.n_boot=0"]))
    assert res["settings"]["mixed_checkpoints"] is None and res["settings"]["dropped_attributes"] == {}
    assert not any("left out" in r.getMessage() or "different MACs" in r.getMessage() for r in caplog.records)
    assert "different MACs" not in (res["output_dir"] / "report.md").read_text()
