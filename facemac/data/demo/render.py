"""Paint one demo face at 112x112 in ArcFace-aligned geometry, with every attribute drawn large enough to survive 64 px.

Shapes are given in 112-pixel face coordinates and drawn with anti-aliased, sub-pixel OpenCV primitives straight
through the image's small pose transform (no resampling), then the image is lit, blurred and noised. Each attribute's
cue is at least ~5 px wide at 112 px (~3 px at 64 px): thick lines, filled shapes, distinct colours.
Bump RENDERER_VERSION whenever the pixels change: it is part of the cache digest.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np

from facemac.data.demo.sampling import Identity, Shot
from facemac.data.preprocess import ARCFACE_TEMPLATE_112, similarity_transform

RENDERER_VERSION = 2  # 2: targets stored as FR-aligned crops (align_to_template); visible open mouth
SIZE = 112
SS = 1  # supersampling factor of the drawing canvas
_SHIFT = 4  # fractional bits of OpenCV's sub-pixel drawing
_FX = SS * (1 << _SHIFT)
_AA = cv2.LINE_AA
CX = 56.0  # face centre line


class Pen:
    """Draws shapes given in 112-pixel face coordinates through the image's pose transform onto the canvas."""

    def __init__(self, img: np.ndarray, m: np.ndarray):
        self.img = img
        self.m = np.asarray(m, np.float64)  # 2x3 similarity, face coords -> 112-pixel image coords
        self._a = self.m[:, :2].T * _FX  # the same map straight to fixed-point canvas coordinates
        self._b = self.m[:, 2] * _FX + 0.5
        self.scale = float(np.hypot(self.m[0, 0], self.m[1, 0]))
        self.angle = float(np.degrees(np.arctan2(self.m[1, 0], self.m[0, 0])))

    def _p(self, pts) -> np.ndarray:
        pts = np.asarray(pts, np.float64).reshape(-1, 2)
        return np.floor(pts @ self._a + self._b).astype(np.int32)

    def _w(self, width: float) -> int:
        return max(1, int(round(width * self.scale * SS)))

    def fill(self, pts, colour) -> None:
        cv2.fillPoly(self.img, [self._p(pts)], _c(colour), _AA, _SHIFT)

    def line(self, pts, colour, width: float, closed: bool = False) -> None:
        cv2.polylines(self.img, [self._p(pts)], closed, _c(colour), self._w(width), _AA, _SHIFT)

    def ellipse(self, centre, axes, colour, width: float = -1, angle: float = 0.0) -> None:
        c = tuple(int(v) for v in self._p(centre)[0])
        a = tuple(max(1, int(round(v * self.scale * _FX))) for v in axes)
        cv2.ellipse(self.img, c, a, angle + self.angle, 0, 360, _c(colour), -1 if width < 0 else self._w(width),
                    _AA, _SHIFT)


def _c(v) -> tuple[float, float, float]:
    r, g, b = v
    return (min(max(float(r), 0.0), 255.0), min(max(float(g), 0.0), 255.0), min(max(float(b), 0.0), 255.0))


@lru_cache(maxsize=256)
def _unit_arc(a0: float, a1: float, n: int) -> np.ndarray:
    t = np.radians(np.linspace(a0, a1, n))
    return np.stack([np.cos(t), np.sin(t)], 1)


def _arc(cx: float, cy: float, ax: float, ay: float, a0: float, a1: float, n: int = 24) -> np.ndarray:
    """Points of an elliptical arc (angles in degrees, y down)."""
    return _unit_arc(float(a0), float(a1), n) * (ax, ay) + (cx, cy)


@lru_cache(maxsize=8)
def _unit_parabola(n: int) -> np.ndarray:
    u = np.linspace(-1.0, 1.0, n)
    return np.stack([u, u * u], 1)


def _curve(x0: float, x1: float, y_ends: float, y_mid: float, n: int = 16) -> np.ndarray:
    """Parabola through (x0, y_ends), (mid, y_mid), (x1, y_ends)."""
    return _unit_parabola(n) * ((x1 - x0) / 2, y_ends - y_mid) + ((x0 + x1) / 2, y_mid)


