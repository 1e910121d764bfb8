"""An annotated demo target and an identity-folder target, and the audit command run on them (tests of the audit
command and the labelling page; no part of the package)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from facemac.data.demo import DEMO_ATTRIBUTES
from tests.annotate_helpers import make_checkpoint, make_folders
from tests.conftest import compose_cfg

DEMO = dict(target_identities=6, target_images_per_identity=4, celeba_identities=6, celeba_images_per_identity=2,
            workers=1)


@dataclass
class AuditRun:
    base: Path
    annotations: Path   # <annotate run>/annotations
    audit: Path         # <audit run>/audit
    folders_root: Path
    demo_labels: Path


def annotate_demo_and_folders(base: Path, size: int = 48) -> tuple[Path, Path, Path]:
    """(annotations folder, the identity-folder target's root, the demo target's labels.csv): demo_synth_a (generated,
    small) and 'mine' (nested identity folders of random pixels) annotated by a tiny random MAC over the demo's
    attributes, as an annotate run under ``<base>/logs/annotate/runs/r1`` (so ``latest`` finds it)."""
    from facemac.annotation.run import annotate
    from facemac.data.demo import ensure_demo

    ck = make_checkpoint(base / "best.pt", size=size, attributes=list(DEMO_ATTRIBUTES))
    mine = base / "mine"
    make_folders(mine, identities=4, per_identity=4, nested=True, size=112)
    demo = ensure_demo(base / "cache", progress=False, **DEMO)
    demo_overrides = [f"demo.{k}={v}" for k, v in DEMO.items()]
    run = base / "logs" / "annotate" / "runs" / "r1"
    annotate(compose_cfg("annotate", [
        "logger=none", f"ckpt={ck}", f"paths.cache_dir={base / 'cache'}", f"paths.log_dir={base / 'logs'}",
        *demo_overrides, f"+targets.mine={{format: folders, root: {mine}, group: synthetic, geometry: arcface_112}}",
        "annotate.only=[demo_synth_a,mine]", "annotate.amp=off", "annotate.num_workers=0", "annotate.replicas=1",
        "annotate.pixel_check.enabled=false"], run))
    return run / "annotations", mine, Path(demo.targets["demo_synth_a"]) / "labels.csv"


def run_audit(base: Path, annotations: str, out: Path, *extra: str):
    from facemac.audit.run import audit

    return audit(compose_cfg("audit", [f"annotations={annotations}", f"paths.log_dir={base / 'logs'}",
                                       f"paths.cache_dir={base / 'cache'}", *extra], out))
