"""Draw the attributes and the appearance of demo identities and images from a profile, reproducibly from a seed.

Every identity and every image gets its own random stream, keyed by (seed, profile, identity, image), so a dataset
comes out the same whatever the chunking or the number of worker processes. The within-identity knobs (habits for
``image_variation`` < 1, drift for ``identity_drift`` > 0) draw from streams of their own, so a profile without them
produces exactly the images it produced before they existed.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, replace

import numpy as np

from facemac.data.demo.profiles import DEMO_ATTRIBUTES, HAIR_COLOURS, IDENTITY_ATTRIBUTES, IMAGE_ATTRIBUTES, Profile

# Base colours (RGB). Hair colours are far apart in hue and brightness, so lighting changes cannot swap them.
HAIR_RGB = {"Black_Hair": (28, 24, 22), "Brown_Hair": (112, 66, 32), "Blond_Hair": (224, 190, 98),
            "Gray_Hair": (170, 170, 172)}
PALE_SKIN = (244, 224, 212)
SKIN_LIGHT, SKIN_DARK = (214, 160, 124), (156, 106, 74)  # the range of non-pale skin
HAT_RGB = ((200, 30, 35), (30, 70, 205), (30, 150, 65), (165, 35, 175), (20, 140, 165))
LIPSTICK_RGB = ((205, 22, 45), (195, 20, 95), (225, 40, 60), (160, 15, 55))
IRIS_RGB = ((70, 45, 25), (60, 100, 150), (70, 110, 70), (35, 28, 25))
EARRING_RGB = ((250, 210, 60), (235, 235, 245), (80, 220, 235))


def stream(seed: int, profile: str, identity: int, image: int = -1) -> np.random.Generator:
    """Independent random stream for one identity (image=-1) or one of its images."""
    return np.random.default_rng([int(seed), zlib.crc32(profile.encode()), int(identity), int(image) + 1])


@dataclass
class Identity:
    """Traits fixed across an identity's images: its identity-level attributes and its appearance."""

    attrs: dict[str, bool]
    skin: np.ndarray  # RGB float
    hair: np.ndarray | None  # None when bald
    brow: np.ndarray  # eyebrow / facial-hair colour
    iris: tuple[int, int, int]
    width: float  # half-width of the face at the cheeks
    eye_dy: float
    eye_dx: float
    mouth_dy: float
    jaw: float  # small jitter of the jaw shape


@dataclass
class Shot:
    """Everything that varies per image: image-level attributes and the nuisances."""

    attrs: dict[str, bool]
    lipstick: tuple[int, int, int]
    earring: tuple[int, int, int]
    hat: tuple[int, int, int]
    frame: tuple[int, int, int]
    bg_top: np.ndarray
    bg_bottom: np.ndarray
    angle: float
    scale: float
    shift: tuple[float, float]
    gain: float
    cast: np.ndarray
    gradient: float
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int


@dataclass
class Habits:
    """An identity's own values of the image-level attributes and the stream deciding, per image and attribute,
    whether the image shows them (probability 1 - image_variation) or a fresh draw."""

    own: dict[str, bool]
    variation: float
    rng: np.random.Generator | None = None

    def keep(self, attr: str, fresh: bool) -> bool:
        """The value this image shows."""
        return self.own[attr] if self.rng.random() >= self.variation else fresh


def _bern(rng: np.random.Generator, p: float) -> bool:
    return bool(rng.random() < p)