def _head_outline(ident: Identity) -> np.ndarray:
    """Dome above the cheeks, then a square jaw with a wide chin (men) or a tapering V chin (women)."""
    w = ident.width
    top = _arc(CX, 50, w, 53, 180, 360, 28)
    if ident.attrs["Male"]:
        fr = np.array([1.0, 1.0, 0.97, 0.90, 0.78, 0.52, 0.42]) + ident.jaw
        ys = np.array([50, 66, 80, 92, 101, 109, 113.0])
    else:
        fr = np.array([1.0, 0.96, 0.86, 0.70, 0.50, 0.26, 0.10]) + ident.jaw
        ys = np.array([50, 64, 78, 90, 100, 108, 113.0])
    right = np.stack([CX + w * fr, ys], 1)
    left = np.stack([CX - w * fr[::-1], ys[::-1]], 1)
    return np.concatenate([top, right, left])


def _hair(img: Pen, ident: Identity) -> None:
    """Hair cap over the dome, cut by the hairline, with side strips down to the ears (long hair is drawn apart)."""
    w, hair = ident.width, ident.hair
    # Cap: the dome grown by 5 px, cut by the hairline; the sides come down to the ears as 10 px strips.
    outer = _arc(CX, 50, w + 5, 58, 180, 360, 28)
    side = 56.0 if ident.attrs["Male"] else 60.0
    hairline = np.concatenate([
        [[CX + w + 5, side], [CX + w - 6, side], [CX + w - 8, 34]],
        _curve(CX + w - 10, CX - w + 10, 30, 25)[1:-1],
        [[CX - w + 8, 34], [CX - w + 6, side], [CX - w - 5, side]],
    ])
    img.fill(np.concatenate([[[CX - w - 5, side]], outer, hairline]), hair)
    if ident.attrs["Bangs"]:  # fringe over the forehead, jagged lower edge, stopping above the eyebrows
        xs = np.linspace(CX + w - 6, CX - w + 6, 11)
        ys = np.where(np.arange(11) % 2 == 0, 34.0, 31.0)
        img.fill(np.concatenate([[[CX - w + 2, 22], [CX + w - 2, 22]], np.stack([xs, ys], 1)]), hair)
    dark = hair * 0.7  # a few strands so hair reads as hair
    for dx in (-18, -6, 6, 18):
        img.line([[CX + dx, 4], [CX + dx * 1.3, 18]], dark, 1.5)


def _long_hair(img: Pen, ident: Identity) -> None:
    """Women's hair behind the head, falling past the bottom of the frame on both sides."""
    w = ident.width
    pts = np.concatenate([_arc(CX, 50, w + 9, 60, 180, 360, 24), [[CX + w + 14, 120], [CX - w - 14, 120]]])
    img.fill(pts, ident.hair)


def _eyes(img: Pen, ident: Identity, eyes: np.ndarray) -> None:
    """Open eyes (11 px of white around a round iris) or narrow ones (a 5-px slit under a heavy lid)."""
    skin = ident.skin
    for ex, ey in eyes:
        if ident.attrs["Narrow_Eyes"]:
            img.ellipse((ex, ey), (9, 2.6), (235, 235, 235))
            img.ellipse((ex, ey), (4, 1.6), (30, 22, 20))
            img.line(_curve(ex - 10, ex + 10, ey - 1, ey - 3.2), skin * 0.45, 2.2)
        else:
            img.ellipse((ex, ey), (9, 5.5), (245, 245, 245))
            img.ellipse((ex, ey), (4.6, 4.6), ident.iris)
            img.ellipse((ex, ey), (2.0, 2.0), (15, 12, 12))
            img.line(_curve(ex - 10, ex + 10, ey - 1, ey - 6.5), skin * 0.45, 2.0)


def _brows(img: Pen, ident: Identity, eyes: np.ndarray) -> None:
    """Eyebrows in the facial-hair colour: 7.5 px thick when bushy, 2.6 px otherwise."""
    bushy = ident.attrs["Bushy_Eyebrows"]
    for k, (ex, ey) in enumerate(eyes):
        x0, x1 = ex - 11 * (1 if k == 0 else 0.9), ex + 11 * (0.9 if k == 0 else 1)
        pts = _curve(x0, x1, ey - 12.5, ey - 15.5)
        if bushy:
            img.line(pts, ident.brow * 0.8, 7.5)
        else:
            img.line(pts, ident.brow, 2.6)


