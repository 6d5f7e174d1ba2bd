"""The one lexicon of the synthetic world's words: what the description generator says and the parser reads.

Two kinds of tables live here:

* The generator's tables (`SHAPE_NOUNS`, `SHAPE_SINGULAR`, `COLOUR_ADJ`,
  `TEXTURE_ADJ`, `TEXTURE_NOUN`, `BACKGROUND`, `PART`, `RELATION`, `VAGUE`)
  and templates (`TEMPLATES_CONCEPT`, `COLOUR_NOUN_TEMPLATES`, ...).
  `descriptions.py` draws every word it writes from them, in this order (the
  order is part of the generated corpus: changing it changes the words).
* Words people use that the generator never writes (`EXTRA_NOUNS`,
  `EXTRA_ADJ`, `EXTRA_RELATION`): a small, hand-written list of common
  synonyms ("ocean" for water, "plaid" for checkered, "circular" for circle),
  so the parser (`parse.py`) reads more than the generator run backwards.
  They are kept modest on purpose: each maps to exactly one concept of
  `scenes.CONCEPTS`, and nothing ambiguous ("light", "bright", "grey") is in.

The parser's own function words (negation, clauses, filler such as "in the
image") are listed at the bottom (`FILLER`, ...); they are part of the
lexicon too, so every word the parser knows is in this file.
"""
from __future__ import annotations

# ------------------------------------------------------------------ the generator's tables (order matters)

SHAPE_NOUNS: dict[str, list[str]] = {
    "circle": ["circles", "round shapes", "discs", "circular shapes", "round objects", "balls"],
    "square": ["squares", "square shapes", "boxes", "blocks", "square objects"],
    "triangle": ["triangles", "triangular shapes", "triangle shapes", "pyramids"],
    "star": ["stars", "star shapes", "pointy stars", "five pointed stars"],
    "cross": ["crosses", "plus signs", "cross shapes", "plus shapes"],
    "ring": ["rings", "donuts", "hollow circles", "loops", "circle outlines"],
    "object": ["shapes", "objects", "things", "figures"],
}
SHAPE_SINGULAR: dict[str, list[str]] = {
    "circle": ["circle", "round shape", "disc"], "square": ["square", "box", "block"],
    "triangle": ["triangle", "triangular shape"], "star": ["star", "star shape"],
    "cross": ["cross", "plus sign"], "ring": ["ring", "donut", "hollow circle"],
}
COLOUR_ADJ: dict[str, list[str]] = {
    "red": ["red", "bright red"], "orange": ["orange"], "yellow": ["yellow", "bright yellow"],
    "green": ["green"], "blue": ["blue", "dark blue"], "purple": ["purple", "violet"],
    "pink": ["pink", "light pink"], "white": ["white"], "black": ["black", "dark"],
    "brown": ["brown"],
}
TEXTURE_ADJ: dict[str, list[str]] = {
    "solid": ["solid", "plain colored", "solid colored", "flat colored"],
    "striped": ["striped", "stripy", "lined"],
    "dotted": ["dotted", "polka dot", "spotted"],
    "checkered": ["checkered", "checkerboard", "checked"],
}
TEXTURE_NOUN: dict[str, list[str]] = {
    "solid": ["solid colors", "flat color fills", "solid color"],
    "striped": ["stripes", "striped patterns", "lines"],
    "dotted": ["dots", "polka dots", "dotted patterns", "spots"],
    "checkered": ["checkerboard patterns", "checkers", "checkered patterns", "grids of squares"],
}
BACKGROUND: dict[str, list[str]] = {
    "sky": ["sky", "blue sky", "the sky", "sky background"],
    "grass": ["grass", "green grass", "grassy ground", "lawn"],
    "water": ["water", "waves", "the sea", "water surface"],
    "sand": ["sand", "sandy ground", "beach sand", "sand background"],
    "brick": ["brick wall", "bricks", "brick pattern", "red brick wall"],
    "snow": ["snow", "snowy ground", "white snow", "snow background"],
}
#: Part phrases, each followed by a plural shape noun ("top edges of circles").
PART: dict[str, list[str]] = {
    "top edge": ["top edges of", "the top of", "upper edges of", "tops of"],
    "bottom edge": ["bottom edges of", "the bottom of", "lower edges of", "bases of"],
    "outline": ["outlines of", "edges of", "borders of", "the outline of"],
}
RELATION: dict[str, list[str]] = {
    "above": ["above", "on top of", "over"],
    "below": ["below", "under", "underneath"],
    "left of": ["left of", "to the left of", "on the left of"],
    "right of": ["right of", "to the right of", "on the right of"],
}
#: What an annotator who only half sees a concept says, per concept category.
VAGUE: dict[str, list[str]] = {
    "shape": ["shapes", "objects", "geometric shapes", "simple shapes"],
    "colour": ["colors", "colorful objects", "bright colors"],
    "texture": ["patterns", "textures", "patterned shapes"],
    "background": ["background", "ground", "outdoor scene", "landscape"],
    "part": ["edges", "parts of shapes", "shape edges"],
}
#: What the generator says near the subject of a relation unit when it does not see the relation.
VAGUE_RELATION: list[str] = ["near", "next to", "beside", "with"]

