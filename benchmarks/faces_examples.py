"""The faces behind the numbers, timed: the analysis' strips and gallery pages on a finished annotate run (picks,
crop redraws, strips, pages), and the streamed pick pass on a large synthetic table against the plain read of the
same columns (the analysis' counting reader), as a ratio.

    python benchmarks/faces_examples.py --annotations <pipeline run>/annotate/annotations
    python benchmarks/faces_examples.py --rows 1000000 --attributes 40
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def on_annotations(folder: Path, per_row: int, gallery_per_attribute: int, size: int) -> dict:
    import pandas as pd

    import facemac.analysis.examples as ex
    from facemac.analysis.inputs import expand_path
    from facemac.faces import load_crops
    from facemac.faces.picks import pick_faces
    from facemac.settings.analyze import ExamplesSettings

    datasets = expand_path(folder)
    for d in datasets:
        d.use_label_rule("counting")
    attributes = datasets[0].attributes
    drivers = attributes[:6]
    s = ExamplesSettings(per_row=per_row, gallery_per_attribute=gallery_per_attribute, size=size)
    t = time.perf_counter()
    for d in datasets:
        pick_faces(d.files, {a: d.thresholds[a] for a in attributes}, max(2 * per_row, gallery_per_attribute))
    picks_s = time.perf_counter() - t
    calls = []

    def timed(*a, **k):
        t0 = time.perf_counter()
        out = load_crops(*a, **k)
        calls.append((time.perf_counter() - t0, len(out)))
        return out

    with tempfile.TemporaryDirectory() as tmp:
        rates = pd.DataFrame(columns=["dataset", "attribute", "rate"])
        t = time.perf_counter()
        out = ex.write_examples(Path(tmp), datasets, drivers, attributes, rates, s, loader=timed)
        total = time.perf_counter() - t
        size_mb = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file()) / 2**20
    crops_s, faces = sum(c for c, _ in calls), sum(n for _, n in calls)
    fig = {"datasets": len(datasets), "rows": sum(int(d.details["num_images"]) for d in datasets),
           "attributes": len(attributes), "strips": len(out.strips), "galleries": len(out.galleries),
           "total_s": round(total, 2), "picks_s": round(picks_s, 2), "crops_s": round(crops_s, 2),
           "faces_redrawn": faces, "faces_per_s": round(faces / crops_s, 1) if crops_s else None,
           "drawing_and_pages_s": round(total - picks_s - crops_s, 2), "output_mb": round(size_mb, 1)}
    print(f"{fig['datasets']} datasets, {fig['rows']} rows, {fig['attributes']} attributes: {fig['strips']} strips + "
          f"{fig['galleries']} gallery pages in {fig['total_s']} s (picks {fig['picks_s']} s, {faces} crops redrawn "
          f"in {fig['crops_s']} s, drawing + pages {fig['drawing_and_pages_s']} s), {fig['output_mb']} MB written")
    return fig


def on_synthetic(rows: int, attributes: int, parts: int) -> dict:
    from facemac.analysis.readers import iter_parquet_batches
    from facemac.faces.picks import pick_faces
    from tests.annotation_fixtures import write_annotation_dir

    names = [f"a{j}" for j in range(attributes)]
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        per = rows // parts
        d = write_annotation_dir(Path(tmp) / "t", "t", "real", names,
                                 [(rng.random((per, attributes), dtype=np.float32), None) for _ in range(parts)])
        files = sorted(d.glob("part-*.parquet"))
        t = time.perf_counter()
        for _ in iter_parquet_batches(files, names, 65536, None):
            pass
        read_s = time.perf_counter() - t
        t = time.perf_counter()
        pick_faces(files, {a: 0.5 for a in names}, per_kind=16)
        pick_s = time.perf_counter() - t
    fig = {"rows": per * parts, "attributes": attributes, "read_s": round(read_s, 2), "pick_s": round(pick_s, 2),
           "pick_rows_per_s": round(per * parts / pick_s), "pick_over_read": round(pick_s / read_s, 2)}
    print(f"{fig['rows']} rows x {attributes} attributes: the pick pass (4 kinds x 16 faces per attribute) "
          f"{pick_s:.2f} s = {fig['pick_rows_per_s']:,} rows/s, {fig['pick_over_read']}x the plain read of the same "
          f"columns ({read_s:.2f} s)")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--annotations", type=Path, help="a folder of annotation dirs (a finished annotate run's)")
    ap.add_argument("--per-row", type=int, default=8)
    ap.add_argument("--gallery-per-attribute", type=int, default=8)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--rows", type=int, default=0, help="synthetic table rows for the pick pass (0 = skip)")
    ap.add_argument("--attributes", type=int, default=40)
    ap.add_argument("--parts", type=int, default=8)
    a = ap.parse_args()
    figures = {}
    if a.annotations:
        figures["annotations"] = on_annotations(a.annotations, a.per_row, a.gallery_per_attribute, a.size)
    if a.rows:
        figures["synthetic"] = on_synthetic(a.rows, a.attributes, a.parts)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