def _nose(img: Pen, ident: Identity, tip: np.ndarray) -> None:
    """Normal: two small nostrils under a short tip line. Big: a long, broad, shaded and outlined nose with a bulb."""
    nx, ny = tip
    line = ident.skin * 0.5
    if ident.attrs["Big_Nose"]:
        bulb = ny + 1.0
        body = np.concatenate([[[nx - 3.5, 55.0], [nx + 3.5, 55.0]], _arc(nx, bulb, 13.0, 6.5, 0, 180, 16)])
        img.fill(body, ident.skin * 0.76)
        img.line(body, line * 0.9, 3.0, closed=True)
        for s in (-1, 1):
            img.ellipse((nx + s * 6.5, bulb + 2.5), (4.4, 2.8), (45, 28, 26))
    else:
        img.line(_curve(nx - 5.5, nx + 5.5, ny + 1.0, ny + 3.0, 8), line, 1.8)
        img.line([[nx - 1.5, 62.0], [nx - 2.0, ny - 2.0]], ident.skin * 0.75, 1.5)
        for s in (-1, 1):
            img.ellipse((nx + s * 3.6, ny + 1.2), (2.2, 1.4), (55, 32, 30))


def _wrinkles(img: Pen, ident: Identity, eyes: np.ndarray, tip: np.ndarray, mouth: np.ndarray) -> None:
    """Age: thick nasolabial folds, eye bags, crow's feet and forehead lines (the last may hide under bangs/hat)."""
    col = ident.skin * 0.55
    nx, ny = tip
    for s, (mx, my) in zip((-1, 1), mouth):
        img.line([[nx + s * 13, ny - 1], [nx + s * 17, ny + 9], [mx + s * 5, my + 6], [mx + s * 3, my + 12]], col, 3.2)
    for k, (ex, ey) in enumerate(eyes):
        s = -1 if k == 0 else 1
        img.line(_curve(ex - 8, ex + 8, ey + 6, ey + 9.5), col, 2.6)
        for dy in (-3.5, 1.5):
            img.line([[ex + s * 11, ey + dy * 0.3], [ex + s * 17, ey + dy * 1.4]], col, 2.2)
    for y in (28.5, 33.0):
        img.line(_curve(CX - 20, CX + 20, y + 1.5, y), col, 2.4)


def _mouth(img: Pen, ident: Identity, shot: Shot, mouth: np.ndarray) -> float:
    """Lips (thicker and saturated red with lipstick), smile curvature, dark opening; returns the lowest lip y."""
    (x0, y0), (x1, y1) = mouth
    smiling, open_ = shot.attrs["Smiling"], shot.attrs["Mouth_Slightly_Open"]
    lip = np.array(shot.lipstick, float) if shot.attrs["Wearing_Lipstick"] else (
        ident.skin * np.array([0.78, 0.55, 0.55]))
    thick = 4.6 if shot.attrs["Wearing_Lipstick"] else 3.6
    yc = (y0 + y1) / 2
    up_mid = yc + (3.0 if smiling else 0.3)
    # open: the lower lip drops so that a dark gap of >= 5 px stays visible between the lip strokes (a 6.5-px drop
    # left 2-3 px without a smile, under 2 px at 64: the opening vanished and the MAC learnt 'open' from the smile)
    lo_mid = yc + (9.5 if smiling else 0.8) + ((6.5 if smiling else 10.0) if open_ else 0.0)
    upper = _curve(x0, x1, yc, up_mid)
    lower = _curve(x0, x1, yc, lo_mid)
    if open_:
        img.fill(np.concatenate([upper, lower[::-1]]), (45, 12, 18))
        if smiling:
            img.fill(np.concatenate([upper, _curve(x0 + 4, x1 - 4, yc + 2.5, up_mid + 3.5)[::-1]]), (238, 236, 228))
    img.line(upper, lip, thick)
    img.line(lower, lip, thick + 1.0)
    return float(lo_mid + (thick + 1) / 2)


def _facial_hair(img: Pen, ident: Identity, tip: np.ndarray, mouth: np.ndarray, lip_bottom: float,
                 chin: float) -> None:
    """Mustache band between nose and upper lip; goatee patch from under the lower lip to the chin."""
    col = ident.brow * 0.9
    (x0, y0), (x1, y1) = mouth
    yc = (y0 + y1) / 2
    mx = (x0 + x1) / 2
    if ident.attrs["Mustache"]:  # 8 px band between nose and upper lip, down past the mouth corners
        top = _curve(mx - 15, mx + 15, tip[1] + 11.0, tip[1] + 8.0)
        bottom = _curve(mx + 17, mx - 17, yc + 1.5, yc - 2.0)
        img.fill(np.concatenate([top, bottom]), col)
    if ident.attrs["Goatee"]:  # chin patch from under the lower lip to the bottom of the chin
        y_top = lip_bottom + 1.5
        pts = np.concatenate([_curve(mx - 12, mx + 12, y_top + 1, y_top), [[mx + 11, chin], [mx - 11, chin]]])
        img.fill(pts, col)


