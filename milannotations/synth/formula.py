"""Formulas over the synthetic world's concepts: what a description claims a unit detects.

A `Formula` is a small, canonical boolean expression over the 45 concepts of
`scenes.CONCEPTS`: a concept, a conjunction, a disjunction, a negation or a
spatial relation ("circle above square"), or `EMPTY` (what unparseable text
means; it selects nothing and scores 0). Units' truths (`UnitSpec`) and parsed
descriptions (`parse.py`) both become formulas, so "is the description the
truth?" is `==`, and "where does the description hold?" is `evaluate` on any
concept masks: a scene's pixels, a probe set's cells, or a table of atoms.

Canonical form (built by the constructors, never by hand): nested `and`/`or`
are flattened, their arguments sorted and deduplicated, one-argument
conjunctions and disjunctions collapse, `object` is dropped from a
conjunction that has another object concept (a red pixel is an object
pixel), an `or` absorbs `EMPTY`, an `and` with `EMPTY` is `EMPTY`. Nothing
else is rewritten: two formulas that differ are different claims, even when
their masks happen to agree on a scene.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Protocol

from .scenes import BACKGROUNDS, COLOURS, CONCEPT_INDEX, CONCEPTS, SHAPES, TEXTURES

OPS = ("empty", "concept", "and", "or", "not", "relation")
RELATIONS = ("above", "below", "left of", "right of")
#: Concepts whose pixels are always object pixels (so `object and red` is `red`).
OBJECT_CATEGORIES = ("shape", "colour", "texture", "part")


@dataclass(frozen=True)
class Formula:
    """One canonical node; build with `concept`, `conj`, `disj`, `neg`, `relation` or use `EMPTY`."""

    op: str
    name: str = ""  # the concept (op "concept") or the relation (op "relation")
    args: tuple["Formula", ...] = ()

    def __str__(self) -> str:
        return text(self)

    @property
    def key(self) -> str:
        """A total order for sorting arguments (and a stable cache key): the canonical text."""
        return text(self)


EMPTY = Formula("empty")


def _category(name: str) -> str:
    return CONCEPTS[CONCEPT_INDEX[name]].category


def concept(name: str) -> Formula:
    """The formula of one concept (ValueError names an unknown one)."""
    if name not in CONCEPT_INDEX:
        raise ValueError(f"unknown concept {name!r}")
    return Formula("concept", name)


def _flat(op: str, parts: Iterable[Formula]) -> list[Formula]:
    out: list[Formula] = []
    for p in parts:
        out.extend(p.args if p.op == op else (p,))
    return out


def _nary(op: str, parts: list[Formula]) -> Formula:
    uniq = sorted({p.key: p for p in parts}.values(), key=lambda p: p.key)
    if not uniq:
        return EMPTY
    return uniq[0] if len(uniq) == 1 else Formula(op, "", tuple(uniq))


def conj(*parts: Formula) -> Formula:
    """All of `parts` hold (canonical; `object` dropped beside another object concept)."""
    flat = _flat("and", parts)
    if not flat or any(p.op == "empty" for p in flat):
        return EMPTY
    positive = [p for p in flat if p.op == "concept" and p.name != "object"
                and _category(p.name) in OBJECT_CATEGORIES]
    if positive or any(p.op == "relation" and is_object(p) for p in flat):
        flat = [p for p in flat if not (p.op == "concept" and p.name == "object")]
    return _nary("and", flat)


def disj(*parts: Formula) -> Formula:
    """Any of `parts` holds (canonical; `EMPTY` parts dropped)."""
    return _nary("or", [p for p in _flat("or", parts) if p.op != "empty"])


def neg(part: Formula) -> Formula:
    """`part` does not hold (double negation cancels)."""
    if part.op == "not":
        return part.args[0]
    if part.op == "empty":
        raise ValueError("the negation of the empty formula (everything) is not a description")
    return Formula("not", "", (part,))


def relation(subject: Formula, rel: str, obj: Formula) -> Formula:
    """`subject` where it stands in `rel` to some of `obj` ("circle above square")."""
    if rel not in RELATIONS:
        raise ValueError(f"unknown relation {rel!r}; known: {', '.join(RELATIONS)}")
    if subject.op == "empty" or obj.op == "empty":
        return EMPTY
    return Formula("relation", rel, (subject, obj))


def is_object(f: Formula) -> bool:
    """True when `f` holds only on object pixels (so `object` beside it adds nothing)."""
    if f.op == "concept":
        return _category(f.name) in OBJECT_CATEGORIES
    if f.op == "and":
        return any(is_object(a) for a in f.args)
    if f.op == "or":
        return all(is_object(a) for a in f.args)
    if f.op == "relation":
        return is_object(f.args[0])
    return False


def text(f: Formula) -> str:
    """Canonical text: "red and circle", "object and not blue", "circle above square", "(a or b) and c"."""
    if f.op == "empty":
        return "<empty>"
    if f.op == "concept":
        return f.name

    def inner(a: Formula) -> str:
        s = text(a)
        return f"({s})" if a.op in ("and", "or", "relation") and a.op != f.op else s

    if f.op == "not":
        return f"not {inner(f.args[0])}"
    if f.op == "relation":
        return f"{inner(f.args[0])} {f.name} {inner(f.args[1])}"
    pos = [a for a in f.args if a.op != "not"]
    negs = [a for a in f.args if a.op == "not"]
    return f" {f.op} ".join([inner(a) for a in pos] + [text(a) for a in negs])


def concepts(f: Formula) -> frozenset[str]:
    """Every concept a formula names (negated ones and relation objects included)."""
    if f.op == "concept":
        return frozenset([f.name])
    out: frozenset[str] = frozenset()
    for a in f.args:
        out |= concepts(a)
    return out


def from_spec(kind: str, names: Iterable[str], rel: str | None = None) -> Formula:
    """The truth of a unit of `kind` reading `names` (see `neurons.UnitSpec`)."""
    c = [concept(n) for n in names]
    if kind == "concept":
        return c[0]
    if kind == "and":
        return conj(c[0], c[1])
    if kind in ("or", "polysemantic"):
        return disj(c[0], c[1])
    if kind == "not":
        return conj(c[0], neg(c[1]))
    if kind == "relation":
        return relation(c[0], rel or "", c[1])
    raise ValueError(f"unknown unit kind {kind!r}")


def from_truth(truth: str) -> Formula:
    """The formula of a `truth` field (JSON with kind, formula and concepts, as the builder writes it)."""
    doc = json.loads(truth)
    kind, names, formula_text = doc["kind"], list(doc["concepts"]), str(doc["formula"])
    rel = None
    if kind == "relation":
        rel = formula_text[len(names[0]) + 1: len(formula_text) - len(names[1]) - 1]
    return from_spec(kind, names, rel)


class Lookup(Protocol):
    """Where concepts and relations hold, in whatever layout the caller evaluates on."""

    def concept(self, name: str): ...
    def relation(self, rel: str, obj: "Formula"): ...  # where some of `obj` lies in direction `rel`
    def nothing(self): ...


def evaluate(f: Formula, lookup: Lookup):
    """The boolean mask of `f` in `lookup`'s layout (numpy or torch bool arrays)."""
    if f.op == "empty":
        return lookup.nothing()
    if f.op == "concept":
        return lookup.concept(f.name)
    if f.op == "not":
        return ~evaluate(f.args[0], lookup)
    if f.op == "relation":
        return evaluate(f.args[0], lookup) & lookup.relation(f.name, f.args[1])
    parts = [evaluate(a, lookup) for a in f.args]
    out = parts[0]
    for p in parts[1:]:
        out = (out & p) if f.op == "and" else (out | p)
    return out


