"""The faces behind the divergence: ``figures/examples_<attribute>.png`` for the report's driver attributes and a
gallery page per annotated dataset, drawn from the annotation tables the analysis read, after the MAC's alignment
(facemac.faces.crops.load_crops). Bounded by ``analyze.examples.*``; a dataset whose images are out of reach gets a
one-line note, never a failed analysis."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np
import pandas as pd

from facemac.analysis.inputs import DatasetInput
from facemac.analysis.logged import strip_file
from facemac.errors import ConfigError, FacemacError
from facemac.faces.gallery import GalleryDataset, write_gallery
from facemac.faces.picks import KINDS, AttributePicks, pick_faces
from facemac.faces.strips import DatasetStrip, StripRow, draw_strips
from facemac.settings.analyze import ExamplesSettings

log = logging.getLogger(__name__)

STRIP_KINDS = ("top", "low_positive", "near")  # the rows of a strip, in order
CropLoader = Callable[..., list]  # load_crops(table_dir, paths, size, root) -> [uint8 HxWx3 | None]


@dataclass
class ExampleOutputs:
    """What was drawn: strips per attribute, gallery pages per dataset, notes for the report, the time it took."""

    strips: dict[str, Path] = field(default_factory=dict)
    galleries: dict[str, Path] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def report_lines(self, output_dir: Path) -> list[str]:
        """The report's section (empty when nothing was drawn and nothing is to be said)."""
        if not self.strips and not self.galleries and not self.notes:
            return []
        lines = ["## The faces behind the numbers", ""]
        if self.strips:
            lines += ["For the attributes driving the real/synthetic divergence, per dataset: the MAC's most "
                      "confident positives, its least confident positives and the faces nearest the threshold, each "
                      "with its probability (green: counted as positive, red: not), as the MAC saw them (after its "
                      "alignment). Look before trusting a driver: does the attribute mean the same thing on each "
                      "dataset?", ""]
            for attr, path in self.strips.items():
                rel = path.relative_to(output_dir).as_posix()
                lines += [f"### {attr}", "", f"![faces behind {attr}]({rel})", ""]
                if self.galleries:
                    lines += ["More faces: " + " · ".join(
                        f"[{name}]({p.relative_to(output_dir).as_posix()}#{quote(attr)})"
                        for name, p in self.galleries.items()), ""]
        if self.galleries:
            lines += ["Every attribute, faces sorted by the MAC's probability with the threshold marked (offline "
                      "pages; open them in a browser): "
                      + ", ".join(f"[{name}]({p.relative_to(output_dir).as_posix()})"
                                  for name, p in self.galleries.items()), ""]
        lines += [f"- {n}" for n in self.notes] + ([""] if self.notes else [])
        return lines

    def file_lines(self) -> list[str]:
        out = []
        if self.strips:
            out.append("- `figures/examples_<attribute>.png`: faces behind each driver attribute, per dataset")
        if self.galleries:
            out.append("- `gallery/<dataset>.html` (+ `gallery/<dataset>/`, `gallery/assets/`): browse every "
                       "attribute's faces by probability")
        return out


def pair_drivers(p: str, q: str, kl_attr: pd.DataFrame, top_k: int) -> list[str]:
    """The attributes driving a pair's divergence, as report.md's driver table lists them: the ``top_k`` largest
    KL(p‖q) + KL(q‖p) (tests/test_faces_examples.py checks the two agree)."""
    a = kl_attr[(kl_attr.p == p) & (kl_attr.q == q)].set_index("attribute")["kl"]
    b = kl_attr[(kl_attr.p == q) & (kl_attr.q == p)].set_index("attribute")["kl"].reindex(a.index)
    return [str(x) for x in (a + b).sort_values(ascending=False).index[:top_k]]


def driver_attributes(kl_attr: pd.DataFrame, pairs: Sequence[tuple[str, str]], limit: int,
                      available: Sequence[str]) -> list[str]:
    """The report's driver attributes of every pair (pair_drivers), taken in turn from each pair's list (its first
    driver, then every pair's second, …), so every pair gets its strongest drivers shown; at most ``limit``."""
    lists = [[a for a in pair_drivers(p, q, kl_attr, len(available)) if a in available] for p, q in pairs]
    out: list[str] = []
    for rank in range(max((len(x) for x in lists), default=0)):
        for x in lists:
            if rank < len(x) and x[rank] not in out and len(out) < limit:
                out.append(x[rank])
    return out


def _loader() -> CropLoader:
    from facemac.faces.crops import load_crops

    return load_crops


def _root(d: DatasetInput, s: ExamplesSettings) -> Path | None:
    root = (s.roots or {}).get(d.name) or d.details.get("root")
    return Path(root) if root else None


