"""Bad image files: each kind decodes to sane RGB pixels or is refused with a reason, alone and in a DataLoader."""

from __future__ import annotations

import numpy as np
import pytest
from torch.utils.data import DataLoader

from facemac.data.dataset import FaceDataset, collate_faces
from facemac.data.decode import MAX_PIXELS, ImageDecodeError, _header_shape, decode_image
from facemac.data.folders import read_identity_folders
from facemac.data.preprocess import Preprocessor
from facemac.errors import DataError
from tests.badimages import BOMB_SIDE, SIZE, expected_rgb, ok_paths, skip_paths, write_bad_images
from tests.readers_fixtures import write_image


@pytest.fixture(scope="module")
def bad_tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad")
    expected = write_bad_images(root)
    write_image(root / "good_person" / "a.jpg", 3, size=(SIZE[1], SIZE[0]))  # a second identity, all fine
    expected["good_person/a.jpg"] = "ok"
    return root, expected


def test_generator_covers_the_kinds_the_issue_lists(bad_tree):
    _, expected = bad_tree
    names = {p.rsplit("/", 1)[-1] for p in expected}
    for kind in ("corrupt.jpg", "corrupt_scan.jpg", "truncated.jpg", "empty.jpg", "text.jpg", "gray.jpg", "gray.png",
                 "rgba.png", "rgb16.png", "cmyk.jpg", "bomb.png", "bomb.jpg", "good.jpg"):
        assert kind in names
    assert all(e == "ok" or e.startswith("skip:") for e in expected.values())


@pytest.mark.parametrize("name", [
    "good.jpg", "progressive.jpg", "gray.jpg", "gray.png", "rgba.png", "gray_alpha.png", "palette.png", "rgb16.png",
    "cmyk.jpg", "trailing_bytes.jpg", "jpeg_named.png", "empty.jpg", "text.jpg", "corrupt.jpg", "corrupt_scan.jpg",
    "truncated.jpg",
    "truncated.png", "bomb.png", "bomb.jpg", "bomb_deep.jpg",
])
def test_decode_image_on_each_kind(bad_tree, name):
    root, expected = bad_tree
    rel = f"bad_person/{name}"
    data = (root / rel).read_bytes()
    if expected[rel] == "ok":
        out = decode_image(data, rel)
        assert out.shape == (*SIZE, 3) and out.dtype == np.uint8 and out.flags.c_contiguous
        rgb, tol = expected_rgb(rel)
        diff = np.abs(out.astype(int) - np.array(rgb)).max()
        assert diff <= tol, f"{rel}: decoded colour {out[0, 0].tolist()} vs {rgb} (tolerance {tol})"
    else:
        with pytest.raises(ImageDecodeError) as e:
            decode_image(data, rel)
        assert expected[rel][len("skip:"):] in e.value.reason
        assert isinstance(e.value, DataError) and rel in str(e.value)


def test_bomb_headers_are_read_without_decoding(bad_tree):
    root, _ = bad_tree
    for name in ("bomb.png", "bomb.jpg", "bomb_deep.jpg"):
        data = (root / "bad_person" / name).read_bytes()
        assert len(data) < 200_000  # a cheap file ...
        assert _header_shape(data) == (BOMB_SIDE, BOMB_SIDE)  # ... whose header claims 3.6 gigapixels
        assert BOMB_SIDE ** 2 > MAX_PIXELS


@pytest.mark.parametrize("side", [4000, 8000])  # 16 and 64 megapixels: at and below the limit are not bombs
def test_large_but_legal_headers_pass_the_size_check(side):
    from tests.badimages import _jpeg_claiming, _cv_encode

    jpg = _cv_encode(np.zeros((8, 8, 3), np.uint8), ".jpg")
    assert _header_shape(_jpeg_claiming(jpg, side, side)) == (side, side)
    assert side * side <= MAX_PIXELS


@pytest.mark.parametrize("seed", range(8))
def test_garbage_scan_data_is_refused_not_decoded_as_noise(seed):
    """Valid headers + garbage entropy-coded data + an end marker: libjpeg only warns and returns noise; the strict
    decode refuses it with libjpeg's own message."""
    from tests.badimages import _garbage_scan_jpeg

    with pytest.raises(ImageDecodeError) as e:
        decode_image(_garbage_scan_jpeg(seed), "scan.jpg")
    assert "corrupt JPEG data (libjpeg: Corrupt JPEG data" in e.value.reason


