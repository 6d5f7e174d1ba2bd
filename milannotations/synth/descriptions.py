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

from .lexicon import (BACKGROUND, COLOUR_ADJ, COLOUR_NOUN_TEMPLATES, COLOUR_TEXTURE_TEMPLATES, JOIN_WORDS,
                      MODIFIED_COLOUR_EXTRA, MODIFIED_TEMPLATES, MODIFIED_TEXTURE_EXTRA, NOT_COLOUR_LAST,
                      NOT_TEMPLATES, NOT_TEXTURE_LAST, OBJECT_HEADS, PART, RELATION, RELATION_TEMPLATE,
                      SHAPE_NOUNS, SHAPE_SINGULAR, TEMPLATES_CONCEPT, TEXTURE_ADJ, TEXTURE_HEADS, TEXTURE_NOUN,
                      VAGUE, VAGUE_RELATION, VAGUE_RELATION_TEMPLATE)
from .neurons import UnitSpec
from .scenes import CONCEPT_INDEX, CONCEPTS

# Every word and template comes from `lexicon` (the one copy the parser reads too).


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
            return self.pick(SHAPE_NOUNS[name])
        if cat == "colour":
            adj = self.pick(COLOUR_ADJ[name])
            return self.pick(COLOUR_NOUN_TEMPLATES).format(adj=adj)
        if cat == "texture":
            if self.rng.random() < 0.5:
                return self.pick(TEXTURE_NOUN[name])
            return f"{self.pick(TEXTURE_ADJ[name])} {self.pick(TEXTURE_HEADS)}"
        if cat == "background":
            return self.pick(BACKGROUND[name])
        if cat == "part":
            part, shape = name.split(" of ")
            return f"{self.pick(PART[part])} {self.pick(SHAPE_NOUNS[shape])}"
        raise ValueError(name)

    def modified(self, modifier: str, shape: str) -> str:
        """'red circles', 'circles that are red', 'striped squares', 'squares with stripes'."""
        cat = _category(modifier)
        things = self.pick(SHAPE_NOUNS[shape])
        adj = self.pick(COLOUR_ADJ[modifier] if cat == "colour" else TEXTURE_ADJ[modifier])
        forms = [t.format(adj=adj, things=things) for t in MODIFIED_TEMPLATES]
        if cat == "texture":
            forms.append(MODIFIED_TEXTURE_EXTRA.format(things=things, noun=self.pick(TEXTURE_NOUN[modifier])))
        else:
            forms.append(MODIFIED_COLOUR_EXTRA.format(adj=adj, things=things))
        return self.pick(forms)

    def vague(self, name: str) -> str:
        return self.pick(VAGUE[_category(name)])


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
        return p.pick(TEMPLATES_CONCEPT).format(x=p.noun(c[0]))
    if kind == "and":
        shape = next((x for x in c if _category(x) == "shape"), None)
        if shape is not None:
            mod = c[0] if c[1] == shape else c[1]
            if role == "half":
                return p.noun(p.pick([mod, shape]))
            if role == "vague":
                return f"{p.pick(COLOUR_ADJ[mod] if _category(mod) == 'colour' else TEXTURE_ADJ[mod])} {p.vague(shape)}"
            return p.modified(mod, shape)
        # colour and texture: "red striped shapes"
        colour, texture = (c[0], c[1]) if _category(c[0]) == "colour" else (c[1], c[0])
        if role == "half":
            return p.noun(p.pick([colour, texture]))
        things = p.pick(OBJECT_HEADS)
        first = COLOUR_TEXTURE_TEMPLATES[0].format(colour=p.pick(COLOUR_ADJ[colour]),
                                                   texture=p.pick(TEXTURE_ADJ[texture]), things=things)
        second = COLOUR_TEXTURE_TEMPLATES[1].format(colour=p.pick(COLOUR_ADJ[colour]), things=things,
                                                    noun=p.pick(TEXTURE_NOUN[texture]))
        return p.pick([first, second])
    if kind in ("or", "polysemantic"):
        if role == "half":
            return p.noun(c[0] if spec.gains[0] >= spec.gains[1] else c[1])
        if role == "vague" and kind == "or":
            return p.vague(c[0])
        return _join(p, p.noun(c[0]), p.noun(c[1]), JOIN_WORDS).replace(" , ", ", ")
    if kind == "not":
        base, excluded = c
        if role in ("half", "vague"):
            return p.noun(base)
        things = p.pick(SHAPE_NOUNS[base])
        cat = _category(excluded)
        adj = p.pick(COLOUR_ADJ[excluded] if cat == "colour" else TEXTURE_ADJ[excluded])
        forms = [t.format(things=things, adj=adj) for t in NOT_TEMPLATES]
        forms.append(NOT_COLOUR_LAST.format(things=things, adj=adj) if cat == "colour"
                     else NOT_TEXTURE_LAST.format(things=things, noun=p.pick(TEXTURE_NOUN[excluded])))
        return p.pick(forms)
    if kind == "relation":
        a, b = c
        rel = spec.relation or "above"
        if role == "half":
            return p.noun(a)
        if role == "vague":
            return VAGUE_RELATION_TEMPLATE.format(a=p.pick(SHAPE_NOUNS[a]), word=p.pick(VAGUE_RELATION))
        obj = p.pick(SHAPE_NOUNS[b]) if p.rng.random() < 0.6 else (
            ("an " if p.pick(SHAPE_SINGULAR[b])[0] in "aeiou" else "a ") + p.pick(SHAPE_SINGULAR[b]))
        return RELATION_TEMPLATE.format(a=p.pick(SHAPE_NOUNS[a]), rel=p.pick(RELATION[rel]), obj=obj)
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
