"""Concept sets a CLIP-based describer chooses its labels from.

- `words`: the most frequent English words (wordfreq ships its frequency
  tables, so no download), letters-only, minus function words.
- `broden`: a Broden-like inventory of objects, parts, materials, scenes,
  textures and colours, written for this project.
- `synth`: the synthetic corpus's own concept names, in plain words.
"""
from __future__ import annotations

from functools import lru_cache

from milannotations.errors import MilanError

COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown", "black", "white", "gray")
TEXTURES = ("striped", "dotted", "checkered", "banded", "braided", "bubbly", "bumpy", "chequered", "cracked",
            "crosshatched", "crystalline", "fibrous", "flecked", "frilly", "gauzy", "grid", "grooved",
            "honeycombed", "interlaced", "knitted", "lacelike", "lined", "marbled", "matted", "meshed",
            "paisley", "perforated", "pitted", "pleated", "polka-dotted", "porous", "potholed", "scaly",
            "smeared", "spiralled", "sprinkled", "stained", "stratified", "studded", "swirly", "veined",
            "waffled", "woven", "wrinkled", "zigzagged")
MATERIALS = ("wood", "metal", "glass", "plastic", "fabric", "paper", "stone", "brick", "concrete", "tile",
             "carpet", "leather", "fur", "skin", "hair", "water", "sand", "snow", "grass", "foliage",
             "rock", "mirror", "painted surface", "food", "ceramic", "rubber", "wire", "cardboard")
OBJECTS = ("person", "face", "dog", "cat", "bird", "horse", "cow", "sheep", "fish", "insect", "car", "bus",
           "truck", "bicycle", "motorbike", "airplane", "boat", "train", "road", "sidewalk", "building",
           "house", "skyscraper", "bridge", "tower", "fence", "wall", "floor", "ceiling", "window", "door",
           "stairs", "roof", "sky", "cloud", "tree", "plant", "flower", "mountain", "hill", "field", "river",
           "sea", "lake", "beach", "table", "chair", "sofa", "bed", "lamp", "shelf", "cabinet", "bottle",
           "cup", "bowl", "plate", "book", "screen", "keyboard", "clock", "sign", "text", "pole",
           "streetlight", "umbrella", "bag", "box", "ball", "toy", "painting", "curtain", "pillow", "rug",
           "vase", "basket", "tent", "car wheel", "fruit", "vegetable", "bread", "cake", "shoe", "hat",
           "shirt", "dress", "glasses", "jewelry", "instrument", "tool", "weapon", "machine", "pipe",
           "cable", "rail", "track", "crowd", "animal", "vehicle", "furniture")
PARTS = ("head", "eye", "nose", "mouth", "ear", "hand", "arm", "leg", "foot", "torso", "neck", "hair",
         "beak", "wing", "tail", "paw", "snout", "fin", "feather", "horn", "wheel", "headlight",
         "windshield", "license plate", "handle", "leg of chair", "tabletop", "lampshade", "screen edge",
         "branch", "leaf", "trunk", "petal", "stem", "edge", "corner", "top edge", "bottom edge",
         "left edge", "right edge", "outline", "border")
SHAPES = ("circle", "square", "triangle", "star", "cross", "ring", "line", "curve", "rectangle", "oval",
          "spiral", "dot", "stripe", "grid pattern", "diagonal line", "horizontal line", "vertical line")
SCENES = ("kitchen", "bedroom", "bathroom", "living room", "office", "street", "highway", "forest",
          "desert", "ocean", "coast", "park", "garden", "playground", "stadium", "store", "restaurant",
          "classroom", "library", "church", "castle", "farm", "harbor", "airport", "parking lot",
          "corridor", "staircase", "lobby", "skyline", "canyon", "waterfall", "valley", "ice", "cave")

_FUNCTION_WORDS = frozenset(
    "a an the and or but if then of to in on at by for with from as is are was were be been being have has "
    "had do does did not no yes this that these those it its i you he she we they me him her us them my your "
    "his our their what which who whom whose when where why how all any both each few more most other some "
    "such only own same so than too very can will just should now would could may might must shall also "
    "there here about into over after before under again further once up down out off".split())


@lru_cache(maxsize=4)
def frequent_words(n: int = 20000) -> tuple[str, ...]:
    """The n most frequent English words (wordfreq), letters only, without function words."""
    from wordfreq import top_n_list

    words = [w for w in top_n_list("en", n * 2) if w.isalpha() and len(w) > 2 and w not in _FUNCTION_WORDS]
    return tuple(words[:n])


def broden_like() -> tuple[str, ...]:
    """Objects, parts, materials, scenes, textures, shapes and colours, without duplicates."""
    return tuple(dict.fromkeys((*OBJECTS, *PARTS, *MATERIALS, *SCENES, *TEXTURES, *SHAPES, *COLOURS)))


def synth_concepts() -> tuple[str, ...]:
    """The synthetic world's concept names, as plain words."""
    from milannotations.synth.scenes import CONCEPTS

    return tuple(dict.fromkeys(_concept_name(c).replace("_", " ") for c in CONCEPTS))


def _concept_name(c) -> str:
    return c if isinstance(c, str) else getattr(c, "name", str(c))


CONCEPT_SETS = {"words": frequent_words, "broden": broden_like, "synth": synth_concepts}


def concept_set(name: str) -> tuple[str, ...]:
    """A concept set by name, or a comma-free path to a text file with one concept per line."""
    if name in CONCEPT_SETS:
        return CONCEPT_SETS[name]()
    from pathlib import Path

    path = Path(name)
    if path.is_file():
        terms = [t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]
        if not terms:
            raise MilanError(f"concept file {path} is empty")
        return tuple(dict.fromkeys(terms))
    raise MilanError(f"unknown concept set {name!r}; choose {', '.join(CONCEPT_SETS)} or a file path")