@pytest.mark.parametrize("reduce", [1, 2, 4])
def test_damaged_huffman_codes_are_refused_at_every_decode_scale(reduce):
    """64 bytes in the middle of a face's scan overwritten: caught at full and DCT-reduced scale alike (training
    decodes reduced when the warp shrinks anyway). JPEG has no checksum: damage that happens to form valid Huffman
    codes decodes as wrong blocks and is not detectable (docs/reliability.md gives the rates)."""
    import cv2

    rng = np.random.default_rng(3)
    face = cv2.resize(rng.integers(0, 256, (14, 14, 3), dtype=np.uint8), (112, 112), interpolation=cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(".jpg", face, [cv2.IMWRITE_JPEG_QUALITY, 90])
    data = bytearray(buf.tobytes())
    sos = data.find(b"\xff\xda")
    start, end = sos + 2 + int.from_bytes(data[sos + 2:sos + 4], "big"), data.rfind(b"\xff\xd9")
    assert decode_image(bytes(data), "x.jpg", reduce).shape[0] == -(-112 // reduce)
    mid = start + (end - start) // 3
    data[mid:mid + 64] = np.random.default_rng(0).integers(0, 255, 64, dtype=np.uint8).tobytes()  # no 0xFF
    with pytest.raises(ImageDecodeError, match="corrupt JPEG data"):
        decode_image(bytes(data), "x.jpg", reduce)


@pytest.mark.parametrize("cut", [0.05, 0.3, 0.6, 0.9, 0.99])
def test_truncated_jpeg_at_any_point_is_skipped(cut):
    from tests.badimages import _noise_jpeg

    jpg = _noise_jpeg(7)
    with pytest.raises(ImageDecodeError) as e:
        decode_image(jpg[:int(len(jpg) * cut)], "cut.jpg")
    assert "truncated" in e.value.reason or "not a decodable image" in e.value.reason
    if cut >= 0.3:  # past the headers: the missing end-of-image marker names the problem
        assert "truncated file" in e.value.reason


def _dataset(root):
    table = read_identity_folders(root, geometry="unknown")
    return table, FaceDataset(table, Preprocessor("resize", 16))


def test_face_dataset_yields_the_good_and_lists_the_bad(bad_tree):
    root, expected = bad_tree
    table, ds = _dataset(root)
    assert sorted(table.keys) == sorted(expected)  # every file with an image extension is in the table
    batch = collate_faces([ds[i] for i in range(len(ds))])
    got_ok = sorted(table.keys[i] for i in batch["index"].tolist())
    assert got_ok == ok_paths(expected)
    assert batch["image"].shape == (len(got_ok), 3, 16, 16)
    failures = {table.keys[i]: reason for i, reason in batch["failures"]}
    assert sorted(failures) == skip_paths(expected)
    for rel, reason in failures.items():
        assert expected[rel][len("skip:"):] in reason, (rel, reason)
    # the pixels that reach the model are the decoded colours, resized (flat images stay flat)
    for row, i in enumerate(batch["index"].tolist()):
        key = table.keys[i]
        if key.startswith("bad_person/"):
            rgb, tol = expected_rgb(key)
            img = batch["image"][row].permute(1, 2, 0).numpy().astype(int)
            assert np.abs(img - np.array(rgb)).max() <= tol + 1, key


def test_face_dataset_in_a_dataloader_with_workers(bad_tree):
    """The same through worker processes and several batches: failures travel back through collate."""
    root, expected = bad_tree
    table, ds = _dataset(root)
    loader = DataLoader(ds, batch_size=4, num_workers=2, collate_fn=collate_faces, shuffle=False)
    ok, failed = [], {}
    for batch in loader:
        ok += [table.keys[i] for i in batch["index"].tolist()]
        failed.update({table.keys[i]: r for i, r in batch["failures"]})
    assert sorted(ok) == ok_paths(expected) and sorted(failed) == skip_paths(expected)


def test_a_batch_of_only_bad_images_is_empty_not_an_error(bad_tree):
    root, expected = bad_tree
    table, ds = _dataset(root)
    bad_rows = [i for i, k in enumerate(table.keys) if expected[k] != "ok"]
    batch = collate_faces([ds[i] for i in bad_rows])
    assert batch["image"].shape[0] == 0 and len(batch["index"]) == 0
    assert sorted(i for i, _ in batch["failures"]) == bad_rows


def test_a_file_deleted_after_indexing_is_reported(bad_tree, tmp_path):
    root, _ = bad_tree
    write_image(tmp_path / "p" / "x.jpg", 1)
    write_image(tmp_path / "p" / "y.jpg", 2)
    table, ds = _dataset(tmp_path)
    (tmp_path / "p" / "x.jpg").unlink()
    batch = collate_faces([ds[0], ds[1]])
    assert batch["index"].tolist() == [1]
    (i, reason), = batch["failures"]
    assert i == 0 and "FileNotFoundError" in reason


def test_libjpeg_warnings_never_reach_fd_2_for_files_listed_as_failures(bad_tree, capfd):
    """#22 item 11: OpenCV's bundled libjpeg printed "Corrupt JPEG data: 392 extraneous bytes before marker 0xdc"
    straight to fd 2 (between log lines) for corrupt.jpg, which the run then listed in failures.csv anyway."""
    root, expected = bad_tree
    table, ds = _dataset(root)
    for workers in (0, 2):  # in this process, and in DataLoader workers (which inherit its fd 2)
        capfd.readouterr()
        loader = DataLoader(ds, batch_size=8, collate_fn=collate_faces, num_workers=workers)
        failures = {table.keys[i]: reason for batch in loader for i, reason in batch["failures"]}
        assert sorted(failures) == skip_paths(expected)
        err = capfd.readouterr().err
        assert "JPEG" not in err, err
        reason = failures["bad_person/corrupt.jpg"]
        assert reason.startswith("not a decodable image") and "(libjpeg: Corrupt JPEG data: " in reason


def test_other_output_written_to_fd_2_while_libjpeg_is_caught_is_passed_on(capfd):
    import os
    import threading

    from facemac.data.libjpeg_messages import catch_libjpeg_messages

    with catch_libjpeg_messages() as caught:
        os.write(2, b"Corrupt JPEG data: bad Huffman code\n")
        t = threading.Thread(target=lambda: os.write(2, b"epoch 1: 50%|#####     |\n"))
        t.start()
        t.join()
    assert caught.lines == ["Corrupt JPEG data: bad Huffman code"]
    assert capfd.readouterr().err == "epoch 1: 50%|#####     |\n"
