"""decode_image: every pixel format a scraped dataset holds becomes uint8 RGB, or a DataError with a reason."""

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from facemac.data.decode import ImageDecodeError, decode_image
from facemac.errors import DataError


def _encode(img: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, img)
    assert ok
    return buf.tobytes()


def test_color_jpeg_comes_back_rgb():
    rgb = np.zeros((16, 20, 3), np.uint8)
    rgb[..., 0] = 200  # red in RGB order
    out = decode_image(_encode(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), ".png"))
    assert out.shape == (16, 20, 3) and out.dtype == np.uint8
    assert out[0, 0].tolist() == [200, 0, 0]


@pytest.mark.parametrize("make", [
    lambda: np.full((8, 8), 77, np.uint8),  # grayscale
    lambda: np.dstack([np.full((8, 8, 3), 77, np.uint8), np.full((8, 8), 255, np.uint8)]),  # RGBA (BGRA)
    lambda: np.full((8, 8, 3), 77 * 257, np.uint16),  # 16-bit
])
def test_gray_rgba_and_16bit_are_converted(make):
    out = decode_image(_encode(make(), ".png"))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8
    assert np.all(out == 77)


def test_cmyk_jpeg_is_converted():
    buf = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(buf, "JPEG", quality=95)  # pure red in CMYK
    out = decode_image(buf.getvalue())
    assert out.shape == (8, 8, 3)
    assert out[4, 4, 0] > 200 and out[4, 4, 1] < 60 and out[4, 4, 2] < 60


@pytest.mark.parametrize("data,reason", [
    (b"", "empty"),
    (b"this is a text file, not a jpeg", "not a decodable image"),
])
def test_unreadable_bytes_raise_with_reason(data, reason):
    with pytest.raises(ImageDecodeError) as e:
        decode_image(data, "x.jpg")
    assert reason in e.value.reason and isinstance(e.value, DataError)


def test_truncated_jpeg_is_refused_or_decoded_never_crashes():
    full = _encode(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8), ".jpg")
    try:
        out = decode_image(full[: len(full) // 3], "t.jpg")
    except ImageDecodeError:
        return
    assert out.shape == (64, 64, 3)  # libjpeg may pad a truncated scan; a shape is all it may give


def test_decompression_bomb_refused_from_header():
    # A PNG header that claims 100000 x 100000 pixels; the refusal must come before any pixel is allocated.
    img = _encode(np.zeros((4, 4, 3), np.uint8), ".png")
    forged = img[:16] + (100000).to_bytes(4, "big") + (100000).to_bytes(4, "big") + img[24:]
    with pytest.raises(ImageDecodeError, match="too large"):
        decode_image(forged, "bomb.png")
