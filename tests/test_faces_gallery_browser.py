"""The gallery page in a real browser (headless Chromium, Debian's `chromium`; .ci/run installs it): it renders the
chosen attribute's faces sorted by probability with the threshold line in its place, the URL's #attribute opens that
attribute, the keys step through attributes, and every image loads from the folder (offline, no server)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from facemac.faces.gallery import GalleryDataset, write_gallery
from facemac.faces.picks import AttributePicks, Pick

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (apt-get install chromium)")


def _dom(page: Path, fragment: str = "") -> str:
    """The page's DOM after its scripts ran (and images loaded), as Chromium serialises it."""
    proc = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--window-size=1400,6000", "--virtual-time-budget=5000", "--dump-dom",
                           page.as_uri() + fragment], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _gallery(tmp_path: Path) -> tuple[Path, dict[str, list[float]], dict[str, float]]:
    rng = np.random.default_rng(1)
    thr = {"A": 0.5, "B": 0.3, "C": 0.7}
    picks, probs, crops = {}, {}, {}
    for a, t in thr.items():
        p = sorted(rng.random(7).round(4).tolist(), reverse=True)
        probs[a] = p
        faces = [Pick(f"{a}/{k}.jpg", f"id{k % 2}", v) for k, v in enumerate(p)]
        for f in faces:
            crops[f.path] = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
        picks[a] = AttributePicks(a, t, {"top": faces[:4], "bottom": faces[4:]})
    page = write_gallery(tmp_path / "gallery", GalleryDataset("demo & <x>", "synthetic", list(thr), picks), crops,
                         per_attribute=10)
    return page, probs, thr


def _shown(dom: str) -> tuple[str, list[float], int, int]:
    """(selected attribute, probabilities in page order, faces before the threshold line, faces drawn negative)."""
    m = re.search(r'<main id="faces"([^>]*)>(.*?)</main>', dom, re.S)
    selected = re.search(r'data-attribute="([^"]*)"', m.group(1))
    main = m.group(2)
    ps = [float(x) for x in re.findall(r"<figcaption>p = ([0-9.]+)", main)]
    before = main.split('class="threshold"')[0].count('class="face')
    negative = main.count('class="face negative"')
    return selected.group(1) if selected else "", ps, before, negative


def test_the_gallery_renders_sorted_faces_with_the_threshold_and_follows_the_keys(tmp_path):
    page, probs, thr = _gallery(tmp_path)
    name, ps, before, negative = _shown(_dom(page, "#B"))
    assert name == "B" and ps == [round(p, 3) for p in probs["B"]]
    assert before == sum(p > thr["B"] for p in probs["B"]) and negative == len(ps) - before
    # keys: two steps right from the first attribute, one left from it wraps to the last; +: larger faces
    keys = page.with_name("keys.html")
    keys.write_text(page.read_text().replace(
        "</body>", "<script>for (const k of ['ArrowRight', 'ArrowRight', '+']) document.dispatchEvent("
                   "new KeyboardEvent('keydown', {key: k, bubbles: true}));"
                   "window.addEventListener('load', () => { document.body.dataset.loaded = "
                   "[...document.images].filter((i) => i.naturalWidth === 32).length; });</script></body>"))
    dom = _dom(keys)
    name, ps, before, _ = _shown(dom)
    assert name == "C" and ps == [round(p, 3) for p in probs["C"]] and before == sum(p > 0.7 for p in probs["C"])
    assert "--face: 136px" in dom
    assert int(re.search(r'data-loaded="(\d+)"', dom).group(1)) == 7  # every image of the page, from the folder
    left = page.with_name("left.html")
    left.write_text(page.read_text().replace("</body>", "<script>document.dispatchEvent(new KeyboardEvent("
                                                         "'keydown', {key: 'ArrowLeft'}));</script></body>"))
    assert _shown(_dom(left))[0] == "C"
    assert "demo &amp; &lt;x&gt;" in page.read_text()  # names are escaped, not markup
