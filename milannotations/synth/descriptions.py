"""Generated descriptions of synthetic units: three 'annotators' per unit, from the truth.

The generator imitates what the MILANNOTATIONS descriptions look like: lower
case, terse noun phrases ("red circles", "the top of squares"), with the
variety three people bring: synonyms ("round shapes" / "circles"), word
order ("circles that are red" / "red circles"), plural and article choices,
and disagreement (one annotator is often vaguer, or names only one half of a
conjunction or of a polysemantic unit). Everything is drawn from a
generator keyed by (seed, unit id), so the same build gives the same words.

These are *generated* descriptions of known formulas, not human data; the
dataset card says so.
"""
from __future__ import annotations

import hashlib

import numpy as np

from .neurons import UnitSpec
from .scenes import CONCEPT_INDEX, CONCEPTS

_SHAPE_NOUNS: dict[str, list[str]] = {
    "circle": ["circles", "round shapes", "discs", "circular shapes", "round objects", "balls"],
    "square": ["squares", "square shapes", "boxes", "blocks", "square objects"],
    "triangle": ["triangles", "triangular shapes", "triangle shapes", "pyramids"],
    "star": ["stars", "star shapes", "pointy stars", "five pointed stars"],
    "cross": ["crosses", "plus signs", "cross shapes", "plus shapes"],
    "ring": ["rings", "donuts", "hollow circles", "loops", "circle outlines"],
    "object": ["shapes", "objects", "things", "figures"],
}
_SHAPE_SINGULAR: dict[str, list[str]] = {
    "circle": ["circle", "round shape", "disc"], "square": ["square", "box", "block"],
    "triangle": ["triangle", "triangular shape"], "star": ["star", "star shape"],
    "cross": ["cross", "plus sign"], "ring": ["ring", "donut", "hollow circle"],
}
_COLOUR_ADJ: dict[str, list[str]] = {
    "red": ["red", "bright red"], "orange": ["orange"], "yellow": ["yellow", "bright yellow"],
    "green": ["green"], "blue": ["blue", "dark blue"], "purple": ["purple", "violet"],
    "pink": ["pink", "light pink"], "white": ["white"], "black": ["black", "dark"],
    "brown": ["brown"],
}
_TEXTURE_ADJ: dict[str, list[str]] = {
    "solid": ["solid", "plain colored", "solid colored", "flat colored"],
    "striped": ["striped", "stripy", "lined"],
    "dotted": ["dotted", "polka dot", "spotted"],
    "checkered": ["checkered", "checkerboard", "checked"],
}
_TEXTURE_NOUN: dict[str, list[str]] = {
    "solid": ["solid colors", "flat color fills", "solid color"],
    "striped": ["stripes", "striped patterns", "lines"],
    "dotted": ["dots", "polka dots", "dotted patterns", "spots"],
    "checkered": ["checkerboard patterns", "checkers", "checkered patterns", "grids of squares"],
}
_BACKGROUND: dict[str, list[str]] = {
    "sky": ["sky", "blue sky", "the sky", "sky background"],
    "grass": ["grass", "green grass", "grassy ground", "lawn"],
    "water": ["water", "waves", "the sea", "water surface"],
    "sand": ["sand", "sandy ground", "beach sand", "sand background"],
    "brick": ["brick wall", "bricks", "brick pattern", "red brick wall"],
    "snow": ["snow", "snowy ground", "white snow", "snow background"],
}
_PART: dict[str, list[str]] = {
    "top edge": ["top edges of", "the top of", "upper edges of", "tops of"],
    "bottom edge": ["bottom edges of", "the bottom of", "lower edges of", "bases of"],
    "outline": ["outlines of", "edges of", "borders of", "the outline of"],
}
_RELATION: dict[str, list[str]] = {
    "above": ["above", "on top of", "over"],
    "below": ["below", "under", "underneath"],
    "left of": ["left of", "to the left of", "on the left of"],
    "right of": ["right of", "to the right of", "on the right of"],
}
#: What an annotator who only half sees a concept says.
_VAGUE: dict[str, list[str]] = {
    "shape": ["shapes", "objects", "geometric shapes", "simple shapes"],
    "colour": ["colors", "colorful objects", "bright colors"],
    "texture": ["patterns", "textures", "patterned shapes"],
    "background": ["background", "ground", "outdoor scene", "landscape"],
    "part": ["edges", "parts of shapes", "shape edges"],
}
_TEMPLATES_CONCEPT = ["{x}", "{x}", "{x}", "{x} in the image", "images of {x}", "mostly {x}"]


def _category(name: str) -> str:
    return CONCEPTS[CONCEPT_INDEX[name]].category