def sample_identity(profile: Profile, rng: np.random.Generator) -> Identity:
    """Identity-level attributes from the profile's network, then appearance consistent with them."""
    male, young = _bern(rng, profile.male), _bern(rng, profile.young)
    cond = profile.conditional_rates(male, young)
    bald = _bern(rng, cond["Bald"])
    colours = profile.colours_young if young else profile.colours_old
    colour = None if bald else HAIR_COLOURS[int(rng.choice(4, p=np.asarray(colours) / sum(colours)))]
    beard = 0
    if male:  # 0 none, 1 mustache, 2 goatee, 3 both
        beard = int(rng.choice(4, p=[1 - profile.mustache_only - profile.goatee_only - profile.mustache_goatee,
                                     profile.mustache_only, profile.goatee_only, profile.mustache_goatee]))
    bangs_p = profile.bangs_male if male else profile.bangs_female
    attrs = {
        "Male": male, "Young": young, "Bald": bald, "Bangs": (not bald) and _bern(rng, bangs_p),
        "Mustache": beard in (1, 3), "Goatee": beard in (2, 3), "No_Beard": beard == 0,
        "Pale_Skin": _bern(rng, profile.pale), "Narrow_Eyes": _bern(rng, profile.narrow_eyes),
        "Bushy_Eyebrows": _bern(rng, cond["Bushy_Eyebrows"]), "Big_Nose": _bern(rng, profile.big_nose),
        "Chubby": _bern(rng, profile.chubby),
    }
    for c in HAIR_COLOURS:
        attrs[c] = c == colour
    if attrs["Pale_Skin"]:
        skin = np.array(PALE_SKIN, float) + rng.uniform(-6, 6, 3)
    else:
        t = rng.random()
        skin = (1 - t) * np.array(SKIN_LIGHT, float) + t * np.array(SKIN_DARK, float) + rng.uniform(-5, 5, 3)
    hair = None
    if colour is not None:
        hair = np.clip(np.array(HAIR_RGB[colour], float) * rng.uniform(0.9, 1.1) + rng.uniform(-6, 6, 3), 0, 255)
    brow = np.array((48, 34, 26), float) if hair is None else hair * 0.4
    return Identity(
        attrs=attrs, skin=skin, hair=hair, brow=brow, iris=IRIS_RGB[int(rng.integers(len(IRIS_RGB)))],
        width=35.0 + rng.uniform(-1.5, 1.5) + (11.0 if attrs["Chubby"] else 0.0),
        eye_dy=rng.uniform(-1, 1), eye_dx=rng.uniform(-1, 1), mouth_dy=rng.uniform(-1.5, 1.5),
        jaw=rng.uniform(-0.04, 0.04),
    )


def sample_habits(profile: Profile, ident: Identity, rng: np.random.Generator) -> Habits | None:
    """The identity's own image-level values (each from its rate, Mouth_Slightly_Open given its own Smiling); None
    when every image redraws everything (image_variation = 1)."""
    if profile.image_variation >= 1.0:
        return None
    male = ident.attrs["Male"]
    smiling = _bern(rng, profile.smiling)
    own = {"Smiling": smiling,
           "Mouth_Slightly_Open": _bern(rng, profile.open_smiling if smiling else profile.open_not_smiling),
           "Eyeglasses": _bern(rng, profile.eyeglasses), "Wearing_Hat": _bern(rng, profile.hat),
           "Wearing_Lipstick": (not male) and _bern(rng, profile.lipstick_female),
           "Wearing_Earrings": _bern(rng, profile.earrings_male if male else profile.earrings_female),
           "Blurry": _bern(rng, profile.blurry), "Rosy_Cheeks": _bern(rng, profile.rosy)}
    assert set(own) == set(IMAGE_ATTRIBUTES)
    return Habits(own=own, variation=profile.image_variation)


def sample_shot(profile: Profile, ident: Identity, rng: np.random.Generator, habits: Habits | None = None) -> Shot:
    """Image-level attributes given the identity (and its habits), plus moderate nuisances (pose, light, background,
    blur, noise). Without habits every image-level attribute is a fresh draw."""
    male = ident.attrs["Male"]
    show = habits.keep if habits is not None else (lambda attr, fresh: fresh)
    smiling = show("Smiling", _bern(rng, profile.smiling))
    attrs = {
        "Smiling": smiling,
        "Mouth_Slightly_Open": show("Mouth_Slightly_Open",
                                    _bern(rng, profile.open_smiling if smiling else profile.open_not_smiling)),
        "Eyeglasses": show("Eyeglasses", _bern(rng, profile.eyeglasses)),
        "Wearing_Hat": show("Wearing_Hat", _bern(rng, profile.hat)),
        "Wearing_Lipstick": (not male) and show("Wearing_Lipstick", _bern(rng, profile.lipstick_female)),
        "Wearing_Earrings": show("Wearing_Earrings",
                                 _bern(rng, profile.earrings_male if male else profile.earrings_female)),
        "Blurry": show("Blurry", _bern(rng, profile.blurry)), "Rosy_Cheeks": show("Rosy_Cheeks", _bern(rng, profile.rosy)),
    }
    # Desaturated cool backgrounds (blue/green/purple), far from every hair colour.
    hue = rng.uniform(0.42, 0.83)
    sat, val = rng.uniform(0.08, 0.35), rng.uniform(0.45, 0.92)
    bg_top = _hsv_to_rgb(hue, sat, val)
    bg_bottom = np.clip(bg_top * rng.uniform(0.75, 1.1), 0, 255)
    return Shot(
        attrs=attrs,
        lipstick=LIPSTICK_RGB[int(rng.integers(len(LIPSTICK_RGB)))],
        earring=EARRING_RGB[int(rng.integers(len(EARRING_RGB)))],
        hat=HAT_RGB[int(rng.integers(len(HAT_RGB)))],
        frame=tuple(int(v) for v in rng.integers(10, 60, 3)),
        bg_top=bg_top, bg_bottom=bg_bottom,
        angle=rng.uniform(-6, 6), scale=rng.uniform(0.95, 1.05), shift=(rng.uniform(-3, 3), rng.uniform(-3, 3)),
        gain=rng.uniform(0.85, 1.15), cast=rng.uniform(0.95, 1.05, 3), gradient=rng.uniform(-0.12, 0.12),
        blur_sigma=rng.uniform(2.2, 2.8), noise_sigma=rng.uniform(1.0, 4.0), jpeg_quality=int(rng.integers(75, 96)),
    )


