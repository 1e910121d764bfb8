"""Where a MAC's starting weights come from: a local file (``model.weights``), timm's pretrained weights through the
Hugging Face hub cache (``model.pretrained``), or nowhere (from scratch).

Training resolves this before any data work, so offline with nothing cached is one ``ConfigError`` naming the ways out
instead of the hub client's retries and traceback after the dataset was prepared. Hub weights reach timm as the file
in the hub cache (the one timm's own download would read), through ``timm.create_model(pretrained=True)`` with a
``file`` overlay: timm's checkpoint filter still runs (ViT position embeddings resampled to ``img_size``, classifier
dropped), and building the model never touches the network itself.
"""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from facemac.errors import ConfigError
from facemac.hashing import file_sha256

log = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".pth", ".pt", ".bin", ".safetensors")
# Files timm's hub loader tries, in its order (safetensors first when the package is installed, which timm requires).
HUB_FILES = ("model.safetensors", "pytorch_model.bin")
WAYS_OUT = ("model.weights=<file.pth|.safetensors> (a local copy of the weights)",
            "a warm hub cache with HF_HUB_OFFLINE=1 (download once where the hub is reachable)",
            "model.pretrained=false (train from scratch)")


@dataclass(frozen=True)
class WeightSource:
    """What a run starts from; ``record()`` goes into the checkpoint's model config and the W&B config."""

    kind: str  # "none" | "file" | "hf-hub" | "url"
    ref: str | None = None  # model.weights path, hub id (repo@revision) or URL
    file: str | None = None  # the local file timm loads; None for "none"
    sha256: str | None = None  # of a model.weights file (hub files are named by their commit)
    content: str | None = None  # model.weights: "state_dict" | "facemac-checkpoint" (facemac.models.weights_file)
    matched: int | None = None  # the file's tensors that fit the model (name and shape) ...
    model_tensors: int | None = None  # ... of the backbone's
    file_tensors: int | None = None  # ... and of the file's backbone tensors
    head: str | None = None  # a facemac checkpoint: "kept" (same attributes) | "new"

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def describe(self) -> str:
        if self.kind == "none":
            return "random initialisation (model.pretrained=false)"
        if self.kind == "file":
            text = f"local file {self.file} (sha256 {self.sha256[:12]})" if self.sha256 else f"local file {self.file}"
            if self.content == "facemac-checkpoint":
                text += ", a facemac checkpoint: its backbone"
            if self.matched is not None:
                text += f" ({self.matched} of the model's {self.model_tensors} tensors; the file holds {self.file_tensors})"
            return text
        return f"{self.kind} {self.ref} from {self.file}"


class HubUnreachable(OSError):
    """The hub could not be asked for a file (no network, DNS failure, HF_HUB_OFFLINE, server error)."""


def hub_offline() -> bool:
    """HF_HUB_OFFLINE as the hub client sees it (read at its import) or as set in the environment since."""
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")
    return bool(constants.HF_HUB_OFFLINE) or env


