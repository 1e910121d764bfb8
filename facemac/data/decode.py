"""Decode encoded image bytes to uint8 RGB (libjpeg-turbo via simplejpeg for JPEGs, OpenCV for the rest), refusing
what cannot be a face: empty, truncated, oversized, undecodable, and JPEGs whose scan data libjpeg reports as corrupt.

libjpeg only *warns* about damaged entropy-coded data ("Corrupt JPEG data: bad Huffman code", "... extraneous bytes
before marker") and fills the image with whatever it decoded: valid headers around garbage come out as noise that a
MAC would annotate like a face. simplejpeg's strict mode turns those warnings into errors, at the cost of a normal
decode (same libjpeg-turbo, same pixels as OpenCV's decoder: checked in tests/test_core_decode.py).
"""

from __future__ import annotations

import cv2
import numpy as np
import simplejpeg

from facemac.data.libjpeg_messages import catch_libjpeg_messages
from facemac.errors import DataError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_PIXELS = 64_000_000  # larger than any face crop by orders of magnitude; beyond this is a decompression bomb

cv2.setNumThreads(1)  # DataLoader workers parallelise across images; OpenCV's own threads would oversubscribe


class ImageDecodeError(DataError):
    """One image could not be turned into pixels; ``reason`` is short and goes into failure lists."""

    def __init__(self, key: str, reason: str):
        super().__init__(f"{key}: {reason}")
        self.key = key
        self.reason = reason


_JPEG_FLAGS = {1: cv2.IMREAD_COLOR_RGB if hasattr(cv2, "IMREAD_COLOR_RGB") else cv2.IMREAD_COLOR,
               2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4, 8: cv2.IMREAD_REDUCED_COLOR_8}