# ------------------------------------------------------------------ the generator's templates

TEMPLATES_CONCEPT = ["{x}", "{x}", "{x}", "{x} in the image", "images of {x}", "mostly {x}"]
#: A colour named as a noun phrase ("red objects", "the color red").
COLOUR_NOUN_TEMPLATES = ["{adj} objects", "{adj} things", "{adj} color", "{adj} shapes", "the color {adj}", "{adj}"]
#: Head nouns after a texture adjective ("striped shapes").
TEXTURE_HEADS = ["shapes", "objects", "patterns"]
#: Head nouns of a colour-and-texture unit ("red striped things").
OBJECT_HEADS = ["shapes", "objects", "things"]
#: A shape with a colour or texture modifier; the extras are per modifier category.
MODIFIED_TEMPLATES = ["{adj} {things}", "{adj} {things}", "{things} that are {adj}"]
MODIFIED_TEXTURE_EXTRA = "{things} with {noun}"
MODIFIED_COLOUR_EXTRA = "{adj} colored {things}"
#: A colour-and-texture conjunction.
COLOUR_TEXTURE_TEMPLATES = ["{colour} {texture} {things}", "{colour} {things} with {noun}"]
#: The words joining the two halves of a disjunction.
JOIN_WORDS = ["and", "and", "or", ","]
#: A negation ("circles that are not blue"); the last one depends on the excluded concept's category.
NOT_TEMPLATES = ["{things} that are not {adj}", "non {adj} {things}", "{things} except {adj} ones",
                 "{things}, but not {adj} ones"]
NOT_COLOUR_LAST = "{things} of any color but {adj}"
NOT_TEXTURE_LAST = "{things} without {noun}"
#: A relation unit: subject, relation phrase, object; and the vague form.
RELATION_TEMPLATE = "{a} {rel} {obj}"
VAGUE_RELATION_TEMPLATE = "{a} {word} other shapes"

# ------------------------------------------------------------------ words the generator never writes

#: Extra nouns per concept (plurals of shape nouns are derived by the parser). Hand-picked, one concept each.
EXTRA_NOUNS: dict[str, list[str]] = {
    "water": ["ocean", "oceans", "sea", "seas", "lake", "lakes", "river", "sea water", "ocean water"],
    "sand": ["beach", "beaches", "desert", "dunes", "sand dunes"],
    "brick": ["wall", "walls", "brick walls", "brickwork", "brick"],
    "sky": ["clouds", "cloudy sky", "skies", "blue skies"],
    "grass": ["field", "fields", "meadow", "meadows", "grassy field", "grass field", "lawns"],
    "snow": ["snowy field", "snowfield"],
    "cross": ["plus", "pluses", "plus symbols", "x shapes"],
    "ring": ["hoops"],
    "circle": ["round things"],
    "square": ["square things"],
    "triangle": ["triangle objects"],
    "star": ["star objects"],
    "object": ["items", "forms", "figure", "item", "colored shapes"],
    "checkered": ["checks", "checkerboards"],
    "striped": ["streaks"],
    "dotted": ["speckles"],
    "solid": ["solid fill", "solid fills"],
}
#: Extra adjectives per concept.
EXTRA_ADJ: dict[str, list[str]] = {
    "circle": ["circular", "round"],
    "triangle": ["triangular"],
    "star": ["star shaped"],
    "cross": ["cross shaped", "plus shaped"],
    "ring": ["ring shaped", "donut shaped"],
    "red": ["scarlet", "crimson"],
    "blue": ["navy", "navy blue", "light blue"],
    "checkered": ["plaid", "chequered", "checker"],
    "striped": ["stripey"],
    "dotted": ["spotty", "speckled"],
    "solid": ["plain", "flat", "uniform"],
}
#: Extra part phrases (singular forms and synonyms), each followed by a shape noun.
EXTRA_PART: dict[str, list[str]] = {
    "top edge": ["top edge of", "top of", "upper edge of", "top part of", "upper part of"],
    "bottom edge": ["bottom edge of", "bottom of", "lower edge of", "base of", "bottom part of", "lower part of"],
    "outline": ["outline of", "edge of", "border of", "contours of", "contour of", "boundaries of"],
}
#: Part nouns without a shape: that part of every shape ("outlines").
PART_ALONE: dict[str, list[str]] = {
    "top edge": ["top edges", "tops"],
    "bottom edge": ["bottom edges", "bases"],
    "outline": ["outlines", "borders", "contours"],
}
#: "parts of circles": all three parts of the shape.
ALL_PARTS_OF = ["parts of", "part of"]
#: Extra relation phrases.
EXTRA_RELATION: dict[str, list[str]] = {
    "above": ["on top of", "atop", "higher than"],
    "below": ["beneath", "under", "lower than"],
    "left of": ["to the left side of"],
    "right of": ["to the right side of"],
}

