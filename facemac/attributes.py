"""Attribute vocabularies: CelebA's 40 (header order of list_attr_celeba.txt) and MAAD-Face's 47 (CSV column order)."""

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
