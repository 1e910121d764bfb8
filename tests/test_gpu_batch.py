"""The GPU batch path (facemac/data/gpu_batch.py) checked on the CPU, so CI covers it without a GPU: the torch warp
against OpenCV's, the batched decode against the CPU decoder, bad files listed the same way, and an annotation run
through the path against the DataLoader path. Only nvJPEG itself needs a GPU (benchmarks/gpu_check.sh)."""

import cv2
import numpy as np
import pytest
import torch

from facemac.data.dataset import FaceDataset, collate_faces
from facemac.data.decode import decode_image
from facemac.data.folders import read_identity_folders
from facemac.data.gpu_batch import EncodedItems, collate_encoded, decode_jpegs, device_batch, warp_batch
from facemac.data.preprocess import ARCFACE_TEMPLATE_112, Preprocessor, similarity_transform
from tests.badimages import ok_paths, skip_paths, write_bad_images

CPU = torch.device("cpu")
# torch's float bilinear vs OpenCV's fixed point (1/32-pixel positions, 11-bit weights), in grey levels
WARP_MAX, WARP_MEAN = 2, 0.1  # measured: max 1, mean 0.00003 (landmarks) to 0.07 (crop scales)
# an f x f box average standing in for libjpeg's 1/f DCT-scaled decode (data.reduced_decode); measured on demo
# faces: max 8, mean 0.26, p99 2 (a plain warp of the full decode is off by up to 60, mean 1.5)
REDUCED_MAX, REDUCED_MEAN, REDUCED_P99 = 16, 0.5, 3


