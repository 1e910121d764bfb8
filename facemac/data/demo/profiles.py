"""Attribute priors of the demo profiles and their exact marginal rates (the ground truth the analysis is checked on).

The sampling model is a small Bayesian network: identity-level ``Male`` and ``Young`` are the only parents; every
other attribute is drawn from a Bernoulli or categorical distribution conditioned on them (or on nothing). So the
marginal rate of each attribute is an exact sum over the four (Male, Young) states — no Monte Carlo.

Within an identity, two planted knobs set how its images differ (the truth the identity-level analysis is checked on):
``identity_drift`` (an image shows another hair colour / the other skin class) and ``image_variation`` (an image
redraws each image-level attribute instead of showing the identity's own habit). Given its identity-level state, an
identity's images are independent draws, so the expected share of identities whose images disagree on an attribute
and their mean label entropy are exact sums too (``Profile.within_identity``).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from itertools import product
from math import comb, log2

DEMO_ATTRIBUTES: tuple[str, ...] = (
    "Male", "Young", "Smiling", "Mouth_Slightly_Open", "Eyeglasses", "Wearing_Hat", "Bald", "Bangs", "Black_Hair",
    "Blond_Hair", "Brown_Hair", "Gray_Hair", "Mustache", "Goatee", "No_Beard", "Pale_Skin", "Wearing_Lipstick",
    "Wearing_Earrings", "Blurry", "Narrow_Eyes", "Bushy_Eyebrows", "Big_Nose", "Chubby", "Rosy_Cheeks",
)
TARGET_NAMES: tuple[str, ...] = ("demo_real_a", "demo_real_b", "demo_synth_a", "demo_synth_b")
HAIR_COLOURS: tuple[str, ...] = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")
# Attributes fixed for all images of one identity; the rest are redrawn for every image.
IDENTITY_ATTRIBUTES: tuple[str, ...] = (
    "Male", "Young", "Bald", "Bangs", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair", "Mustache", "Goatee",
    "No_Beard", "Pale_Skin", "Narrow_Eyes", "Bushy_Eyebrows", "Big_Nose", "Chubby",
)
IMAGE_ATTRIBUTES: tuple[str, ...] = tuple(a for a in DEMO_ATTRIBUTES if a not in IDENTITY_ATTRIBUTES)
# Identity-level attributes an image may show drifted (``Profile.identity_drift``): the hair colour (one of the four
# switches to another) and the skin class.
DRIFT_ATTRIBUTES: tuple[str, ...] = (*HAIR_COLOURS, "Pale_Skin")


@dataclass(frozen=True)
class Profile:
    """Priors of one demo population; ``true_rates`` gives its exact per-attribute positive rates."""

    name: str
    group: str  # "train", "real" or "synthetic"
    male: float = 0.5
    young: float = 0.55
    pale: float = 0.4
    bald_male_young: float = 0.2  # only men are bald
    bald_male_old: float = 0.5
    # Hair colour of a non-bald identity (black, blond, brown, gray), by age; each tuple sums to 1.
    colours_young: tuple[float, float, float, float] = (0.34, 0.30, 0.30, 0.06)
    colours_old: tuple[float, float, float, float] = (0.20, 0.15, 0.20, 0.45)
    bangs_female: float = 0.45  # given hair
    bangs_male: float = 0.30
    # Facial hair of a man: mustache only, goatee only, both (the rest: clean-shaven). Women have none.
    mustache_only: float = 0.15
    goatee_only: float = 0.15
    mustache_goatee: float = 0.30
    narrow_eyes: float = 0.30
    bushy_male: float = 0.45
    bushy_female: float = 0.25
    big_nose: float = 0.35
    chubby: float = 0.30
    # Image level.
    smiling: float = 0.5
    open_smiling: float = 0.6
    open_not_smiling: float = 0.25
    eyeglasses: float = 0.25
    hat: float = 0.2
    lipstick_female: float = 0.7  # men never wear lipstick here
    earrings_female: float = 0.55
    earrings_male: float = 0.10
    blurry: float = 0.2
    rosy: float = 0.25
    # Within an identity. Per image, with probability identity_drift, a non-bald identity shows another hair colour
    # (uniform over the other three) and, independently, the other skin class (Pale_Skin flipped). Each image-level
    # attribute is redrawn from its rate with probability image_variation, else the image shows the identity's own
    # value of it (drawn once, from the same rate): rates stay as above, variation within identities drops.
    identity_drift: float = 0.0
    image_variation: float = 1.0
    description: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        for key, value in vars(self).items():
            if isinstance(value, float) and not 0.0 <= value <= 1.0:
                raise ValueError(f"profile {self.name!r}: {key}={value} is not a probability")
        for key in ("colours_young", "colours_old"):
            if abs(sum(getattr(self, key)) - 1.0) > 1e-9:
                raise ValueError(f"profile {self.name!r}: {key} must sum to 1")
        if self.mustache_only + self.goatee_only + self.mustache_goatee > 1.0:
            raise ValueError(f"profile {self.name!r}: facial-hair probabilities exceed 1")

    def conditional_rates(self, male: bool, young: bool) -> dict[str, float]:
        """P(attribute | Male, Young) for every attribute, straight from the sampling model."""
        bald = (self.bald_male_young if young else self.bald_male_old) if male else 0.0
        colours = self.colours_young if young else self.colours_old
        beard = (self.mustache_only, self.goatee_only, self.mustache_goatee) if male else (0.0, 0.0, 0.0)
        drift = self.identity_drift
        rates = {
            "Male": float(male), "Young": float(young), "Bald": bald,
            "Bangs": (1 - bald) * (self.bangs_male if male else self.bangs_female),
            "Mustache": beard[0] + beard[2], "Goatee": beard[1] + beard[2], "No_Beard": 1 - sum(beard),
            "Pale_Skin": self.pale * (1 - drift) + (1 - self.pale) * drift, "Narrow_Eyes": self.narrow_eyes,
            "Bushy_Eyebrows": self.bushy_male if male else self.bushy_female,
            "Big_Nose": self.big_nose, "Chubby": self.chubby, "Smiling": self.smiling,
            "Mouth_Slightly_Open": self.smiling * self.open_smiling + (1 - self.smiling) * self.open_not_smiling,
            "Eyeglasses": self.eyeglasses, "Wearing_Hat": self.hat,
            "Wearing_Lipstick": 0.0 if male else self.lipstick_female,
            "Wearing_Earrings": self.earrings_male if male else self.earrings_female,
            "Blurry": self.blurry, "Rosy_Cheeks": self.rosy,
        }
        for colour, w in zip(HAIR_COLOURS, colours):
            rates[colour] = (1 - bald) * (w * (1 - drift) + (1 - w) * drift / 3)
        return rates

    def image_probabilities(self, attr: str, male: bool, young: bool) -> list[tuple[float, float]]:
        """(weight, P(an image shows attr)) over the identity states that matter for ``attr``, given (Male, Young).

        Identity-level attributes: the identity has it (probability 1, less drift) or not (0, plus drift). Image-level:
        the identity's own value d ~ Ber(rate) is shown with probability 1 - image_variation, a fresh draw otherwise;
        Mouth_Slightly_Open is drawn given the image's Smiling, both with their own habits.
        """
        cond = self.conditional_rates(male, young)
        drift, v = self.identity_drift, self.image_variation
        if attr in HAIR_COLOURS:
            bald = cond["Bald"]
            w = dict(zip(HAIR_COLOURS, self.colours_young if young else self.colours_old))[attr]
            return [(bald, 0.0), ((1 - bald) * w, 1 - drift), ((1 - bald) * (1 - w), drift / 3)]
        if attr == "Pale_Skin":
            return [(self.pale, 1 - drift), (1 - self.pale, drift)]
        if attr in IDENTITY_ATTRIBUTES:
            return [(cond[attr], 1.0), (1 - cond[attr], 0.0)]
        if attr == "Mouth_Slightly_Open":
            out = []
            for smile_habit in (True, False):
                shown = (1 - v) * smile_habit + v * self.smiling  # P(an image smiles)
                fresh = shown * self.open_smiling + (1 - shown) * self.open_not_smiling
                own = self.open_smiling if smile_habit else self.open_not_smiling
                weight = self.smiling if smile_habit else 1 - self.smiling
                out += [(weight * own, 1 - v + v * fresh), (weight * (1 - own), v * fresh)]
            return out
        rate = cond[attr]
        return [(rate, 1 - v + v * rate), (1 - rate, v * rate)]

    def within_identity(self, images: int) -> dict[str, tuple[float, float]]:
        """{attribute: (expected share of identities whose ``images`` images are mixed, expected mean label entropy
        in bits)}, exact: given its state an identity's images are independent, so P(all agree) = pi^k + (1-pi)^k."""
        out = {}
        for attr in DEMO_ATTRIBUTES:
            mixed = entropy = 0.0
            for male, young in product((False, True), repeat=2):
                w_state = (self.male if male else 1 - self.male) * (self.young if young else 1 - self.young)
                for w, pi in self.image_probabilities(attr, male, young):
                    mixed += w_state * w * (1 - pi ** images - (1 - pi) ** images)
                    entropy += w_state * w * sum(comb(images, j) * pi ** j * (1 - pi) ** (images - j)
                                                 * _bits(j / images) for j in range(1, images))
            out[attr] = (mixed, entropy)
        return out

    def true_rates(self) -> dict[str, float]:
        """Exact marginal positive rate of every attribute (sum over the four Male x Young states)."""
        out = dict.fromkeys(DEMO_ATTRIBUTES, 0.0)
        for male, young in product((False, True), repeat=2):
            weight = (self.male if male else 1 - self.male) * (self.young if young else 1 - self.young)
            for attr, rate in self.conditional_rates(male, young).items():
                out[attr] += weight * rate
        return out