def write_examples(output_dir: Path, datasets: Sequence[DatasetInput], drivers: Sequence[str], attributes: list[str],
                   rates: pd.DataFrame, s: ExamplesSettings, loader: CropLoader | None = None) -> ExampleOutputs:
    """Strips for ``drivers`` and (``s.gallery``) a gallery page per annotated dataset; see the module docstring."""
    out = ExampleOutputs()
    t0 = time.perf_counter()
    if not s.enabled:
        return out
    unknown = sorted(set(s.roots or {}) - {d.name for d in datasets})
    if unknown:
        raise ConfigError(f"analyze.examples.roots: {unknown} are not datasets of this analysis; known: "
                          f"{sorted(d.name for d in datasets)}")
    order = {"real": 0, "synthetic": 1}
    annotated = sorted((d for d in datasets if d.is_prediction), key=lambda d: order.get(str(d.group), 2))  # real first
    if not annotated or (not drivers and not s.gallery):
        return out
    loader = loader or _loader()
    rate = {(r.dataset, r.attribute): float(r.rate) for r in rates.itertuples()}
    per_kind = max(2 * s.per_row if drivers else 0, s.gallery_per_attribute if s.gallery else 0)
    strips: dict[str, list[DatasetStrip]] = {a: [] for a in drivers}
    for d in annotated:
        title = f"{d.name} ({d.group})"
        root = _root(d, s)
        if root is None or not root.exists():
            note = (f"{d.name}: no faces shown, its images are not at {root} (the annotation's root); "
                    f"set analyze.examples.roots={{{d.name}: <folder>}} where they are now")
            out.notes.append(note)
            for a in drivers:
                strips[a].append(DatasetStrip(title, note=f"images not found at {root}"))
            continue
        wanted = list(drivers) + ([a for a in attributes if a not in drivers] if s.gallery else [])
        picks = pick_faces(d.files, {a: d.thresholds.get(a, 0.5) for a in wanted}, per_kind)
        paths = sorted({p.path for a in wanted for k in KINDS for p in _shown(picks[a], k, a in drivers, s)})
        try:
            crops = dict(zip(paths, loader(d.path, paths, size=s.size, root=root)))
        except (FacemacError, OSError) as e:  # e.g. a manifest and checkpoint that no longer say how it was cropped
            note = f"{d.name}: no faces shown ({e})"
            out.notes.append(note)
            for a in drivers:
                strips[a].append(DatasetStrip(title, note="faces cannot be redrawn (see report.md)"))
            continue
        unreadable = sum(c is None for c in crops.values())
        if paths and unreadable == len(paths):
            out.notes.append(f"{d.name}: none of the {len(paths)} faces picked could be read under {root}; "
                             "no faces shown")
        elif unreadable:
            out.notes.append(f"{d.name}: {unreadable} of {len(paths)} faces picked could not be read (skipped)")
        for a in drivers:
            strips[a].append(_block(title, picks[a], crops, s.per_row, rate.get((d.name, a))))
        if s.gallery and unreadable < len(paths):
            out.galleries[d.name] = write_gallery(
                output_dir / "gallery", GalleryDataset(name=d.name, group=str(d.group), attributes=attributes,
                                                       picks={a: picks[a] for a in attributes},
                                                       rates={a: rate.get((d.name, a)) for a in attributes},
                                                       label_rule=str(d.details.get("label_thresholds") or "")),
                crops, s.gallery_per_attribute)
    for a in drivers:
        if any(b.rows for b in strips[a]):
            thr = sorted({round(d.thresholds.get(a, 0.5), 3) for d in annotated})
            out.strips[a] = draw_strips(output_dir / "figures" / strip_file(a), f"{a}: the faces behind the counts",
                                        f"label: probability > threshold ({', '.join(f'{t:.3f}' for t in thr)})",
                                        strips[a], s.per_row, s.size)
    out.seconds = time.perf_counter() - t0
    log.info("examples: %d strips, %d gallery pages in %.1f s%s", len(out.strips), len(out.galleries), out.seconds,
             "".join(f"; {n}" for n in out.notes))
    return out


def _shown(ap: AttributePicks, kind: str, is_driver: bool, s: ExamplesSettings) -> list:
    """The picks whose crops are needed: a strip's candidates (twice a row, to replace unreadable faces) and the
    gallery's."""
    n = max(2 * s.per_row if is_driver and kind in STRIP_KINDS else 0, s.gallery_per_attribute if s.gallery else 0)
    return ap.kinds.get(kind, [])[:n]


def _block(title: str, ap: AttributePicks, crops: dict[str, np.ndarray | None], per_row: int,
           rate: float | None) -> DatasetStrip:
    """One dataset's rows of a strip: the first ``per_row`` readable faces of each kind."""
    rows, shown = [], set()
    for kind in STRIP_KINDS:
        readable = [p for p in ap.kinds.get(kind, []) if crops.get(p.path) is not None
                    and (kind == "near" or p.path not in shown)][:per_row]  # few positives: not shown twice
        shown.update(p.path for p in readable)
        if kind == "near":  # highest first, so the row reads across the threshold
            readable.sort(key=lambda p: -p.probability)
        label = KINDS[kind] if kind != "near" else f"near the threshold ({ap.threshold:.3f})"
        empty = "every positive is in the row above" if kind == "low_positive" and ap.kinds.get(kind) else \
            ("no positive" if kind != "near" else "none")
        rows.append(StripRow(label, [crops[p.path] for p in readable], [p.probability for p in readable],
                             ap.threshold, empty))
    head = f"{title}, rate {rate:.3f}" if rate is not None and np.isfinite(rate) else title
    return DatasetStrip(head, rows)