def hub_cached(repo_id: str, revision: str | None, filenames: tuple[str, ...]) -> str | None:
    """The first of ``filenames`` already in the hub cache for this repo/revision, without any network call."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        path = try_to_load_from_cache(repo_id, name, revision=revision)
        if isinstance(path, str) and os.path.isfile(path):
            return path
    return None


def hub_fetch(repo_id: str, revision: str | None, filenames: tuple[str, ...]) -> str:
    """Download the first of ``filenames`` the repo has into the hub cache. One metadata request without retries
    decides reachability, so an offline machine fails in about a second (raises HubUnreachable)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_download, hf_hub_url
    from huggingface_hub.errors import RemoteEntryNotFoundError

    for name in filenames:
        try:
            get_hf_file_metadata(hf_hub_url(repo_id, name, revision=revision), timeout=10)
        except RemoteEntryNotFoundError:
            continue
        except Exception as e:  # noqa: BLE001 - network stacks raise many types; all mean "cannot ask the hub"
            raise HubUnreachable(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
        return hf_hub_download(repo_id, name, revision=revision)
    raise HubUnreachable(f"{repo_id} has none of {', '.join(filenames)}")


def url_fetch(url: str, download: bool = True) -> str:
    """timm weights published only as a URL: torch hub's checkpoint cache, downloaded when missing."""
    from torch.hub import download_url_to_file, get_dir

    path = Path(get_dir()) / "checkpoints" / Path(urlparse(url).path).name
    if path.is_file():
        return str(path)
    if hub_offline() or not download:
        raise HubUnreachable("HF_HUB_OFFLINE is set" if download else "downloads not allowed here")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        download_url_to_file(url, str(path), progress=False)
    except Exception as e:  # noqa: BLE001
        raise HubUnreachable(str(e).splitlines()[0] if str(e) else type(e).__name__) from e
    return str(path)


def _offline_error(name: str, ref: str, reason: str) -> ConfigError:
    from huggingface_hub import constants

    return ConfigError(f"model.pretrained=true: timm's weights for {name} ({ref}) are not in the hub cache "
                       f"({constants.HF_HUB_CACHE}) and cannot be downloaded ({reason}); use "
                       f"{WAYS_OUT[0]}, or {WAYS_OUT[1]}, or {WAYS_OUT[2]}")


def resolve_weights(model_cfg: dict[str, Any], download: bool = True, checksum: bool = True) -> WeightSource:
    """The starting weights ``model_cfg`` asks for, made local: ``model.weights`` wins over ``model.pretrained``.

    With ``download`` False a hub file missing from the cache is an error instead of a download (nothing is fetched);
    ``checksum`` hashes a ``model.weights`` file for the record (training's preflight does, building the model not).
    """
    weights = model_cfg.get("weights")
    if weights:
        path = Path(str(weights)).expanduser()
        if not path.is_file():
            raise ConfigError(f"model.weights={str(weights)!r}: no such file (expected a {'/'.join(WEIGHT_SUFFIXES)} "
                              "state dict of the backbone, or a facemac checkpoint)")
        path = path.resolve()
        return WeightSource("file", ref=str(weights), file=str(path), sha256=file_sha256(path) if checksum else None)
    if not model_cfg.get("pretrained"):
        return WeightSource("none")
    from timm.models import get_pretrained_cfg

    name = str(model_cfg["timm_name"])
    pcfg = get_pretrained_cfg(name)  # the default tag's weights, as timm.create_model(name, pretrained=True) takes
    if pcfg is None or not (pcfg.hf_hub_id or pcfg.url):
        raise ConfigError(f"model.pretrained=true: timm publishes no pretrained weights for {name}; use "
                          f"{WAYS_OUT[0]} or {WAYS_OUT[2]}")
    if pcfg.hf_hub_id:
        repo, _, revision = pcfg.hf_hub_id.partition("@")
        files = (pcfg.hf_hub_filename,) if pcfg.hf_hub_filename else HUB_FILES
        path = hub_cached(repo, revision or None, files)
        if path is None:
            if hub_offline():
                raise _offline_error(name, f"hub {pcfg.hf_hub_id}", "HF_HUB_OFFLINE is set")
            if not download:
                raise _offline_error(name, f"hub {pcfg.hf_hub_id}", "downloads not allowed here")
            try:
                path = hub_fetch(repo, revision or None, files)
            except HubUnreachable as e:
                raise _offline_error(name, f"hub {pcfg.hf_hub_id}", str(e)) from None
        return WeightSource("hf-hub", ref=pcfg.hf_hub_id, file=path)
    try:
        path = url_fetch(pcfg.url, download)
    except HubUnreachable as e:
        raise _offline_error(name, pcfg.url, str(e)) from None
    return WeightSource("url", ref=pcfg.url, file=path)
