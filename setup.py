"""Everything about the package is in pyproject.toml; this only copies the repository's ``conf/`` into the wheel.

The config tree stays where people edit it (``conf/`` at the repository root, no second copy in the tree); a build
puts it in the package as ``facemac/conf/`` (facemac/conf_dir.py finds it there once installed). Machine-local files
(``conf/local/*.yaml``, git-ignored) never go into a wheel.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONF = Path(__file__).resolve().parent / "conf"


def conf_files() -> list[Path]:
    """Every file of the config tree that belongs in a wheel (relative to conf/)."""
    return sorted(p.relative_to(CONF) for p in CONF.rglob("*")
                  if p.is_file() and "__pycache__" not in p.parts
                  and not (p.parts[len(CONF.parts)] == "local" and p.suffix == ".yaml"))


class BuildWithConf(build_py):
    """build_py, then conf/ → <build>/facemac/conf/ (wheels; editable installs read conf/ in place)."""

    def run(self) -> None:
        super().run()
        if self.editable_mode:
            return
        for rel in conf_files():
            target = Path(self.build_lib) / "facemac" / "conf" / rel
            self.mkpath(str(target.parent))
            self.copy_file(str(CONF / rel), str(target))


setup(cmdclass={"build_py": BuildWithConf})
