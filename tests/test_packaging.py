"""The package as a user installs it: the wheel carries the config tree (and no test support), the tools run from
any folder after a non-editable install, and a feature whose optional extra is missing is one ``error:`` line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from facemac.errors import FacemacError
from facemac.extras import EXTRAS, MissingExtraError, check_overrides, require

ROOT = Path(__file__).resolve().parents[1]
# what a wheel is built from (a copy, so a stale build/ folder of the checkout can never leak into it)
SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "facemac", "conf")
TOOLS = ("facemac.cli.train", "facemac.cli.annotate", "facemac.cli.analyze", "facemac.compare", "facemac.dashboard",
         "facemac.audit")


def _conf_files() -> set[str]:
    return {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*") if p.is_file()
            and not (p.parent.name == "local" and p.suffix == ".yaml") and "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src, out = tmp_path_factory.mktemp("src"), tmp_path_factory.mktemp("wheel")
    for name in SOURCES:
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy2
        copy(ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree
                                         else {}))
    (src / "conf" / "local" / "default.yaml").write_text("roots: {celeba: /my/machine/only}\n")  # never shipped
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                           str(out), str(src)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (whl,) = out.glob("facemac-*.whl")
    return whl


def test_the_wheel_holds_the_config_tree_and_no_test_support(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("facemac/conf/") for n in names if n.startswith("facemac/conf/")}
    assert shipped == _conf_files()  # every group file, nothing machine-local (conf/local/*.yaml)
    assert {"facemac/cli/train.py", "facemac/conf_dir.py", "facemac/extras.py"} <= names
    assert {"facemac/audit/assets/audit.js", "facemac/audit/assets/audit.css"} <= names  # the audit page's package data
    assert not [n for n in names if n.startswith("tests/") or n.endswith("analysis/fixtures.py")]
    code = {n: zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith(".py")}
    for support in ("def read_offline_run", "def write_recordio", "def write_annotation_dir", "def _umeyama_svd"):
        assert not [n for n, text in code.items() if support in text], support  # they live under tests/ now


def test_the_wheel_holds_the_gallery_assets(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assets = {f"facemac/faces/assets/{n}" for n in ("gallery.js", "gallery.css")}
    assert assets <= names
    for n in assets:  # the files themselves, not empty placeholders
        assert zipfile.ZipFile(wheel).read(n) == (ROOT / n).read_bytes()


@pytest.mark.slow
def test_every_tool_composes_from_a_folder_outside_the_repository_after_a_plain_install(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", str(wheel)], check=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the installed copy, not this checkout

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(python), *args], cwd=elsewhere, env=env, capture_output=True, text=True,
                              timeout=300)

    where = run("-c", "import facemac, facemac.conf_dir as c; print(facemac.__file__); print(c.conf_dir())")
    assert where.returncode == 0, where.stderr[-2000:]
    module, conf = where.stdout.split()
    assert Path(module).is_relative_to(venv) and Path(conf) == Path(module).parent / "conf"
    for tool in TOOLS:
        proc = run("-m", tool, "--cfg", "job")
        assert proc.returncode == 0, f"{tool}: {proc.stderr[-2000:]}"
        assert "paths:" in proc.stdout and "log_dir:" in proc.stdout
    proc = run("-m", "facemac.pipeline", "experiment=demo", "--dry-run", "--dir", str(elsewhere / "exp"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all((elsewhere / "exp" / "pipeline.json").read_text().count(f"-m facemac.cli.{s}") == 1
               for s in ("train", "annotate", "analyze"))


def _hide(monkeypatch, *modules: str) -> None:
    """Make ``modules`` look not installed (importlib.util.find_spec says None, import raises ImportError)."""
    for m in modules:
        monkeypatch.setitem(sys.modules, m, None)


def test_every_extra_is_installed_here_and_is_named_when_missing(monkeypatch):
    for extra in EXTRAS:  # the test extra pulls them all
        assert extra.missing() == [], extra
        require(extra, "x")
    _hide(monkeypatch, "optuna")
    with pytest.raises(MissingExtraError, match=r"^hparams_search=optuna needs facemac's \[sweeps\] extra \(optuna "
                                                r"not installed\): pip install 'facemac\[sweeps\]'"):
        check_overrides(["seed=1", "hparams_search=optuna"])
    check_overrides(["hparams_search=null", "launcher=slurm", "hydra.sweeper.n_jobs=2", "-m"])  # nothing else needs it


def test_launchers_and_hydra_plugin_overrides_name_the_slurm_extra(monkeypatch):
    _hide(monkeypatch, "hydra_plugins.hydra_submitit_launcher")
    for override in ("launcher=slurm", "launcher=local", "hydra/launcher=submitit_local", "+launcher=slurm"):
        with pytest.raises(MissingExtraError, match=r"\[slurm\] extra \(hydra_plugins.hydra_submitit_launcher"):
            check_overrides([override])
    check_overrides(["launcher=null", "hparams_search=optuna", "launcher=no_such_choice"])  # Hydra lists choices


def test_albumentations_is_needed_only_by_its_backend_or_hue_jitter(monkeypatch):
    from facemac.data.augment import build_augment

    _hide(monkeypatch, "albumentations")
    cfg = {"hflip": 0.5, "color": {"p": 0.5, "brightness": 0.1, "hue": 0.0}}
    assert build_augment({**cfg, "backend": "fast"}) is not None
    with pytest.raises(MissingExtraError, match=r"^augment.backend=albumentations needs .*\[albumentations\]"):
        build_augment({**cfg, "backend": "albumentations"})
    with pytest.raises(MissingExtraError, match=r"^augment.color.hue > 0 .* needs .*\[albumentations\]"):
        build_augment({**cfg, "backend": "fast", "color": {"p": 0.5, "hue": 0.05}})


def test_the_dashboard_without_its_extra_is_one_error_line(monkeypatch, make_cfg):
    from facemac.dashboard.run import run

    _hide(monkeypatch, "wandb_workspaces")
    with pytest.raises(MissingExtraError, match=r"^python -m facemac.dashboard needs facemac's \[dashboard\] extra"):
        run(make_cfg("dashboard", ["group=g1"]))
    assert issubclass(MissingExtraError, FacemacError)


@pytest.mark.parametrize("argv", [["train.py", "hparams_search=optuna"], ["train.py", "launcher=local", "-m"]])
def test_a_missing_extra_on_the_command_line_is_one_error_line_before_hydra_composes(argv, tmp_path):
    hidden = "hydra_plugins.hydra_optuna_sweeper" if "hparams" in argv[1] else "submitit"
    code = (f"import sys; sys.modules[{hidden!r}] = None; sys.argv = {argv!r}\n"
            "from facemac.cli.train import main; main()")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {argv[1]} needs facemac's [") and "pip install" in lines[0]