def _glasses(img: Pen, shot: Shot, eyes: np.ndarray, w: float) -> None:
    col = shot.frame
    for k, (ex, ey) in enumerate(eyes):
        box = np.array([[ex - 13, ey - 8], [ex + 13, ey - 8], [ex + 13, ey + 8.5], [ex - 13, ey + 8.5]])
        img.line(box, col, 3.4, closed=True)
        s = -1 if k == 0 else 1
        img.line([[ex + s * 13, ey - 3], [CX + s * (w + 1), ey - 4]], col, 3.0)
    img.line(_curve(eyes[0][0] + 13, eyes[1][0] - 13, eyes[0][1] - 3, eyes[0][1] - 5), col, 3.0)


def _hat(img: Pen, shot: Shot, w: float) -> None:
    """A crown over the top of the head down to y=20, a dark band, and a wide outlined brim."""
    col = np.array(shot.hat, float)
    dome = _arc(CX, 50, w + 6, 60, 180, 360, 32)
    crown = dome[dome[:, 1] <= 20]
    img.fill(np.concatenate([[[CX - w - 6, 20]], crown, [[CX + w + 6, 20]]]), col)
    img.fill([[CX - w - 4, 12], [CX + w + 4, 12], [CX + w + 5, 18], [CX - w - 5, 18]], col * 0.45)
    img.ellipse((CX, 20), (w + 15, 5), col * 0.8)
    img.ellipse((CX, 20), (w + 15, 5), col * 0.3, 1.6)


def _earrings(img: Pen, shot: Shot, w: float) -> None:
    for s in (-1, 1):
        c = (CX + s * (w + 2.5), 77)
        img.line([[c[0], 70], [c[0], c[1] - 5]], (40, 40, 40), 1.5)
        img.ellipse(c, (5.2, 5.2), (25, 25, 25))
        img.ellipse(c, (3.4, 3.4), shot.earring)


def _pose(shot: Shot) -> np.ndarray:
    """The image's small similarity (rotation, scale about the centre, shift), as a 2x3 matrix in 112 units."""
    m = cv2.getRotationMatrix2D((CX, CX), shot.angle, shot.scale)
    m[:, 2] += shot.shift
    return m


def align_to_template(m: np.ndarray, points: np.ndarray, detect_noise: np.ndarray) -> np.ndarray:
    """The pose ``m`` followed by a face-recognition aligner's warp: the similarity that takes the face's 5 points as a
    detector reports them (true points under ``m`` plus ``detect_noise``) onto the ArcFace template, as insightface
    does when it crops a FR dataset. Drawing through the composition renders the aligned crop without resampling."""
    detected = points @ m[:, :2].T + m[:, 2] + detect_noise
    a = similarity_transform(detected, ARCFACE_TEMPLATE_112).astype(np.float64)
    return np.hstack([a[:, :2] @ m[:, :2], (a[:, :2] @ m[:, 2] + a[:, 2])[:, None]])


def compose(outer: np.ndarray, inner: np.ndarray) -> np.ndarray:
    """2x3 affine ``outer`` after ``inner``."""
    outer, inner = np.asarray(outer, np.float64), np.asarray(inner, np.float64)
    return np.hstack([outer[:, :2] @ inner[:, :2], (outer[:, :2] @ inner[:, 2] + outer[:, 2])[:, None]])