def faces(n: int, h: int = 112, w: int = 112, seed: int = 0, noise: int = 25) -> list[np.ndarray]:
    """Smooth face-sized RGB images with pixel noise on top (what bilinear sampling is sensitive to)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        coarse = cv2.resize(rng.integers(0, 256, (7, 9, 3), dtype=np.uint8), (w, h), interpolation=cv2.INTER_CUBIC)
        fine = rng.integers(-noise, noise + 1, (h, w, 3))
        out.append(np.clip(coarse.astype(int) + fine, 0, 255).astype(np.uint8))
    return out


def cv_warp(img: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    return cv2.warpAffine(img, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def torch_warp(imgs: list[np.ndarray], ms: list[np.ndarray], size: int, reduce: int = 1) -> np.ndarray:
    x = torch.from_numpy(np.stack(imgs)).permute(0, 3, 1, 2)
    return warp_batch(x, ms, size, reduce).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("size", [64, 112, 160])
@pytest.mark.parametrize("hw", [(112, 112), (218, 178)])
def test_torch_warp_matches_opencv_warp(size, hw):
    """Landmark alignments (rotation, scale, shift; shrinking and enlarging; square and CelebA-shaped sources,
    corners outside the image → replicated borders)."""
    rng = np.random.default_rng(size + hw[0])
    imgs = faces(12, *hw)
    pre = Preprocessor("arcface", size)
    centre = ARCFACE_TEMPLATE_112 * (hw[1] / 112) + [0, (hw[0] - hw[1]) / 2]
    ms = [similarity_transform(centre + rng.normal(0, 6, (5, 2)), pre.template) for _ in imgs]
    ref = np.stack([cv_warp(im, m, size) for im, m in zip(imgs, ms)])
    diff = np.abs(torch_warp(imgs, ms, size).astype(int) - ref)
    assert diff.max() <= WARP_MAX and diff.mean() <= WARP_MEAN, (diff.max(), diff.mean())


def test_torch_warp_of_aligned_crops_matches_opencv():
    """Stored ArcFace crops scaled to the input size (the annotation case: crop_matrix)."""
    imgs = faces(8)
    for size in (64, 96, 128):
        pre = Preprocessor("arcface", size)
        m = pre.crop_matrix(112, 112)
        ref = np.stack([cv_warp(im, m, size) for im in imgs])
        diff = np.abs(torch_warp(imgs, [m] * len(imgs), size).astype(int) - ref)
        assert diff.max() <= WARP_MAX and diff.mean() <= WARP_MEAN, (size, diff.max(), diff.mean())


def test_box_reduced_warp_stands_in_for_the_dct_reduced_decode():
    """250x250 JPEG faces aligned to 112: the CPU path decodes them at 1/2 scale (libjpeg DCT scaling); the batch
    path box-averages the full decode by 2 and warps with the same adapted matrix."""
    pre = Preprocessor("arcface", 112, reduced_decode=True)
    rng = np.random.default_rng(1)
    datas, lms, full, ms = [], [], [], []
    for im in faces(16, 250, 250, seed=2, noise=6):  # photo-like: JPEG q92 keeps little pixel noise
        data = cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
        lm = ARCFACE_TEMPLATE_112 * (250 / 112) + rng.normal(0, 3, (5, 2))
        m, f = pre.warp_plan(None, lm)
        assert f == 2
        datas.append(data), lms.append(lm), full.append(decode_image(data)), ms.append(m)
    ref = np.stack([pre.load(d, "x", lm) for d, lm in zip(datas, lms)])
    diff = np.abs(torch_warp(full, ms, 112, reduce=2).astype(int) - ref)
    assert diff.max() <= REDUCED_MAX and diff.mean() <= REDUCED_MEAN and np.quantile(diff, 0.99) <= REDUCED_P99


def test_batched_decode_gives_the_cpu_decoders_pixels_and_none_for_refused_files():
    imgs = faces(4, 40, 56)
    datas = [cv2.imencode(".jpg", im)[1].tobytes() for im in imgs]
    out = decode_jpegs(datas + [b"\xff\xd8 not a jpeg at all \xff\xd9"], CPU)
    assert out[-1] is None and all(t is not None for t in out[:-1])
    for t, d in zip(out, datas):
        np.testing.assert_array_equal(t.permute(1, 2, 0).numpy(), decode_image(d))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Aligned 112x112 JPEG crops, one PNG, and every bad-file kind, in identity folders."""
    root = tmp_path_factory.mktemp("gpu-tree")
    for i, im in enumerate(faces(10)):
        (root / f"id{i % 3}").mkdir(exist_ok=True)
        cv2.imwrite(str(root / f"id{i % 3}" / f"{i:02d}.jpg"), im, [cv2.IMWRITE_JPEG_QUALITY, 90])
    cv2.imwrite(str(root / "id0" / "png.png"), faces(1, seed=9)[0])
    expected = write_bad_images(root)
    return root, expected


@pytest.mark.parametrize("verify", [True, False])
def test_device_batches_equal_the_cpu_path_and_list_the_same_bad_files(tree, verify):
    root, expected = tree
    table = read_identity_folders(root, geometry="arcface_112")
    pre = Preprocessor("arcface", 64)
    rows = list(range(len(table)))
    cpu = collate_faces([FaceDataset(table, pre)[i] for i in rows])
    images, index, failures = device_batch(collate_encoded([EncodedItems(table, pre, verify)[i] for i in rows]),
                                           table, pre, CPU)
    failed = {table.keys[i]: r for i, r in failures}
    bad = set(skip_paths(expected))
    if verify:
        assert set(failed) == bad
    else:  # without verification, garbage scan data is decoded (as noise): only the verified path lists it
        assert set(failed) == bad - {"bad_person/corrupt_scan.jpg"}
    for key in failed:
        assert expected[key].removeprefix("skip:") in failed[key], (key, failed[key])
    ok = sorted(set(table.keys) - bad)
    assert sorted(table.keys[i] for i in cpu["index"].tolist()) == ok
    pos = {i: j for j, i in enumerate(index.tolist())}
    for row, i in enumerate(cpu["index"].tolist()):
        diff = (images[pos[i]].int() - cpu["image"][row].int()).abs()
        assert diff.max() <= WARP_MAX + 1, (table.keys[i], int(diff.max()))  # + CMYK/gray conversion rounding
    assert images.dtype == torch.uint8 and images.shape[1:] == (3, 64, 64)
    assert set(ok_paths(expected)) <= set(table.keys[i] for i in index.tolist())


