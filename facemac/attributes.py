"""Attribute vocabularies: CelebA's 40 (header order of list_attr_celeba.txt) and MAAD-Face's 47 (CSV column order),
and whether each describes the person (identity-level) or the photo (image-level)."""

CELEBA_ATTRIBUTES: tuple[str, ...] = (
    "5_o_Clock_Shadow", "Arched_Eyebrows", "Attractive", "Bags_Under_Eyes", "Bald", "Bangs", "Big_Lips", "Big_Nose",
    "Black_Hair", "Blond_Hair", "Blurry", "Brown_Hair", "Bushy_Eyebrows", "Chubby", "Double_Chin", "Eyeglasses",
    "Goatee", "Gray_Hair", "Heavy_Makeup", "High_Cheekbones", "Male", "Mouth_Slightly_Open", "Mustache",
    "Narrow_Eyes", "No_Beard", "Oval_Face", "Pale_Skin", "Pointy_Nose", "Receding_Hairline", "Rosy_Cheeks",
    "Sideburns", "Smiling", "Straight_Hair", "Wavy_Hair", "Wearing_Earrings", "Wearing_Hat", "Wearing_Lipstick",
    "Wearing_Necklace", "Wearing_Necktie", "Young",
)

MAADFACE_ATTRIBUTES: tuple[str, ...] = (
    "Male", "Young", "Middle_Aged", "Senior", "Asian", "White", "Black", "Rosy_Cheeks", "Shiny_Skin", "Bald",
    "Wavy_Hair", "Receding_Hairline", "Bangs", "Sideburns", "Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair",
    "No_Beard", "Mustache", "5_o_Clock_Shadow", "Goatee", "Oval_Face", "Square_Face", "Round_Face", "Double_Chin",
    "High_Cheekbones", "Chubby", "Obstructed_Forehead", "Fully_Visible_Forehead", "Brown_Eyes", "Bags_Under_Eyes",
    "Bushy_Eyebrows", "Arched_Eyebrows", "Mouth_Closed", "Smiling", "Big_Lips", "Big_Nose", "Pointy_Nose",
    "Heavy_Makeup", "Wearing_Hat", "Wearing_Earrings", "Wearing_Necktie", "Wearing_Lipstick", "No_Eyewear",
    "Eyeglasses", "Attractive",
)


IDENTITY_LEVEL, IMAGE_LEVEL, UNCLASSIFIED = "identity", "image", "unclassified"

