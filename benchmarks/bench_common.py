"""What the benchmark scripts share: model names as the stages take them."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

ROOT = Path(__file__).resolve().parents[1]


def model_spec(name: str, size: int | None, default_size: int = 112) -> tuple[str, int]:
    """A conf/model name (demo_tiny, resnet18, vit_s, ...) → (timm name, input size); else a timm name as given."""
    conf = ROOT / "conf" / "model" / f"{name}.yaml"
    if conf.is_file():
        m = OmegaConf.load(conf)
        return str(m.timm_name), int(size or m.input_size)
    return name, int(size or default_size)