# ------------------------------------------------------------------ the parser's function words

#: Words and phrases that carry no claim ("in the image", "mostly", articles); dropped before parsing.
FILLER = ["a", "an", "the", "in the image", "in the images", "in an image", "in the picture", "in images",
          "images of", "image of", "pictures of", "picture of", "photos of", "mostly", "mainly", "some",
          "various", "different", "colored", "coloured", "other", "kinds of", "types of", "all", "any"]
#: Head nouns that name nothing of their own ("blue ones"): the modifiers around them are the claim.
NEUTRAL_HEADS = ["ones", "one"]
#: Head nouns that read as "some texture" unless the phrase names one ("striped patterns" is striped).
PATTERN_HEADS = ["patterns", "pattern", "textures", "texture"]
#: Colour heads: "red color" is red, "colors" alone is any object (every object has a colour).
COLOUR_HEADS = ["color", "colors", "colour", "colours"]
#: Adjectives that mean "with some texture" (striped, dotted or checkered).
PATTERN_ADJ = ["patterned", "textured"]
#: Adjectives that mean nothing more than "an object".
OBJECT_ADJ = ["colorful", "colourful", "geometric", "simple"]
#: Negation words before a modifier ("non blue", "not blue").
NEG_PREFIX = ["non", "not", "no"]
#: Negation words before a phrase: "circles except blue ones", "circles without stripes".
NEG_POST = ["except", "except for", "but not", "excluding", "without", "of any color but",
            "of any color except", "in any color but", "of every color but", "other than"]
#: Words that open a relative clause: "circles that are red".
CLAUSE = ["that are", "which are", "that is", "which is", "that are all", "that look"]
#: "with": a conjunct after the noun ("squares with stripes").
WITH = ["with", "having", "that have", "which have"]
#: "on": a background after the noun ("circles on grass").
ON = ["on", "in front of", "against"]
#: Disjunction and conjunction words between noun phrases or adjectives.
AND_WORDS = ["and"]
OR_WORDS = ["or", "and or"]

__all__ = ["SHAPE_NOUNS", "SHAPE_SINGULAR", "COLOUR_ADJ", "TEXTURE_ADJ", "TEXTURE_NOUN", "BACKGROUND", "PART",
           "RELATION", "VAGUE", "VAGUE_RELATION", "TEMPLATES_CONCEPT", "COLOUR_NOUN_TEMPLATES", "TEXTURE_HEADS",
           "OBJECT_HEADS", "MODIFIED_TEMPLATES", "MODIFIED_TEXTURE_EXTRA", "MODIFIED_COLOUR_EXTRA",
           "COLOUR_TEXTURE_TEMPLATES", "JOIN_WORDS", "NOT_TEMPLATES", "NOT_COLOUR_LAST", "NOT_TEXTURE_LAST",
           "RELATION_TEMPLATE", "VAGUE_RELATION_TEMPLATE", "EXTRA_NOUNS", "EXTRA_ADJ", "EXTRA_PART", "PART_ALONE",
           "ALL_PARTS_OF", "EXTRA_RELATION",
           "FILLER", "NEUTRAL_HEADS", "PATTERN_HEADS", "COLOUR_HEADS", "PATTERN_ADJ", "OBJECT_ADJ",
           "NEG_PREFIX", "NEG_POST", "CLAUSE", "WITH", "ON", "AND_WORDS", "OR_WORDS"]