# ----------------------------------------------------------------- perturbations (sanity checks)

def _first_colour(exclude: Iterable[str] = ()) -> str:
    return next(c for c in COLOURS if c not in set(exclude))


def generic(f: Formula) -> Formula:
    """A strictly more generic claim (a superset of `f`'s mask): drop a conjunct, the negation or the
    relation; a single concept widens to its category's union ("object", any background, any part
    of the shape); a disjunction gains a third member of its first member's category."""
    if f.op == "concept":
        cat = _category(f.name)
        if cat == "background":
            return disj(*(concept(b) for b in BACKGROUNDS))
        if cat == "part":
            return concept(f.name.split(" of ")[1])
        return concept("object")
    if f.op == "and":
        positive = [a for a in f.args if a.op != "not"]
        negs = [a for a in f.args if a.op == "not"]
        if negs:  # "object and not blue" -> "object"
            return conj(*positive) if positive else concept("object")
        shapes = [a for a in positive if a.op == "concept" and a.name in SHAPES]
        keep = shapes[:1] if shapes else positive[:1]  # "red and circle" -> "circle"
        return conj(*keep)
    if f.op == "or":
        first = f.args[0]
        if first.op == "concept":
            pool = {"shape": SHAPES, "colour": tuple(COLOURS), "texture": TEXTURES,
                    "background": BACKGROUNDS}.get(_category(first.name), ())
            extra = next((concept(x) for x in pool if concept(x) not in f.args), None)
            if extra is not None:
                return disj(*f.args, extra)
        return disj(*f.args, concept("object"))
    if f.op == "relation":
        return f.args[0]
    return f


def specific(f: Formula) -> Formula:
    """A strictly more specific claim (a subset of `f`'s mask): add a conjunct (a colour to object
    concepts, a shape to colours and textures, a relation to backgrounds), or keep one half of a
    disjunction."""
    if f.op == "or":
        return f.args[0]
    names = concepts(f)
    if f.op == "concept" and _category(f.name) == "background":
        return relation(f, "above", concept("object"))
    if f.op == "concept" and _category(f.name) in ("colour", "texture"):
        return conj(f, concept(next(s for s in SHAPES if s not in names)))
    if f.op == "and" and not any(n in SHAPES or " of " in n for n in names):  # colour and texture
        return conj(f, concept(SHAPES[0]))
    colour = next((n for n in names if n in COLOURS), None)
    if colour is None or f.op == "and" and any(a.op == "not" for a in f.args):
        return conj(f, concept(_first_colour(names)))
    return conj(f, concept(next(t for t in TEXTURES if t not in names)))


__all__ = ["Formula", "EMPTY", "OPS", "RELATIONS", "concept", "conj", "disj", "neg", "relation", "text",
           "concepts", "from_spec", "from_truth", "evaluate", "generic", "specific", "is_object"]