# Identity-level: the person's anatomy or demographics, which the photos of one identity in a face-recognition dataset
# should agree on (mixing within an identity = drift). Image-level: expression, accessories, make-up, grooming of the
# day and photo quality, which real photo collections vary (no mixing = too little intra-class variation). Where real
# photos do change an identity-level attribute (ageing across years, dye, shaving, squinting), real data mixes a little
# too: compare a synthetic set with real data, not with zero. Every CelebA (40) and MAAD-Face (47) name is classed;
# the 24 demo attributes are CelebA names. conf/analyze.yaml `analyze.identity.levels` overrides any of them.
ATTRIBUTE_LEVELS: dict[str, tuple[str, str]] = {
    "Male": (IDENTITY_LEVEL, "sex"),
    "Young": (IDENTITY_LEVEL, "age group; photos years apart (VGGFace2, CelebA) cross it now and then"),
    "Middle_Aged": (IDENTITY_LEVEL, "age group, as Young"),
    "Senior": (IDENTITY_LEVEL, "age group, as Young"),
    "Asian": (IDENTITY_LEVEL, "ethnicity"),
    "White": (IDENTITY_LEVEL, "ethnicity"),
    "Black": (IDENTITY_LEVEL, "ethnicity"),
    "Pale_Skin": (IDENTITY_LEVEL, "skin tone; only lighting moves it"),
    "Black_Hair": (IDENTITY_LEVEL, "hair colour; dye and greying are slow against a dataset's photos of a person"),
    "Blond_Hair": (IDENTITY_LEVEL, "hair colour, as Black_Hair"),
    "Brown_Hair": (IDENTITY_LEVEL, "hair colour, as Black_Hair"),
    "Gray_Hair": (IDENTITY_LEVEL, "hair colour, as Black_Hair"),
    "Bald": (IDENTITY_LEVEL, "hair loss is slow"),
    "Receding_Hairline": (IDENTITY_LEVEL, "hair loss is slow"),
    "Bangs": (IDENTITY_LEVEL, "a haircut worn for months; restyling mixes some real identities"),
    "Straight_Hair": (IDENTITY_LEVEL, "hair texture, mostly natural; styling mixes some real identities"),
    "Wavy_Hair": (IDENTITY_LEVEL, "hair texture, as Straight_Hair"),
    "Mustache": (IDENTITY_LEVEL, "facial hair a man keeps for months; shaving mixes some real identities"),
    "Goatee": (IDENTITY_LEVEL, "facial hair, as Mustache"),
    "No_Beard": (IDENTITY_LEVEL, "facial hair, as Mustache"),
    "Sideburns": (IDENTITY_LEVEL, "facial hair, as Mustache"),
    "Big_Nose": (IDENTITY_LEVEL, "anatomy"),
    "Pointy_Nose": (IDENTITY_LEVEL, "anatomy"),
    "Big_Lips": (IDENTITY_LEVEL, "anatomy"),
    "Narrow_Eyes": (IDENTITY_LEVEL, "eye shape; squinting mixes some real identities"),
    "Brown_Eyes": (IDENTITY_LEVEL, "iris colour"),
    "Arched_Eyebrows": (IDENTITY_LEVEL, "brow shape; plucking and make-up are slow changes"),
    "Bushy_Eyebrows": (IDENTITY_LEVEL, "brow shape, as Arched_Eyebrows"),
    "Oval_Face": (IDENTITY_LEVEL, "face shape"),
    "Square_Face": (IDENTITY_LEVEL, "face shape"),
    "Round_Face": (IDENTITY_LEVEL, "face shape"),
    "High_Cheekbones": (IDENTITY_LEVEL, "bone structure; raters also mark it on smiles, so real data mixes some"),
    "Chubby": (IDENTITY_LEVEL, "build; weight changes slowly"),
    "Double_Chin": (IDENTITY_LEVEL, "build, as Chubby; a lowered chin shows it on some real photos"),
    "Bags_Under_Eyes": (IDENTITY_LEVEL, "anatomy and age; tiredness and lighting mix some real identities"),
    "Smiling": (IMAGE_LEVEL, "expression"),
    "Mouth_Slightly_Open": (IMAGE_LEVEL, "expression"),
    "Mouth_Closed": (IMAGE_LEVEL, "expression"),
    "Eyeglasses": (IMAGE_LEVEL, "put on and taken off"),
    "No_Eyewear": (IMAGE_LEVEL, "glasses, as Eyeglasses"),
    "Wearing_Hat": (IMAGE_LEVEL, "accessory"),
    "Wearing_Earrings": (IMAGE_LEVEL, "accessory"),
    "Wearing_Necklace": (IMAGE_LEVEL, "accessory"),
    "Wearing_Necktie": (IMAGE_LEVEL, "clothing"),
    "Wearing_Lipstick": (IMAGE_LEVEL, "make-up of the day"),
    "Heavy_Makeup": (IMAGE_LEVEL, "make-up of the day"),
    "Rosy_Cheeks": (IMAGE_LEVEL, "blush, flush or lighting of the photo"),
    "Shiny_Skin": (IMAGE_LEVEL, "sweat, make-up or lighting of the photo"),
    "5_o_Clock_Shadow": (IMAGE_LEVEL, "stubble: how long since he last shaved"),
    "Blurry": (IMAGE_LEVEL, "photo quality"),
    "Obstructed_Forehead": (IMAGE_LEVEL, "covered by hair, a hat or a hand in this photo"),
    "Fully_Visible_Forehead": (IMAGE_LEVEL, "as Obstructed_Forehead"),
    "Attractive": (IMAGE_LEVEL, "a rater's judgement of one photo; make-up, expression and light move it"),
}


def attribute_levels(attributes: list[str], overrides: dict[str, str] | None = None) -> dict[str, str]:
    """{attribute: identity | image | unclassified}: the defaults above with ``overrides`` applied."""
    overrides = dict(overrides or {})
    bad = {a: v for a, v in overrides.items() if v not in (IDENTITY_LEVEL, IMAGE_LEVEL)}
    if bad:
        raise ValueError(f"levels {bad}: each must be {IDENTITY_LEVEL!r} or {IMAGE_LEVEL!r}")
    return {a: overrides.get(a, ATTRIBUTE_LEVELS.get(a, (UNCLASSIFIED, ""))[0]) for a in attributes}


def attribute_difference(left: list[str] | tuple[str, ...], right: list[str] | tuple[str, ...],
                         left_name: str = "checkpoint", right_name: str = "dataset") -> str | None:
    """None when both lists are equal; else a message naming the attributes only on one side (or the reordering)."""
    left, right = list(left), list(right)
    if left == right:
        return None
    only_l = [a for a in left if a not in right]
    only_r = [a for a in right if a not in left]
    parts = []
    if only_l:
        parts.append(f"only in the {left_name}: {only_l}")
    if only_r:
        parts.append(f"only in the {right_name}: {only_r}")
    if not parts:
        dup = sorted({a for a in left + right if left.count(a) != right.count(a)})
        if dup:
            return f"attributes listed a different number of times: {dup}"
        first = next(i for i, (a, b) in enumerate(zip(left, right)) if a != b)
        return (f"the same {len(left)} attributes in another order (position {first}: {left[first]!r} in the "
                f"{left_name}, {right[first]!r} in the {right_name})")
    return "; ".join(parts)