def decode_image(data: bytes, key: str = "<bytes>", reduce: int = 1) -> np.ndarray:
    """Bytes of a JPEG/PNG/BMP/WebP → HxWx3 uint8 RGB. Grayscale, RGBA, CMYK and 16-bit inputs are converted.

    ``reduce`` (1, 2, 4, 8) decodes at 1/reduce scale, ceil(H/reduce) x ceil(W/reduce): for JPEGs inside libjpeg
    (DCT scaling, several times cheaper than a full decode), other formats are area-resized after decoding. Pixel
    (x, y) of the result covers source pixels around ((x + 0.5) * reduce - 0.5, ...) (see ``reduced_points``).
    """
    if not data:
        raise ImageDecodeError(key, "empty file")
    if reduce not in _JPEG_FLAGS:
        raise ValueError(f"reduce={reduce}: use 1, 2, 4 or 8")
    data = bytes(data)
    _check_size(data, key)
    _check_complete(data, key)
    buf = np.frombuffer(data, dtype=np.uint8)
    if data[:2] == b"\xff\xd8":  # JPEG: straight to 8-bit RGB (no metadata pass, no EXIF rotation), strictly
        img = decode_jpeg_strict(data, key, reduce)
        if img is not None:
            return img
        img = _imdecode_jpeg_strict(buf, _JPEG_FLAGS[reduce] | cv2.IMREAD_IGNORE_ORIENTATION, key)
        if reduce > 1 or _JPEG_FLAGS[1] == cv2.IMREAD_COLOR:
            img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
        return img
    img = _to_rgb(_imdecode(buf, cv2.IMREAD_UNCHANGED, key), key)
    if reduce > 1:
        h, w = img.shape[:2]
        img = cv2.resize(img, (-(-w // reduce), -(-h // reduce)), interpolation=cv2.INTER_AREA)
    return img


# libjpeg messages that mean the image data itself is damaged (strict mode raises them; libjpeg alone only warns)
CORRUPT_JPEG_MESSAGES = ("Corrupt JPEG data", "Premature end of JPEG file")


def decode_jpeg_strict(data: bytes, key: str, reduce: int = 1) -> np.ndarray | None:
    """JPEG bytes → HxWx3 uint8 RGB at 1/reduce scale (libjpeg DCT scaling, as OpenCV's IMREAD_REDUCED_*), refusing
    corrupt scan data with an ImageDecodeError; None when simplejpeg cannot handle the file for another reason (an
    exotic colour transform or subsampling, a benign header warning), so the caller falls back to OpenCV."""
    try:
        if reduce == 1:
            return simplejpeg.decode_jpeg(data, "RGB", strict=True)
        h, w, _, _ = simplejpeg.decode_jpeg_header(data, strict=False)
        # the smallest libjpeg scale whose output is at least ceil(h/reduce) x ceil(w/reduce) is exactly 1/reduce
        return simplejpeg.decode_jpeg(data, "RGB", min_height=-(-h // reduce), min_width=-(-w // reduce), strict=True)
    except ValueError as e:
        message = str(e).strip()
        if message.startswith(CORRUPT_JPEG_MESSAGES):
            raise ImageDecodeError(key, f"corrupt JPEG data (libjpeg: {message[:120]})") from None
        return None
    except KeyError:  # simplejpeg cannot name the file's chroma subsampling: OpenCV decides
        return None


def check_encoded(data: bytes, key: str) -> None:
    """The checks a decode starts with, without decoding: empty, decompression bomb, truncated (GPU path workers)."""
    if not data:
        raise ImageDecodeError(key, "empty file")
    _check_size(data, key)
    _check_complete(data, key)


def verify_jpeg(data: bytes, key: str) -> None:
    """Refuse corrupt JPEG scan data without producing pixels: a strict decode at 1/8 scale, which still
    entropy-decodes every block (where libjpeg notices damage) but skips most of the inverse DCT and colour work.
    For the GPU path, whose decoder (nvJPEG) does not report what libjpeg only warns about."""
    try:
        h, w, _, _ = simplejpeg.decode_jpeg_header(data, strict=False)
        simplejpeg.decode_jpeg(data, "GRAY", min_height=-(-h // 8), min_width=-(-w // 8), strict=True)
    except ValueError as e:
        message = str(e).strip()
        if message.startswith(CORRUPT_JPEG_MESSAGES):
            raise ImageDecodeError(key, f"corrupt JPEG data (libjpeg: {message[:120]})") from None
    except KeyError:  # a header simplejpeg cannot describe: the decoder that follows decides
        pass


def reduced_points(points: np.ndarray, reduce: int) -> np.ndarray:
    """Pixel coordinates in the full image → the same points in a 1/reduce decode (pixel centres at integers)."""
    return ((np.asarray(points, dtype=np.float32) + 0.5) / reduce - 0.5).astype(np.float32)


def header_shape(data: bytes) -> tuple[int, int] | None:
    """(height, width) from a PNG or JPEG header without decoding; None for other formats or broken headers."""
    return _header_shape(bytes(data)) if data else None


def _imdecode_jpeg_strict(buf: np.ndarray, flags: int, key: str) -> np.ndarray:
    """OpenCV's decode of a JPEG simplejpeg could not take, with libjpeg's warnings caught instead of printed on fd 2
    (facemac.data.libjpeg_messages) and, like simplejpeg's strict mode, corrupt scan data refused."""
    with catch_libjpeg_messages() as caught:
        try:
            img = _imdecode(buf, flags, key)
        except ImageDecodeError as e:
            failure = e
        else:
            failure = None
    message = caught.first(CORRUPT_JPEG_MESSAGES)
    if failure is not None:
        raise ImageDecodeError(key, failure.reason + (f" (libjpeg: {message[:120]})" if message else "")) from None
    if message:
        raise ImageDecodeError(key, f"corrupt JPEG data (libjpeg: {message[:120]})")
    return img


def _imdecode(buf: np.ndarray, flags: int, key: str) -> np.ndarray:
    try:
        img = cv2.imdecode(buf, flags)
    except cv2.error as e:  # OpenCV's own limits (CV_IO_MAX_IMAGE_PIXELS, ...) raise instead of returning None
        detail = str(e).strip().splitlines()[-1][-120:]
        raise ImageDecodeError(key, f"not a decodable image (OpenCV: {detail})") from None
    if img is None:
        raise ImageDecodeError(key, "not a decodable image (corrupt, truncated or not an image)")
    return img


def _to_rgb(img: np.ndarray, key: str) -> np.ndarray:
    """Any decoded layout (gray, gray+alpha, BGR, BGRA; 8 or 16 bit) → HxWx3 uint8 RGB."""
    if img.dtype == np.uint16:
        img = (img >> 8).astype(np.uint8)
    elif img.dtype != np.uint8:
        raise ImageDecodeError(key, f"unsupported pixel type {img.dtype}")
    if img.ndim == 2:
        return cv2.cvtColor(img, cv2.COLOR_GRAY2RGB)
    channels = img.shape[2]
    if channels == 1:
        return cv2.cvtColor(img[:, :, 0], cv2.COLOR_GRAY2RGB)
    if channels == 3:
        return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    if channels == 4:
        return cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    raise ImageDecodeError(key, f"unsupported channel count {channels}")


def _check_size(data: bytes, key: str) -> None:
    """Refuse decompression bombs from the header alone, before any pixel is allocated."""
    shape = _header_shape(data)
    if shape is not None and shape[0] * shape[1] > MAX_PIXELS:
        raise ImageDecodeError(key, f"image too large ({shape[1]}x{shape[0]} pixels, limit {MAX_PIXELS})")


def _check_complete(data: bytes, key: str) -> None:
    """Refuse cut-off files by their missing end marker: libjpeg pads a truncated scan with grey and only warns.

    Entropy-coded JPEG data stuffs every 0xFF with 0x00, so an end-of-image marker (FFD9) after the last
    start-of-scan (FFDA) is the file's own end; bytes after it (camera trailers, padding) are harmless.
    """
    if data[:2] == b"\xff\xd8":
        sos = data.rfind(b"\xff\xda")
        if sos >= 0 and data.rfind(b"\xff\xd9") < sos:
            raise ImageDecodeError(key, "truncated file (no JPEG end-of-image marker after the image data)")
    elif data[:8] == PNG_SIGNATURE and data.rfind(b"IEND") < 0:
        raise ImageDecodeError(key, "truncated file (no PNG IEND chunk)")


def _header_shape(data: bytes) -> tuple[int, int] | None:
    """(height, width) read from a PNG IHDR or JPEG SOF header; None for other formats.

    The JPEG walk jumps from segment to segment over the whole file (APP segments before the frame header may
    hold hundreds of KiB of EXIF/ICC data), so it costs a few steps, not a scan of the bytes.
    """
    b = data
    if b[:8] == PNG_SIGNATURE and len(b) >= 24:
        return int.from_bytes(b[20:24], "big"), int.from_bytes(b[16:20], "big")
    if b[:2] == b"\xff\xd8":
        i = 2
        while i + 9 < len(b):
            if b[i] != 0xFF:
                i += 1
                continue
            marker = b[i + 1]
            if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7 or marker == 0xFF:
                i += 1 if marker == 0xFF else 2
                continue
            if marker in (0xD9, 0xDA):  # end of image / start of scan before any frame header
                return None
            length = int.from_bytes(b[i + 2:i + 4], "big")
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                return int.from_bytes(b[i + 5:i + 7], "big"), int.from_bytes(b[i + 7:i + 9], "big")
            i += 2 + length
    return None
