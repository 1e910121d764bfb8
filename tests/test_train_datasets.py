"""Smoke runs through the dataset registry: CelebA layout (with landmarks, ArcFace warp) and MAAD-Face (0 = undefined)."""

import json

import numpy as np
import torch

from facemac.data.registry import build_table
from facemac.training.run import train
from tests.train_helpers import write_celeba_tree, write_maadface_tree

SMOKE = ["logger=none", "train.epochs=1", "train.limit_batches=1", "data.batch_size=8", "data.eval_batch_size=8",
         "data.num_workers=0", "train.progress=false"]


def test_vit_b_on_a_celeba_layout_tree(make_cfg, tmp_path):
    root = write_celeba_tree(tmp_path / "celeba", n=30)
    # ViT-B/16 at 32 px (timm img_size=32: 2x2 patches) keeps the smoke run quick on CPU
    cfg = make_cfg("train", SMOKE + ["model=vit_b", "model.input_size=32", "model.pretrained=false", "dataset=celeba",
                                     f"dataset.root={root}"])
    result = train(cfg)
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    assert len(best["attributes"]) == 40 and best["data_cfg"]["align"] == "arcface"
    assert best["data_cfg"]["geometry"] == "loose" and best["model_cfg"]["timm_name"] == "vit_base_patch16_224"
    assert set(result["test"]["per_attribute"]) == set(best["attributes"])
    assert (tmp_path / "run" / "DONE").exists()


def test_maadface_tree_with_undefined_cells(make_cfg, tmp_path):
    root = write_maadface_tree(tmp_path / "maad", n_ids=20, per_id=3)
    overrides = SMOKE + ["model.timm_name=test_resnet", "model.input_size=32", "dataset=maadface",
                         f"dataset.root={root}", "dataset.images_dir=images", "dataset.val_fraction=0.25",
                         "dataset.test_fraction=0.25"]
    cfg = make_cfg("train", overrides)
    table = build_table(cfg.dataset, cfg.paths.cache_dir)
    assert not table.mask.all()  # the 0-coded cells are masked, not negatives
    train(cfg)
    doc = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert len(doc["test"]["per_attribute"]) == 47
    best = torch.load(tmp_path / "run" / "checkpoints" / "best.pt", weights_only=True)
    # VGGFace2's landmarks (bb_landmark/ under the root) make the ArcFace warp the default, as for CelebA
    assert best["data_cfg"]["align"] == "arcface" and table.landmarks is not None
    assert np.isfinite(best["thresholds"]).all() and np.isfinite(best["counting_thresholds"]).all()


def test_collated_batches_are_channels_last_with_the_same_pixels():
    """collate_faces stacks HWC memory once and hands on an NCHW channels-last view: the values of a plain NCHW stack,
    without its strided copy; normalize_on_device gives either layout on request."""
    import numpy as np
    import torch

    from facemac.data.dataset import collate_faces, normalize_on_device

    rng = np.random.default_rng(0)
    items = [{"index": i, "ok": True, "image": torch.from_numpy(rng.integers(0, 256, (8, 6, 3), dtype=np.uint8))
              .permute(2, 0, 1), "labels": torch.zeros(2), "mask": torch.ones(2, dtype=torch.bool)} for i in range(5)]
    batch = collate_faces(items)["image"]
    assert batch.shape == (5, 3, 8, 6) and batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch, torch.stack([it["image"].contiguous() for it in items]))
    plain = normalize_on_device(batch, [0.5] * 3, [0.5] * 3, torch.device("cpu"))
    last = normalize_on_device(batch, [0.5] * 3, [0.5] * 3, torch.device("cpu"), channels_last=True)
    assert plain.is_contiguous() and last.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(plain, last) and torch.allclose(plain[0, :, 0, 0], batch[0, :, 0, 0].float() / 127.5 - 1)
