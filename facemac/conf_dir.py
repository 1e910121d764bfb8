"""Where the Hydra config tree is: inside the installed package, or the repository's ``conf/`` in a checkout.

The repository-root ``conf/`` is the one copy people edit. A wheel carries a copy of it as ``facemac/conf/`` (package
data, copied at build time by ``setup.py``), so ``python -m facemac.*`` works from any folder after ``pip install .``;
a checkout or an editable install has no ``facemac/conf/`` and reads the repository's ``conf/`` directly.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent
PACKAGED = _PACKAGE / "conf"  # a wheel's copy
CHECKOUT = _PACKAGE.parent / "conf"  # the repository's tree


def conf_dir() -> Path:
    """The config folder every entry point composes from (absolute). Raises when neither place has one."""
    for candidate in (PACKAGED, CHECKOUT):
        if (candidate / "train.yaml").is_file():
            return candidate
    from facemac.errors import ConfigError

    raise ConfigError(f"no facemac config tree: neither {PACKAGED} (an installed wheel) nor {CHECKOUT} (a checkout) "
                      "holds train.yaml; reinstall facemac (pip install .) or run from a facemac checkout")
