"""The labelling page: one HTML file beside the template and the face files, working from file:// (no server), with
the page's JS and CSS (package data, facemac/audit/assets/) inlined so the folder can be copied to any laptop."""

from __future__ import annotations

import csv
import html
import json
from importlib import resources
from pathlib import Path

from facemac.atomic import write_text_atomic
from facemac.audit.sample import AuditSample

ASSETS = "assets"


def asset(name: str) -> str:
    """Text of one of the page's asset files (installed with the package)."""
    return resources.files("facemac.audit").joinpath(ASSETS, name).read_text(encoding="utf-8")


def page_data(sample: AuditSample, template: Path, faces: list[str | None]) -> dict:
    """What the page needs: the template's cells verbatim (saving rewrites only attribute cells), the faces, and the
    MAC's probabilities and label thresholds (its guesses, shown but never taken as judgements)."""
    with open(template, newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    return {"dataset": sample.dataset, "attributes": sample.attributes, "header": rows[0], "rows": rows[1:],
            "faces": faces, "mac": [[round(float(v), 4) for v in r] for r in sample.probs],
            "thresholds": [float(t) for t in sample.thresholds]}


HELP = ("<kbd>1</kbd>/<kbd>y</kbd> yes · <kbd>0</kbd>/<kbd>n</kbd> no · <kbd>space</kbd> confirm the MAC's guess · "
        "<kbd>x</kbd> leave blank · <kbd>u</kbd> undo · <kbd>←</kbd><kbd>→</kbd> (<kbd>↑</kbd><kbd>↓</kbd>) previous/next "
        "· <kbd>[</kbd><kbd>]</kbd> previous/next face (attribute) · <kbd>f</kbd> face by face · <kbd>a</kbd> attribute "
        "by attribute · <kbd>s</kbd> save. Blank cells stay <i>not judged</i>; the MAC's guess counts only when you "
        "confirm it.")


def write_page(out_dir: Path, sample: AuditSample, template: Path, faces: list[str | None]) -> Path:
    """``<out_dir>/<dataset>.html``; ``faces`` are paths relative to ``out_dir`` (None: not readable)."""
    data = json.dumps(page_data(sample, template, faces), separators=(",", ":")).replace("</", "<\\/")
    title = html.escape(f"audit: {sample.dataset}")
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{asset("audit.css")}</style></head>
<body>
<header>
<h1>{title}</h1>
<button id="mode-face" class="on">face by face</button><button id="mode-attr">attribute by attribute</button>
<label class="file">open a saved CSV<input id="open" type="file" accept=".csv,text/csv"></label>
<button id="save">save CSV</button>
<span class="progress" id="progress"></span>
<div class="track"><div id="bar"></div></div>
<div id="status"></div>
<div class="help">{HELP}</div>
</header>
<main id="main"></main>
<script id="audit-data" type="application/json">{data}</script>
<script>{asset("audit.js")}</script>
</body></html>
"""
    return write_text_atomic(Path(out_dir) / f"{sample.dataset}.html", text)
