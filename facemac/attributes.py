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