class _Phraser:
    """Noun-phrase choices for one annotator; `rng` is that annotator's own stream."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng

    def pick(self, options: list[str]) -> str:
        return options[int(self.rng.integers(len(options)))]

    def noun(self, name: str) -> str:
        """A noun phrase naming the pixels of one concept."""
        cat = _category(name)
        if cat == "shape":
            return self.pick(_SHAPE_NOUNS[name])
        if cat == "colour":
            adj = self.pick(_COLOUR_ADJ[name])
            return self.pick([f"{adj} objects", f"{adj} things", f"{adj} color", f"{adj} shapes",
                              f"the color {adj}", f"{adj}"])
        if cat == "texture":
            if self.rng.random() < 0.5:
                return self.pick(_TEXTURE_NOUN[name])
            return f"{self.pick(_TEXTURE_ADJ[name])} {self.pick(['shapes', 'objects', 'patterns'])}"
        if cat == "background":
            return self.pick(_BACKGROUND[name])
        if cat == "part":
            part, shape = name.split(" of ")
            return f"{self.pick(_PART[part])} {self.pick(_SHAPE_NOUNS[shape])}"
        raise ValueError(name)

    def modified(self, modifier: str, shape: str) -> str:
        """'red circles', 'circles that are red', 'striped squares', 'squares with stripes'."""
        cat = _category(modifier)
        things = self.pick(_SHAPE_NOUNS[shape])
        adj = self.pick(_COLOUR_ADJ[modifier] if cat == "colour" else _TEXTURE_ADJ[modifier])
        forms = [f"{adj} {things}", f"{adj} {things}", f"{things} that are {adj}"]
        if cat == "texture":
            forms.append(f"{things} with {self.pick(_TEXTURE_NOUN[modifier])}")
        else:
            forms.append(f"{adj} colored {things}")
        return self.pick(forms)

    def vague(self, name: str) -> str:
        return self.pick(_VAGUE[_category(name)])


def _join(p: _Phraser, a: str, b: str, words: list[str]) -> str:
    w = p.pick(words)
    if p.rng.random() < 0.5:
        a, b = b, a
    return f"{a} {w} {b}"


def _describe(spec: UnitSpec, p: _Phraser, role: str) -> str:
    """One annotator's description. `role` is 'full', 'half' (names one facet) or 'vague'."""
    c = spec.concepts
    kind = spec.kind
    if kind == "concept":
        if role == "vague":
            return p.vague(c[0])
        return p.pick(_TEMPLATES_CONCEPT).format(x=p.noun(c[0]))
    if kind == "and":
        shape = next((x for x in c if _category(x) == "shape"), None)
        if shape is not None:
            mod = c[0] if c[1] == shape else c[1]
            if role == "half":
                return p.noun(p.pick([mod, shape]))
            if role == "vague":
                return f"{p.pick(_COLOUR_ADJ[mod] if _category(mod) == 'colour' else _TEXTURE_ADJ[mod])} {p.vague(shape)}"
            return p.modified(mod, shape)
        # colour and texture: "red striped shapes"
        colour, texture = (c[0], c[1]) if _category(c[0]) == "colour" else (c[1], c[0])
        if role == "half":
            return p.noun(p.pick([colour, texture]))
        things = p.pick(["shapes", "objects", "things"])
        return p.pick([f"{p.pick(_COLOUR_ADJ[colour])} {p.pick(_TEXTURE_ADJ[texture])} {things}",
                       f"{p.pick(_COLOUR_ADJ[colour])} {things} with {p.pick(_TEXTURE_NOUN[texture])}"])
    if kind in ("or", "polysemantic"):
        if role == "half":
            return p.noun(c[0] if spec.gains[0] >= spec.gains[1] else c[1])
        if role == "vague" and kind == "or":
            return p.vague(c[0])
        return _join(p, p.noun(c[0]), p.noun(c[1]), ["and", "and", "or", ","]).replace(" , ", ", ")
    if kind == "not":
        base, excluded = c
        if role in ("half", "vague"):
            return p.noun(base)
        things = p.pick(_SHAPE_NOUNS[base])
        cat = _category(excluded)
        adj = p.pick(_COLOUR_ADJ[excluded] if cat == "colour" else _TEXTURE_ADJ[excluded])
        return p.pick([f"{things} that are not {adj}", f"non {adj} {things}", f"{things} except {adj} ones",
                       f"{things}, but not {adj} ones", f"{things} of any color but {adj}"
                       if cat == "colour" else f"{things} without {p.pick(_TEXTURE_NOUN[excluded])}"])
    if kind == "relation":
        a, b = c
        rel = spec.relation or "above"
        if role == "half":
            return p.noun(a)
        if role == "vague":
            return f"{p.pick(_SHAPE_NOUNS[a])} {p.pick(['near', 'next to', 'beside', 'with'])} other shapes"
        obj = p.pick(_SHAPE_NOUNS[b]) if p.rng.random() < 0.6 else (
            ("an " if p.pick(_SHAPE_SINGULAR[b])[0] in "aeiou" else "a ") + p.pick(_SHAPE_SINGULAR[b]))
        return f"{p.pick(_SHAPE_NOUNS[a])} {p.pick(_RELATION[rel])} {obj}"
    raise ValueError(kind)


def _rng(seed: int, uid: str) -> np.random.Generator:
    digest = hashlib.sha256(f"synth-descriptions:{seed}:{uid}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def describe_unit(spec: UnitSpec, uid: str, seed: int = 0, n: int = 3) -> list[str]:
    """`n` generated descriptions of one unit, deterministic in (seed, uid).

    Roles: the first annotator is always faithful; each other one is
    faithful with probability 0.6, otherwise names one half (compound kinds)
    or is vaguer. Duplicates are redrawn a few times, as three people rarely
    write the same words, but are kept if the unit leaves no other choice.
    """
    rng = _rng(seed, uid)
    compound = spec.kind != "concept"
    out: list[str] = []
    for i in range(n):
        roll = rng.random()
        if i == 0 or roll < 0.6:
            role = "full"
        else:
            role = "half" if compound and roll < 0.85 else "vague"
        text = ""
        for _ in range(6):
            text = _describe(spec, _Phraser(rng), role)
            text = " ".join(text.split()).lower()
            if text not in out:
                break
        out.append(text)
    return out
