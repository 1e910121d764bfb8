"""python -m facemac.audit on the demo and on an identity-folder target: templates, designs, faces as the MAC saw
them, the labelling page; and the page in a real browser (headless Chromium): keyboard and mouse, save, reopen."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from facemac.annotation_table import verify_table
from facemac.audit.format import read_audit
from facemac.audit.simulate import simulate_fill
from facemac.errors import ConfigError
from facemac.faces import load_crops
from tests.audit_helpers import annotate_demo_and_folders, run_audit

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("audit")
    annotations, mine, labels = annotate_demo_and_folders(base)
    out = base / "audit_run"
    written = run_audit(base, "latest", out, "audit.size=12", "audit.rare_attributes=2", "seed=5")
    return base, annotations, out / "audit", written, mine, labels


def _rows(table: Path) -> list[str]:
    _, parts = verify_table(table, check_sha=False)
    return [p for part in parts for p in pd.read_parquet(part, columns=["path"])["path"]]


@pytest.mark.parametrize("dataset", ["demo_synth_a", "mine"])
def test_the_command_writes_template_design_faces_and_page(runs, dataset):
    base, annotations, out, written, _, _ = runs
    assert set(written) == {"demo_synth_a", "mine"} and (out.parent / "DONE").is_file()
    table = annotations / dataset
    paths = _rows(table)
    template = out / f"{dataset}.csv"
    frame = pd.read_csv(template, dtype=str, keep_default_na=False)
    assert len(frame) == 12 and set(frame["path"]) <= set(paths)
    assert list(frame.columns[:5]) == ["path", "identity", "stratum", "stratum_size", "weight"]
    design = json.loads((out / f"{dataset}.json").read_text())
    assert design["kind"] == "stratified" and design["seed"] == 5
    assert sum(s["size"] for s in design["strata"].values()) == len(paths)
    # faces beside the page, in sample order, are the MAC's crops enlarged (JPEG: close, not equal)
    crops = load_crops(table, list(frame["path"]), size=160)
    for k, crop in enumerate(crops):
        img = cv2.imread(str(out / f"{dataset}_faces" / f"{k:05d}.jpg"))[..., ::-1]
        assert img.shape == (160, 160, 3) and np.corrcoef(img.ravel(), crop.ravel())[0, 1] > 0.95  # random pixels, too
    page = (out / f"{dataset}.html").read_text()
    assert f"{dataset}_faces/00000.jpg" in page and "<script>" in page and "http" not in page.split("<script")[0]
    # the same seed gives the same sample; a template is never an audit until judged
    again = run_audit(base, str(annotations), base / f"again_{dataset}", "audit.size=12", "audit.rare_attributes=2",
                      "seed=5", f"audit.datasets=[{dataset}]")
    assert set(again) == {dataset}
    assert (base / f"again_{dataset}" / "audit" / f"{dataset}.csv").read_text() == template.read_text()


def test_a_filled_template_is_what_analyze_reads(runs, tmp_path):
    _, annotations, out, _, _, labels = runs
    filled = tmp_path / "demo_synth_a.csv"
    shutil.copy(out / "demo_synth_a.json", tmp_path)
    simulate_fill(out / "demo_synth_a.csv", labels, out=filled)
    manifest, _ = verify_table(annotations / "demo_synth_a", check_sha=False)
    audit = read_audit(filled, "demo_synth_a", manifest["attributes"], known_paths=set(_rows(annotations /
                       "demo_synth_a")), num_images=manifest["num_images"])
    assert audit.judged.all() and audit.design.kind == "stratified"


def test_unknown_dataset_and_moved_images(runs, tmp_path):
    base, annotations, _, _, mine, _ = runs
    with pytest.raises(ConfigError, match=r"audit.datasets names \['nope'\]"):
        run_audit(base, str(annotations), tmp_path / "x", "audit.datasets=[nope]")
    moved = tmp_path / "moved"
    shutil.copytree(mine, moved)
    shutil.rmtree(next(p for p in sorted(moved.glob("*/*"))))  # one identity folder lost on the way
    written = run_audit(base, str(annotations), tmp_path / "y", "audit.size=16", "audit.datasets=[mine]",
                        f"audit.roots={{mine: {moved}}}")
    assert written["mine"].unreadable == 4 and written["mine"].faces == 12


def test_a_mistake_is_one_error_line_from_the_command_line(runs, tmp_path):
    base, annotations, *_ = runs
    r = subprocess.run([sys.executable, "-m", "facemac.audit", f"annotations={annotations}", "audit.size=0",
                        f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, capture_output=True, text=True,
                       timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
    lines = [ln for ln in (r.stdout + r.stderr).splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(lines) == 1 and "audit.size=0" in lines[0], r.stderr[-2000:]


# ---- the page in a real browser ----

def _browser(download: Path):
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install .[test])")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    chrome = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if Path("/usr/bin/chromedriver").is_file()
                                               else None)
    if chrome is None or driver is None:
        pytest.skip("no Chromium and chromedriver here (apt-get install chromium chromium-driver; .ci/run does)")
    opts = Options()
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1200,900"):
        opts.add_argument(a)
    opts.binary_location = chrome
    opts.add_experimental_option("prefs", {"download.default_directory": str(download),
                                           "download.prompt_for_download": False})
    d = webdriver.Chrome(options=opts, service=Service(driver))
    d.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download)})
    return d


def _download(folder: Path, timeout: float = 20) -> Path:
    """The one finished download in ``folder`` (then moved out of the way, so the next save has the same name)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        done = [p for p in folder.iterdir() if p.suffix == ".csv"]
        if done and not any(p.suffix == ".crdownload" for p in folder.iterdir()):
            target = folder.parent / f"saved_{time.monotonic_ns()}.csv"
            return done[0].rename(target)
        time.sleep(0.05)
    raise AssertionError(f"nothing downloaded into {folder}")