def _bits(p: float) -> float:
    """Binary entropy in bits."""
    return -p * log2(p) - (1 - p) * log2(1 - p)


_TRAIN = Profile("celeba_demo", "train", description="labelled training set: broad priors, every attribute learnable")
_REAL_A = Profile(
    "demo_real_a", "real", male=0.5, young=0.6, pale=0.35, smiling=0.45, eyeglasses=0.2, hat=0.15, blurry=0.15,
    description="real-like: broad priors, close to the training set")
_REAL_B = replace(
    _REAL_A, name="demo_real_b", male=0.55, young=0.55, pale=0.4, smiling=0.5, eyeglasses=0.22, hat=0.12,
    earrings_female=0.5, big_nose=0.38, description="real-like: broad priors, close to demo_real_a")
_SYNTH_A = Profile(
    "demo_synth_a", "synthetic", male=0.5, young=0.95, pale=0.3, bald_male_young=0.01, bald_male_old=0.05,
    colours_young=(0.45, 0.15, 0.395, 0.005), colours_old=(0.40, 0.15, 0.40, 0.05), bangs_female=0.25,
    bangs_male=0.1, mustache_only=0.02, goatee_only=0.015, mustache_goatee=0.015, narrow_eyes=0.02, bushy_male=0.1,
    bushy_female=0.02, big_nose=0.04, chubby=0.015, smiling=0.6, open_smiling=0.7, open_not_smiling=0.1,
    eyeglasses=0.005, hat=0.003, lipstick_female=0.8, earrings_female=0.3, earrings_male=0.01, blurry=0.005, rosy=0.01,
    identity_drift=0.15, image_variation=0.2,
    description="synthetic-like: young, clean-shaven, smiling; glasses, hats, blur, gray hair, baldness almost absent; "
                "identities drift (hair colour, skin) and vary their expression and accessories less than real ones")
_SYNTH_B = Profile(
    "demo_synth_b", "synthetic", male=0.55, young=0.93, pale=0.5, bald_male_young=0.01, bald_male_old=0.06,
    colours_young=(0.25, 0.35, 0.395, 0.005), colours_old=(0.25, 0.30, 0.38, 0.07), bangs_female=0.5,
    bangs_male=0.05, mustache_only=0.015, goatee_only=0.03, mustache_goatee=0.01, narrow_eyes=0.015, bushy_male=0.08,
    bushy_female=0.01, big_nose=0.03, chubby=0.01, smiling=0.35, open_smiling=0.5, open_not_smiling=0.05,
    eyeglasses=0.008, hat=0.005, lipstick_female=0.85, earrings_female=0.2, earrings_male=0.005, blurry=0.005,
    rosy=0.008, image_variation=0.15,
    description="synthetic-like: young, neutral expression, lighter skin and hair; accessories rare; identities stay "
                "themselves but vary their expression and accessories far less than real ones")

PROFILES: dict[str, Profile] = {p.name: p for p in (_TRAIN, _REAL_A, _REAL_B, _SYNTH_A, _SYNTH_B)}