def paint(ident: Identity, shot: Shot, detect_noise: np.ndarray | None = None,
          place: np.ndarray | None = None, canvas_hw: tuple[int, int] = (SIZE, SIZE)) -> tuple[np.ndarray, np.ndarray]:
    """Draw the posed face on the supersampled canvas; returns (canvas RGB uint8, 5 landmarks in its pixels).

    ``detect_noise`` (5x2 pixels) renders the crop a FR aligner would store instead: the pose undone by a 5-point
    similarity fit to noisy landmarks, so only the aligner's residual error is left (the demo targets).
    ``place`` (2x3, 112-pixel image → canvas pixels) with ``canvas_hw`` renders a loose photo instead: the posed face
    anywhere on a larger canvas of any shape (facemac.data.demo.loose), its true landmarks returned in canvas pixels."""
    h, w = canvas_hw[0] * SS, canvas_hw[1] * SS
    grad = np.stack([shot.bg_top, shot.bg_bottom])[:, None, :].astype(np.float32)  # 2x1x3
    canvas = np.ascontiguousarray(cv2.resize(grad, (w, h), interpolation=cv2.INTER_LINEAR).astype(np.uint8))
    a = ident.attrs
    w = ident.width
    eyes = ARCFACE_TEMPLATE_112[:2].astype(np.float64) + [[-ident.eye_dx, ident.eye_dy], [ident.eye_dx, ident.eye_dy]]
    tip = ARCFACE_TEMPLATE_112[2].astype(np.float64) + [0, ident.eye_dy * 0.5]
    half = 17.0 if shot.attrs["Smiling"] else 13.0
    my = 92.3 + ident.mouth_dy - (4.0 if shot.attrs["Smiling"] else 0.0)
    mouth = np.array([[CX - half, my], [CX + half, my]])
    m = _pose(shot)
    if detect_noise is not None:
        m = align_to_template(m, np.concatenate([eyes, tip[None], mouth]), np.asarray(detect_noise, np.float64))
    if place is not None:
        m = compose(place, m)
    img = Pen(canvas, m)
    skin = ident.skin

    if ident.hair is not None and not a["Male"]:
        _long_hair(img, ident)
    for s in (-1, 1):  # ears
        img.ellipse((CX + s * (w + 1), 62), (5.5, 10), skin * 0.9)
    outline = _head_outline(ident)
    img.fill(outline, skin)
    img.line(outline, skin * 0.7, 1.2, closed=True)
    if a["Chubby"]:  # double chin
        img.line(_curve(CX - 15, CX + 15, 104.0, 109.0, 12), skin * 0.72, 3.0)
    if a["Bald"]:  # shiny scalp
        img.ellipse((CX - 9, 12), (11, 5), np.minimum(skin * 1.15 + 20, 255), angle=-15)
    if shot.attrs["Rosy_Cheeks"]:
        overlay = Pen(canvas.copy(), m)
        for s in (-1, 1):
            overlay.ellipse((CX + s * (w * 0.62), 71), (9.5, 7.5), (235, 70, 90))
        img = Pen(cv2.addWeighted(overlay.img, 0.6, canvas, 0.4, 0), m)
    if not a["Young"]:
        _wrinkles(img, ident, eyes, tip, mouth)
    if ident.hair is not None:
        _hair(img, ident)
    _brows(img, ident, eyes)
    _eyes(img, ident, eyes)
    _nose(img, ident, tip)
    lip_bottom = _mouth(img, ident, shot, mouth)
    if a["Mustache"] or a["Goatee"]:  # facial hair covers the lips' edges: redraw the mouth on top
        _facial_hair(img, ident, tip, mouth, lip_bottom, 113.0)
        _mouth(img, ident, shot, mouth)
    if shot.attrs["Eyeglasses"]:
        _glasses(img, shot, eyes, w)
    if shot.attrs["Wearing_Earrings"]:
        _earrings(img, shot, w)
    if shot.attrs["Wearing_Hat"]:
        _hat(img, shot, w)
    landmarks = np.concatenate([eyes, tip[None], mouth]) @ m[:, :2].T + m[:, 2]
    return img.img, landmarks


def render(ident: Identity, shot: Shot, rng: np.random.Generator, detect_noise: np.ndarray | None = None,
           place: np.ndarray | None = None, canvas_hw: tuple[int, int] = (SIZE, SIZE)) -> tuple[np.ndarray, np.ndarray]:
    """Final RGB uint8 image (112x112, or ``canvas_hw`` for a loose photo) and its 5 true landmarks (after the image's
    pose change, after the aligner's warp when ``detect_noise`` is given, or on the loose canvas; see ``paint``)."""
    canvas, landmarks = paint(ident, shot, detect_noise, place, canvas_hw)
    h, w = canvas_hw
    img = canvas if SS == 1 else cv2.resize(canvas, (w, h), interpolation=cv2.INTER_AREA)
    img = img.astype(np.float32)
    light = shot.gain * (1.0 + shot.gradient * np.linspace(-1, 1, w, dtype=np.float32))[None, :, None]
    img *= light * shot.cast.astype(np.float32)[None, None, :]
    if shot.attrs["Blurry"]:
        img = cv2.GaussianBlur(img, (0, 0), shot.blur_sigma)
    noise = np.empty_like(img)
    cv2.setRNGSeed(int(rng.integers(1, 2**31 - 1)))  # OpenCV's native Gaussian: ~4x faster than numpy's here
    cv2.randn(noise, 0.0, float(shot.noise_sigma))
    img += noise
    return np.clip(np.rint(img), 0, 255).astype(np.uint8), landmarks.astype(np.float32)
