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


def _jpeg_variants() -> dict[str, bytes]:
    """JPEGs as datasets hold them: 4:2:0 and 4:4:4 chroma, progressive, grayscale, odd sizes."""
    rng = np.random.default_rng(4)
    base = cv2.resize(rng.integers(0, 256, (9, 13, 3), dtype=np.uint8), (117, 93), interpolation=cv2.INTER_CUBIC)
    out = {
        "420": _encode(base, ".jpg"),
        "444": cv2.imencode(".jpg", base, [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444])[1]
        .tobytes(),
        "gray": _encode(cv2.cvtColor(base, cv2.COLOR_BGR2GRAY), ".jpg"),
        "odd": _encode(base[:37, :51], ".jpg"),
    }
    buf = io.BytesIO()
    Image.fromarray(base[..., ::-1]).save(buf, "JPEG", quality=90, progressive=True)
    out["progressive"] = buf.getvalue()
    return out


@pytest.mark.parametrize("reduce,flag", [(1, cv2.IMREAD_COLOR), (2, cv2.IMREAD_REDUCED_COLOR_2),
                                         (4, cv2.IMREAD_REDUCED_COLOR_4), (8, cv2.IMREAD_REDUCED_COLOR_8)])
@pytest.mark.parametrize("kind", ["420", "444", "gray", "odd", "progressive"])
def test_strict_jpeg_decode_gives_opencvs_pixels(kind, reduce, flag):
    """The strict decoder (simplejpeg) and OpenCV's are the same libjpeg-turbo: identical pixels at every DCT scale,
    so training, cached faces and annotation see what they saw before corrupt-scan detection existed."""
    data = _jpeg_variants()[kind]
    ref = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION),
                       cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(decode_image(data, kind, reduce), ref)


def test_a_benign_libjpeg_warning_still_decodes():
    """Strict mode also raises on harmless header warnings (an unknown JFIF version): those fall back to OpenCV's
    lenient decode instead of being listed as broken."""
    img = np.random.default_rng(0).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    data = bytearray(_encode(img, ".jpg"))
    i = data.find(b"JFIF\x00")
    data[i + 5] = 2  # JFIF 2.01: libjpeg warns "unknown JFIF revision number"
    out = decode_image(bytes(data), "v2.jpg")
    assert out.shape == (30, 40, 3)
    np.testing.assert_array_equal(out, decode_image(_encode(img, ".jpg"), "v1.jpg"))