def test_labelling_in_chromium_keyboard_mouse_save_reopen(runs, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    _, annotations, out, *_ = runs
    dataset, dl = "demo_synth_a", tmp_path / "downloads"
    dl.mkdir()
    manifest, _ = verify_table(annotations / dataset, check_sha=False)
    attrs = list(manifest["attributes"])
    d = _browser(dl)
    try:
        d.get((out / f"{dataset}.html").as_uri())
        data = d.execute_script("return JSON.parse(document.getElementById('audit-data').textContent)")
        keys = lambda *k: ActionChains(d).send_keys(*k).perform()  # noqa: E731
        keys("s")  # nothing judged: the download is the template, byte for byte
        assert _download(dl).read_bytes() == (out / f"{dataset}.csv").read_bytes()
        mac = lambda i, j: "1" if data["mac"][i][j] > data["thresholds"][j] else "0"  # noqa: E731
        expect = {}
        keys("1", "0", " ", "x", "1")  # face 0: yes, no, the MAC's guess, skip one, yes
        expect.update({(0, 0): "1", (0, 1): "0", (0, 2): mac(0, 2), (0, 4): "1"})
        keys("]")  # next face, same attribute (4)
        d.find_element(By.CSS_SELECTOR, 'button.b-no[data-face="1"][data-attr="0"]').click()  # mouse
        expect[(1, 0)] = "0"
        d.find_element(By.ID, "mode-attr").click()
        Select(d.find_element(By.ID, "attr-select")).select_by_visible_text(attrs[5])
        d.find_element(By.CSS_SELECTOR, 'button.b-yes[data-face="3"][data-attr="5"]').click()
        keys("0", "u")  # changed, then undone: stays yes
        expect[(3, 5)] = "1"
        assert "6 / " in d.find_element(By.ID, "progress").text
        keys("s")
        saved = _download(dl)
        audit = read_audit(saved, dataset, attrs, known_paths=set(_rows(annotations / dataset)),
                           num_images=manifest["num_images"])
        assert audit.num_judgements == len(expect)
        for (i, j), v in expect.items():
            a = audit.attributes.index(attrs[j])
            assert audit.judged[i, a] and audit.labels[i, a] == float(v), (i, attrs[j])
        assert list(pd.read_csv(saved, dtype=str).columns) == data["header"]

        # reopen the partial CSV in a fresh page and carry on
        d.get((out / f"{dataset}.html").as_uri())
        d.find_element(By.ID, "open").send_keys(str(saved))
        time.sleep(0.3)
        assert "6 judgements" in d.find_element(By.ID, "status").text
        keys("]", "]", "]", "]", "]", "y")  # face 5, attribute 0
        expect[(5, 0)] = "1"
        keys("s")
        audit = read_audit(_download(dl), dataset, attrs)
        assert audit.num_judgements == len(expect)
        for (i, j), v in expect.items():
            a = audit.attributes.index(attrs[j])
            assert audit.judged[i, a] and audit.labels[i, a] == float(v)
    finally:
        d.quit()