def test_annotation_through_the_batch_path_matches_the_dataloader_path(make_cfg, tmp_path, tree):
    import pandas as pd

    from facemac.annotation.run import annotate
    from tests.annotate_helpers import ATTRS, make_checkpoint

    root, expected = tree
    ck = make_checkpoint(tmp_path / "m.pt", size=64)
    runs = {}
    for name, extra in (("cpu", ["annotate.gpu_decode=false"]), ("batch", ["annotate.gpu_decode=true"])):
        annotate(make_cfg("annotate", ["logger=none", f"ckpt={ck}", "targets=dcface", f"targets.dcface.root={root}",
                                       "annotate.batch_size=7", "annotate.num_workers=0", "annotate.num_threads=1",
                                       "annotate.precision=fp32", "annotate.max_failure_fraction=0.5",
                                       # the bad-file kinds come in sizes no aligned crop has: the pixel check would
                                       # (rightly) refuse the tree; this test is about the decode paths
                                       "annotate.pixel_check.enabled=false", *extra],
                          output_dir=tmp_path / name))
        ann = tmp_path / name / "annotations" / "dcface"
        runs[name] = (pd.concat([pd.read_parquet(p) for p in sorted(ann.glob("part-*.parquet"))])
                      .sort_values("path", ignore_index=True), pd.read_csv(ann / "failures.csv"))
    (a, fa), (b, fb) = runs["cpu"], runs["batch"]
    assert list(a["path"]) == list(b["path"]) and sorted(fa["path"]) == sorted(fb["path"])
    np.testing.assert_allclose(a[ATTRS].to_numpy(), b[ATTRS].to_numpy(), atol=0.02)


CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (benchmarks/gpu_check.sh)")
# nvJPEG's IDCT and chroma upsampling are not libjpeg-turbo's: a few grey levels apart
NVJPEG_MAX, NVJPEG_MEAN = 8, 1.0


@CUDA
def test_nvjpeg_decode_is_close_to_libjpeg():
    imgs = faces(16, 112, 112, noise=6)
    datas = [cv2.imencode(".jpg", im, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes() for im in imgs]
    out = decode_jpegs(datas, torch.device("cuda"))
    for t, d in zip(out, datas):
        assert t is not None and t.device.type == "cuda"
        diff = np.abs(t.permute(1, 2, 0).cpu().numpy().astype(int) - decode_image(d))
        assert diff.max() <= NVJPEG_MAX and diff.mean() <= NVJPEG_MEAN, (diff.max(), diff.mean())


@CUDA
def test_device_batches_on_cuda_match_the_cpu_path(tree):
    root, expected = tree
    table = read_identity_folders(root, geometry="arcface_112")
    pre = Preprocessor("arcface", 64)
    rows = list(range(len(table)))
    cpu = collate_faces([FaceDataset(table, pre)[i] for i in rows])
    images, index, failures = device_batch(collate_encoded([EncodedItems(table, pre)[i] for i in rows]), table, pre,
                                           torch.device("cuda"))
    assert images.device.type == "cuda"
    assert sorted(table.keys[i] for i, _ in failures) == sorted(skip_paths(expected))
    pos = {i: j for j, i in enumerate(index.tolist())}
    for row, i in enumerate(cpu["index"].tolist()):
        diff = (images[pos[i]].cpu().int() - cpu["image"][row].int()).abs()
        assert diff.max() <= NVJPEG_MAX + WARP_MAX and diff.float().mean() <= NVJPEG_MEAN, table.keys[i]