def _hsv_to_rgb(h: float, s: float, v: float) -> np.ndarray:
    i = int(h * 6) % 6
    f = h * 6 - int(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    rgb = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
    return np.array(rgb) * 255.0


def drifted(profile: Profile, ident: Identity, rng: np.random.Generator) -> Identity:
    """The identity as one image shows it: with probability identity_drift each, another hair colour (not for bald
    identities) and the other skin class. Always draws the same numbers, so drift never shifts other draws."""
    u_hair, pick, u_skin, tone = rng.random(), rng.integers(3), rng.random(), rng.random()
    attrs, hair, brow, skin = dict(ident.attrs), ident.hair, ident.brow, ident.skin
    if ident.hair is not None and u_hair < profile.identity_drift:
        colour = [c for c in HAIR_COLOURS if not attrs[c]][int(pick)]
        attrs.update({c: c == colour for c in HAIR_COLOURS})
        hair = np.array(HAIR_RGB[colour], float)
        brow = hair * 0.4
    if u_skin < profile.identity_drift:
        attrs["Pale_Skin"] = not attrs["Pale_Skin"]
        skin = (np.array(PALE_SKIN, float) if attrs["Pale_Skin"]
                else (1 - tone) * np.array(SKIN_LIGHT, float) + tone * np.array(SKIN_DARK, float))
    return replace(ident, attrs=attrs, hair=hair, brow=brow, skin=skin)


def draw_identity(profile: Profile, seed: int, identity: int) -> tuple[Identity, Habits | None]:
    """An identity's fixed traits and its image-level habits (each from its own stream)."""
    ident = sample_identity(profile, stream(seed, profile.name, identity))
    return ident, sample_habits(profile, ident, stream(seed, f"{profile.name}/habits", identity))


def draw_image(profile: Profile, seed: int, identity: int, image: int, ident: Identity,
               habits: Habits | None) -> tuple[Identity, Shot, np.random.Generator]:
    """(identity as this image shows it, the shot, the stream rendering continues from) for one image."""
    rng = stream(seed, profile.name, identity, image)
    if habits is not None:
        habits = replace(habits, rng=stream(seed, f"{profile.name}/habits", identity, image))
    shot = sample_shot(profile, ident, rng, habits)
    if profile.identity_drift > 0:
        ident = drifted(profile, ident, stream(seed, f"{profile.name}/drift", identity, image))
    return ident, shot, rng


def labels_of(ident: Identity, shot: Shot) -> np.ndarray:
    """The image's 0/1 label vector in DEMO_ATTRIBUTES order — exactly the sampled attributes."""
    merged = {**ident.attrs, **shot.attrs}
    assert set(merged) == set(DEMO_ATTRIBUTES) and set(ident.attrs) == set(IDENTITY_ATTRIBUTES)
    return np.array([merged[a] for a in DEMO_ATTRIBUTES], dtype=np.uint8)


def sample_labels(profile: Profile, seed: int, identities: int, images: int,
                  first: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels [identities*images, A] and identity index per row, exactly as the datasets get them, without rendering."""
    labels, ids = [], []
    for i in range(first, first + identities):
        ident, habits = draw_identity(profile, seed, i)
        for j in range(images):
            shown, shot, _ = draw_image(profile, seed, i, j, ident, habits)
            labels.append(labels_of(shown, shot))
            ids.append(i)
    return np.stack(labels), np.array(ids)
