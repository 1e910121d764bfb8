"""The analysis and audit stages never import torch (issue #20's 1 GiB goal: importing the CUDA build of torch alone
costs ~650 MB RSS, and neither stage runs a model). Checked in fresh interpreters, where nothing else imported it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.faces_fixtures import write_face_folders, write_faces_table

REPO = Path(__file__).resolve().parents[1]
MODULES = ("facemac.analysis.run", "facemac.stage", "facemac.cli.analyze", "facemac.audit.run", "facemac.cli.audit",
           "facemac.faces", "facemac.distributed", "facemac.resources", "facemac.hardware")


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_importing_the_analysis_and_audit_stages_leaves_torch_unimported():
    code = (f"import importlib, sys\nfor m in {MODULES!r}: importlib.import_module(m)\n"
            "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=_env(), capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _imported(stderr: str) -> set[str]:
    """Top-level packages a ``python -X importtime`` run imported (one line per module on stderr)."""
    return {line.rsplit("|", 1)[1].strip().split(".")[0] for line in stderr.splitlines()
            if line.startswith("import time:") and "|" in line}


def _run(*args: str) -> set[str]:
    """Run a command under ``python -X importtime``; the top-level packages it imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *args], cwd=REPO, env=_env(), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _imported(proc.stderr)


def test_analysis_and_audit_runs_drawing_faces_import_no_torch(tmp_path):
    """``python analyze.py`` end to end (strips and galleries redrawn from the images, W&B offline) and ``python -m
    facemac.audit`` (faces redrawn for the page): still no torch; the runs did draw faces (so the crop reader ran)."""
    rng = np.random.default_rng(0)
    attrs, thr = ["Smiling", "Goatee"], {"Smiling": 0.5, "Goatee": 0.4}
    ann = tmp_path / "annotations"
    for k, (name, group) in enumerate((("real_x", "real"), ("synth_y", "synthetic"))):
        root = tmp_path / "images" / name
        keys = write_face_folders(root, identities=3, images=4, seed=k)
        write_faces_table(ann / name, root, name, group, attrs, rng.random((len(keys), 2)), thr)
    out = tmp_path / "run"
    imported = _run("analyze.py", f"annotations={ann}", "logger=wandb", "logger.mode=offline", "analyze.n_boot=0",
                    "analyze.examples.attributes=1", "analyze.examples.per_row=2", "analyze.examples.size=48",
                    f"hydra.run.dir={out}")
    assert {"facemac", "cv2", "wandb"} <= imported  # the check sees the run's imports: faces redrawn, W&B used
    assert "torch" not in imported and "torchvision" not in imported
    assert (out / "DONE").exists() and list((out / "figures").glob("*.png"))
    assert list((out / "wandb").glob("offline-run-*"))
    audit = tmp_path / "audit_run"
    imported = _run("-m", "facemac.audit", f"annotations={ann}", "audit.size=4", "audit.rare_attributes=1",
                    f"hydra.run.dir={audit}")
    assert "cv2" in imported and "torch" not in imported and "torchvision" not in imported
    assert (audit / "DONE").exists() and list(audit.glob("audit/*_faces/*"))
