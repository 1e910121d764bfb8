"""How long labelling an audit takes with the keyboard on the page ``python -m facemac.audit`` writes, in headless
Chromium (selenium), and a screenshot of the page for the docs.

A simulated person types the demo target's true labels: ``--faces`` faces x 1 attribute in attribute-by-attribute
mode (one key per face), then every attribute of ``--full`` faces in face-by-face mode. It measures the page (render
and bookkeeping per key), not a person: a person's time per judgement is an estimate stated in docs/audit.md. Then
it saves, reads the CSV back with ``read_audit`` and checks every typed cell.

    python benchmarks/audit_labelling.py --annotations <annotate run>/annotations [--dataset demo_synth_a] \
        [--truth <labels.csv>] [--screenshot docs/img/audit_page.png]

Without ``--annotations`` it annotates a small demo target with a random tiny MAC first (the guesses are noise).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _driver(download: Path, width: int, height: int):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              f"--window-size={width},{height}", "--hide-scrollbars"):
        opts.add_argument(a)
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    d = webdriver.Chrome(options=opts, service=Service(shutil.which("chromedriver") or "/usr/bin/chromedriver"))
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download)})
    return d


def _wait_csv(folder: Path) -> Path:
    for _ in range(400):
        got = [p for p in folder.glob("*.csv")]
        if got and not list(folder.glob("*.crdownload")):
            return got[0]
        time.sleep(0.05)
    raise RuntimeError("no download")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--annotations", type=Path, help="a folder of annotation tables (default: build a small one)")
    ap.add_argument("--dataset", default="demo_synth_a")
    ap.add_argument("--truth", type=Path, help="labels.csv of the dataset (default: the manifest root's labels.csv)")
    ap.add_argument("--faces", type=int, default=100)
    ap.add_argument("--full", type=int, default=10, help="faces judged on every attribute (face-by-face mode)")
    ap.add_argument("--attribute", default="Eyeglasses")
    ap.add_argument("--screenshot", type=Path)
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()

    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    from facemac.audit.format import read_audit
    from facemac.audit.simulate import read_truth
    from tests.audit_helpers import annotate_demo_and_folders, run_audit

    work = args.work or Path(tempfile.mkdtemp(prefix="audit_bench_"))
    if args.annotations is None:
        args.annotations, _, truth = annotate_demo_and_folders(work, size=112)
        args.truth = args.truth or truth
    manifest = json.loads((args.annotations / args.dataset / "manifest.json").read_text())
    truth_path = args.truth or Path(manifest["root"]) / "labels.csv"
    t0 = time.perf_counter()
    written = run_audit(work, str(args.annotations), work / "audit_run", f"audit.size={args.faces}",
                        f"audit.datasets=[{args.dataset}]")
    t_cmd = time.perf_counter() - t0
    page = written[args.dataset].page
    truth = read_truth(truth_path)
    dl = work / "downloads"
    dl.mkdir(exist_ok=True)
    d = _driver(dl, 1100, 760)
    try:
        d.get(page.as_uri())
        data = d.execute_script("return JSON.parse(document.getElementById('audit-data').textContent)")
        attrs, paths = data["attributes"], [r[0] for r in data["rows"]]
        j = attrs.index(args.attribute)
        n = len(paths)
        # attribute by attribute: one key per face; where the MAC is right the person confirms it with space
        d.find_element(By.ID, "mode-attr").click()
        Select(d.find_element(By.ID, "attr-select")).select_by_index(j)
        keys = []
        for i, p in enumerate(paths):
            v = truth.at[p, args.attribute]
            mac = "1" if data["mac"][i][j] > data["thresholds"][j] else "0"
            keys.append(" " if v == mac else v)
        t0 = time.perf_counter()
        for k in keys:
            ActionChains(d).send_keys(k).perform()
        t_attr = time.perf_counter() - t0
        if args.screenshot:  # the grid with a few judged faces, scrolled to the top
            ActionChains(d).send_keys("[").perform()  # the last key moved on to the next attribute: back
            d.find_element(By.CSS_SELECTOR, '.card[data-face="0"]').click()
            d.execute_script("window.scrollTo(0, 0)")
        shot = d.get_screenshot_as_png() if args.screenshot else None
        # face by face: every attribute of the first --full faces
        d.find_element(By.ID, "mode-face").click()
        row = d.find_element(By.CSS_SELECTOR, 'tr[data-attr="0"]')
        d.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)  # not under the sticky header
        row.click()
        t0 = time.perf_counter()
        typed = 0
        for i in range(min(args.full, n)):
            for a in attrs:
                v = truth.at[paths[i], a] if a in truth.columns else ""
                ActionChains(d).send_keys(v if v else "x").perform()
                typed += 1
        t_face = time.perf_counter() - t0
        ActionChains(d).send_keys("s").perform()
        saved = _wait_csv(dl)
    finally:
        d.quit()
    audit = read_audit(saved, args.dataset, attrs)
    wrong = 0
    for i, p in enumerate(paths):
        for a in attrs:
            lab, judged = audit.column(a)
            want = truth.at[p, a] if a in truth.columns else ""
            expect_judged = (a == args.attribute) or (i < args.full and want != "")
            if judged[i] != expect_judged or (judged[i] and str(int(lab[i])) != want):
                wrong += 1
    if shot is not None:
        import cv2
        import numpy as np

        img = cv2.imdecode(np.frombuffer(shot, np.uint8), cv2.IMREAD_COLOR)
        img = cv2.resize(img, (900, int(img.shape[0] * 900 / img.shape[1])), interpolation=cv2.INTER_AREA)
        args.screenshot.parent.mkdir(parents=True, exist_ok=True)
        from PIL import Image  # a 256-colour palette keeps the PNG small for the docs

        Image.fromarray(img[..., ::-1]).quantize(colors=256).save(args.screenshot, optimize=True)
    figures = {"dataset": args.dataset, "faces": n, "audit_command_s": round(t_cmd, 2),
               "attribute_mode_s": round(t_attr, 2), "attribute_mode_ms_per_key": round(1000 * t_attr / n, 1),
               "face_mode_keys": typed, "face_mode_s": round(t_face, 2),
               "face_mode_ms_per_key": round(1000 * t_face / max(typed, 1), 1), "cells_wrong_after_save": wrong}
    print(f"| step | keys | seconds | ms per key |\n|---|---|---|---|\n"
          f"| attribute by attribute, {n} faces x 1 attribute | {n} | {t_attr:.2f} | {1000 * t_attr / n:.1f} |\n"
          f"| face by face, {min(args.full, n)} faces x {len(attrs)} attributes | {typed} | {t_face:.2f} | "
          f"{1000 * t_face / max(typed, 1):.1f} |\nsaved CSV read back with read_audit: {wrong} cells wrong")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
