"""Find or build the demo datasets in the cache: one folder per parameter digest, built in a temporary folder and
renamed into place only when complete (facemac.atomic.build_folder_once), so a killed run or two concurrent runs never
leave a half-written tree."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from facemac.atomic import build_folder_once
from facemac.data.demo.generate import DemoParams, celeba_plan, generate
from facemac.data.demo.profiles import DEMO_ATTRIBUTES, PROFILES, TARGET_NAMES
from facemac.errors import ConfigError

log = logging.getLogger(__name__)
FORMAT_VERSION = 1  # bump when the on-disk layout changes
MANIFEST = "demo.json"


@dataclass
class DemoData:
    """Where a generated demo lives: CelebA-layout training root and one identity-folder root per target."""

    root: Path
    celeba_root: Path
    targets: dict[str, Path]

    @property
    def manifest(self) -> dict:
        """Parameters, counts and exact per-profile attribute rates recorded at generation."""
        return json.loads((self.root / MANIFEST).read_text())


def _params(params: dict) -> DemoParams:
    known = {f.name for f in fields(DemoParams)}
    unknown = sorted(set(params) - known)
    if unknown:
        raise ConfigError(f"unknown demo config key(s) {unknown}; expected some of {sorted(known)} plus seed, workers")
    return DemoParams(**params)


def demo_digest(seed: int, params: DemoParams) -> str:
    """Short digest of everything that shapes the bytes: seed, sizes, priors, renderer and format versions."""
    from facemac.data.demo.render import RENDERER_VERSION

    key = {"seed": int(seed), "params": params.as_dict(), "renderer": RENDERER_VERSION, "format": FORMAT_VERSION,
           "profiles": {n: asdict(p) for n, p in PROFILES.items()}}
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _data(root: Path) -> DemoData:
    return DemoData(root=root, celeba_root=root / "celeba", targets={n: root / "targets" / n for n in TARGET_NAMES})


def _complete(root: Path) -> bool:
    try:
        return bool(json.loads((root / MANIFEST).read_text()).get("complete"))
    except (OSError, ValueError):
        return False


def _manifest(seed: int, params: DemoParams, digest: str) -> dict:
    _, split = celeba_plan(seed, params)
    n_img = params.celeba_images_per_identity
    return {
        "complete": True, "digest": digest, "seed": int(seed), "params": params.as_dict(),
        "attributes": list(DEMO_ATTRIBUTES),
        "celeba": {"identities": params.celeba_identities, "images": params.celeba_identities * n_img,
                   "split_identities": [int((split == s).sum()) for s in (0, 1, 2)],
                   "split_images": [int((split == s).sum()) * n_img for s in (0, 1, 2)]},
        "targets": {n: {"identities": params.target_identities,
                        "images": params.target_identities * params.target_images_per_identity}
                    for n in TARGET_NAMES},
        "profiles": {n: {"group": p.group, "description": p.description, "true_rates": p.true_rates(),
                         "identity_drift": p.identity_drift, "image_variation": p.image_variation,
                         "within_identity": {a: {"mixed_share": m, "mean_entropy_bits": e} for a, (m, e)
                                             in p.within_identity(params.target_images_per_identity).items()}}
                     for n, p in PROFILES.items()},
    }


def ensure_demo(cache_dir: str | Path, seed: int = 0, workers: int | None = None, progress: bool = True,
                **params) -> DemoData:
    """Return the demo data for (seed, params), generating it under ``<cache_dir>/demo/<digest>/`` if missing."""
    p = _params(params)
    digest = demo_digest(seed, p)
    base = Path(cache_dir).expanduser() / "demo"
    final = base / digest
    if _complete(final):
        log.info("demo data: reusing %s", final)
        return _data(final)

    def build(tmp: Path) -> None:
        log.info("demo data: generating seed=%s %s into %s", seed, p.as_dict(), final)
        start = time.perf_counter()
        generate(tmp, seed, p, workers=workers, progress=progress)
        (tmp / MANIFEST).write_text(json.dumps(_manifest(seed, p, digest), indent=1, sort_keys=True) + "\n")
        log.info("demo data: generated in %.1f s", time.perf_counter() - start)

    build_folder_once(final, _complete, build, "demo data", lock_file=base / f".{digest}.lock")
    return _data(final)
