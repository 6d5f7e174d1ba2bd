"""Descriptions of synthetic units read back as formulas: `parse("red circles") -> red and circle`.

`parse(text)` returns a `Parsed` (the `Formula`, whether the text parsed,
the content phrases it recognised and the words it did not). It never
raises: text it cannot read is `Parsed(EMPTY, False, ...)`, and any unknown
content word makes the whole parse fail (the word listed in `unknown`), so
a parse is either a claim the words really make or no claim at all. Every
word it knows is in `lexicon.py`, the generator's tables plus a small hand
list of synonyms the generator never writes. Deterministic and memoized.

Grammar and meaning
-------------------
Text is lower-cased; a trailing period (or ! ? ; ,) is dropped, other
punctuation but the comma becomes a space, hyphens split words
("non-blue", "polka-dot").

1. Exact formula language, tried first. Text made only of concept names as
   in `scenes.CONCEPT_NAMES` (singular: "red", "circle", "top edge of
   circle"), the operators "and", "or", "and not", the relations "above",
   "below", "left of", "right of", a leading "not" and parentheses, is read
   LEFT-DEEP as CompExp writes formulas (`baselines/compexp.py`
   `Formula.render`): "ring and not green or star" = (ring AND NOT green)
   OR star; "red and circle above square" = (red AND circle) above square.
   This covers the truth texts (`UnitSpec.formula`: "red and circle",
   "object and not blue", "circle above square", "circle or star") and, with
   parentheses, the canonical `formula.text`. EXCEPTION: "X and Y" where the
   AND of X and Y is always empty means OR, because people write "red and
   blue" for a unit that likes either: two different concepts of one
   mutually exclusive category (two colours, two textures, two shapes other
   than "object", two backgrounds), and also a background with an object
   concept ("green and grass": background pixels are exactly the pixels no
   object covers). When the left side is already such a union of
   concepts, a further exclusive "and" extends it ("red and blue and green").

2. Otherwise natural language, the generator's and more:
   * Noun phrases joined by "and", "or" or "," are a UNION ("circles and
     stars" = circle OR star).
   * Inside a noun phrase, modifiers intersect the head: "red circles",
     "circles that are red", "red colored circles", "red striped shapes",
     "red objects with stripes", "squares with stripes", "circles on grass"
     (AND). A head that names any object ("shapes", "objects", "things",
     "ones", "color") adds nothing beside an object modifier ("red shapes" =
     red). Coordinated adjectives form one union: "red and blue circles" =
     (red OR blue) AND circle. "the color red" is red; "colors" alone is any
     object. "patterns" alone is striped OR dotted OR checkered, beside a
     texture modifier it is only a head ("striped patterns" = striped).
   * Negation intersects the complement: "circles that are not blue", "non
     blue circles", "circles except blue ones", "circles, but not blue
     ones", "circles of any color but blue", "circles without stripes" =
     circle AND NOT blue (or striped). A negated union becomes a
     conjunction of negations ("not red or blue" = AND NOT red AND NOT
     blue, as CompExp's phrases write "and not red and not blue"). A phrase
     with only negated modifiers is about objects ("non blue" = object AND
     NOT blue).
   * Parts: "top edges of circles", "the top of squares", "bases of stars",
     "outlines/edges/borders of rings" = the part concept ("bottom edge of
     star"); over "shapes" it is the part of every shape ("edges of shapes"
     = OR of the outline of the six shapes); over modified shapes the
     modifiers stay ("top edges of red circles" = top edge of circle AND
     red). "parts of X" is all three parts of X.
   * Relations: "circles above a square", "stars to the left of rings",
     "crosses underneath squares" = relation(subject, rel, object). The
     relation binds tighter than union; its object must be a shape,
     "object"/"shapes" or a union of shapes ("circles above squares or
     stars"), and nothing may follow it but another noun phrase of the
     union; anything else fails the parse.
   * Vague words become unions: shapes/objects/things/figures/geometric
     shapes/simple shapes/colors/colorful objects/bright colors = object;
     patterns/textures/patterned shapes = striped OR dotted OR checkered;
     background/ground/outdoor scene/landscape = OR of the 6 backgrounds;
     edges/parts of shapes/shape edges = OR of all 18 parts. The generator's
     vague relation "circles near/next to/beside/with other shapes" is just
     the subject (circle).
   * Longest match first: "blue sky", "green grass", "red brick wall",
     "white snow" are backgrounds; "grids of squares" is checkered; "circle
     outlines" is ring; "dark blue" is blue ("dark" alone is black).
   * Filler carries no claim: articles, "in the image", "images of",
     "mostly", "colored", "other", "ones", "things" (as a head).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from . import lexicon as L
from .formula import EMPTY, Formula, concept, concepts, conj, disj, is_object, neg, relation
from .scenes import BACKGROUNDS, CONCEPT_INDEX, CONCEPT_NAMES, CONCEPTS, PARTS, SHAPES, TEXTURES

PARSER_VERSION = "1"


@dataclass(frozen=True)
class Parsed:
    """What a description claims: `formula` (EMPTY when `ok` is False), the content phrases it
    recognised (`known`) and the words it could not read (`unknown`)."""

    formula: Formula
    ok: bool
    known: tuple[str, ...]
    unknown: tuple[str, ...]


class _Fail(Exception):
    pass


# ----------------------------------------------------------------------------------- concept helpers

def _category(name: str) -> str:
    return CONCEPTS[CONCEPT_INDEX[name]].category


OBJECT = concept("object")
_PATTERN_UNION = disj(*(concept(t) for t in TEXTURES if t != "solid"))
_BACKGROUND_UNION = disj(*(concept(b) for b in BACKGROUNDS))
_ALL_PARTS = disj(*(concept(f"{p} of {s}") for s in SHAPES for p in PARTS))
_EXCLUSIVE_CATEGORIES = ("colour", "texture", "background")
_TEXTURE_SET = frozenset(TEXTURES)


def _exclusive(a: str, b: str) -> bool:
    """True when concepts `a` and `b` never share a pixel (so "a and b" can only mean "a or b")."""
    if a == b:
        return False
    ca, cb = _category(a), _category(b)
    if ca == cb:
        if ca in _EXCLUSIVE_CATEGORIES:
            return True
        return ca == "shape" and "object" not in (a, b)
    if "background" in (ca, cb):
        return True  # every other category lies on object pixels, the complement of the background
    return False


def _shape_only(f: Formula) -> bool:
    """A shape, "object", or a union of those: what a relation's object or a part's shape may be."""
    if f.op == "concept":
        return f.name == "object" or f.name in SHAPES
    return f.op == "or" and all(_shape_only(a) for a in f.args)


def _and(*parts: Formula) -> Formula:
    """Intersection that also drops `object` beside any object formula (a union of colours included)."""
    flat = [p for p in parts]
    if any(p != OBJECT and is_object(p) for p in flat):
        flat = [p for p in flat if p != OBJECT]
    return conj(*flat)


def _negate(f: Formula) -> Formula:
    """NOT f; a union is negated member by member (De Morgan), so "not red or blue" is a conjunction."""
    if f.op == "empty":
        raise _Fail("nothing to negate")
    if f.op == "or":
        return conj(*(_negate(a) for a in f.args))
    return neg(f)


def _partify(f: Formula, parts: tuple[str, ...]) -> Formula:
    """The `parts` of the shapes `f` names ("top edge" of circle); modifiers of the shape stay."""
    if f.op == "concept" and f.name in SHAPES:
        return disj(*(concept(f"{p} of {f.name}") for p in parts))
    if f == OBJECT:
        return disj(*(concept(f"{p} of {s}") for s in SHAPES for p in parts))
    if f.op == "or" and _shape_only(f):
        return disj(*(_partify(a, parts) for a in f.args))
    if f.op == "and":
        shapes = [a for a in f.args if _shape_only(a)]
        if len(shapes) == 1:
            return conj(_partify(shapes[0], parts), *(a for a in f.args if a is not shapes[0]))
        if not shapes:  # "the top of red things": red on the top edge of any shape
            return conj(_partify(OBJECT, parts), *f.args)
    raise _Fail(f"no parts of {f}")


# ----------------------------------------------------------------------------------- the lexicon, as tokens

@dataclass(frozen=True)
class _Tok:
    kind: str  # adj noun part rel vrel sep negpre negpost clause with on filler
    value: object = None
    surface: str = ""
    head: str = ""  # nouns: "" | "neutral" | "pattern" | "colour"


def _singular(phrase: str) -> str:
    *rest, w = phrase.split(" ")
    if w.endswith(("sses", "xes", "ches", "shes")):
        w = w[:-2]
    elif w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "y"
    elif w.endswith("s") and not w.endswith("ss"):
        w = w[:-1]
    return " ".join(rest + [w])


def _plural(phrase: str) -> str:
    *rest, w = phrase.split(" ")
    if w.endswith(("s", "x", "ch", "sh")):
        w += "es"
    else:
        w += "s"
    return " ".join(rest + [w])


def _build_lexicon() -> tuple[dict[tuple[str, ...], _Tok], int]:
    table: dict[tuple[str, ...], _Tok] = {}

    def add(phrase: str, tok: _Tok, derived: bool = False) -> None:
        key = tuple(phrase.split())
        tok = _Tok(tok.kind, tok.value, phrase, tok.head)
        old = table.get(key)
        if old is not None and (old.kind, old.value, old.head) != (tok.kind, tok.value, tok.head):
            if derived:
                return  # explicit entries win over derived plurals and singulars
            raise ValueError(f"lexicon: {phrase!r} means both {old.kind} {old.value} and {tok.kind} {tok.value}")
        if old is None:
            table[key] = tok

    explicit_nouns: list[tuple[str, _Tok]] = []

    def noun(phrase: str, f: Formula, head: str = "", vary: bool = True) -> None:
        add(phrase, _Tok("noun", f, head=head))
        if vary:
            explicit_nouns.append((phrase, _Tok("noun", f, head=head)))

    # function words first (they are few and must not be shadowed by derived forms)
    for p in L.FILLER:
        add(p, _Tok("filler"))
    for p in L.AND_WORDS:
        add(p, _Tok("sep", "and"))
    for p in L.OR_WORDS:
        add(p, _Tok("sep", "or"))
    add(",", _Tok("sep", ","))
    for p in L.NEG_PREFIX:
        add(p, _Tok("negpre"))
    for p in L.NEG_POST:
        add(p, _Tok("negpost"))
    for p in L.CLAUSE:
        add(p, _Tok("clause"))
    for p in L.WITH:
        add(p, _Tok("with"))
    for p in L.ON:
        add(p, _Tok("on"))
    for rel_table in (L.RELATION, L.EXTRA_RELATION):
        for rel, phrases in rel_table.items():
            for p in phrases:
                add(p, _Tok("rel", rel))
    for p in L.VAGUE_RELATION:
        if p not in L.WITH:  # "with other shapes" is a conjunction with any object: the subject again
            add(p, _Tok("vrel"))
    # adjectives
    for adj_table in (L.COLOUR_ADJ, L.TEXTURE_ADJ, L.EXTRA_ADJ):
        for name, phrases in adj_table.items():
            for p in phrases:
                add(p, _Tok("adj", concept(name)))
    for p in L.PATTERN_ADJ:
        add(p, _Tok("adj", _PATTERN_UNION))
    for p in L.OBJECT_ADJ:
        add(p, _Tok("adj", OBJECT))
    # nouns: explicit first, then derived singulars / plurals
    for name, phrases in L.BACKGROUND.items():
        for p in phrases:
            noun(p, concept(name), vary=False)
    for name, phrases in L.TEXTURE_NOUN.items():
        for p in phrases:
            noun(p, concept(name))
    for name, phrases in L.SHAPE_NOUNS.items():
        for p in phrases:
            noun(p, concept(name))
    for name, phrases in L.SHAPE_SINGULAR.items():
        for p in phrases:
            noun(p, concept(name))
    for name, phrases in L.EXTRA_NOUNS.items():
        for p in phrases:
            noun(p, concept(name), vary=_category(name) != "background")
    vague = {"shape": OBJECT, "colour": OBJECT, "texture": _PATTERN_UNION, "background": _BACKGROUND_UNION,
             "part": _ALL_PARTS}
    for cat, phrases in L.VAGUE.items():
        for p in phrases:
            head = "pattern" if p in L.PATTERN_HEADS else "colour" if p in L.COLOUR_HEADS else ""
            noun(p, vague[cat], head=head, vary=False)
    for p in L.PATTERN_HEADS:
        noun(p, _PATTERN_UNION, head="pattern", vary=False)
    for p in L.COLOUR_HEADS:
        noun(p, OBJECT, head="colour", vary=False)
    for p in L.NEUTRAL_HEADS:
        noun(p, OBJECT, head="neutral", vary=False)
    for part, phrases in list(L.PART.items()) + list(L.EXTRA_PART.items()):
        for p in phrases:
            add(p, _Tok("part", (part,)))
    for part, phrases in L.PART_ALONE.items():
        for p in phrases:
            noun(p, _partify(OBJECT, (part,)), vary=False)
    for p in L.ALL_PARTS_OF:
        add(p, _Tok("part", tuple(PARTS)))
    for p, tok in explicit_nouns:
        if " of " in p:
            continue
        add(_singular(p), tok, derived=True)
        add(_plural(p), tok, derived=True)
    return table, max(len(k) for k in table)


_LEXICON, _MAX_LEN = _build_lexicon()
_WORD = re.compile(r"[a-z0-9]+|,")


def _words(text: str) -> list[str]:
    t = text.lower().replace("\u2019", "'").replace("'", "")
    t = re.sub(r"[\s.!?;:,]+$", "", t.strip())
    t = re.sub(r"[;:]", ",", t)
    return _WORD.findall(t)


def _lex(words: list[str]) -> tuple[list[_Tok], list[str], list[str]]:
    toks: list[_Tok] = []
    unknown: list[str] = []
    i, n = 0, len(words)
    while i < n:
        for k in range(min(_MAX_LEN, n - i), 0, -1):
            tok = _LEXICON.get(tuple(words[i:i + k]))
            if tok is not None:
                if tok.kind != "filler":
                    toks.append(tok)
                i += k
                break
        else:
            unknown.append(words[i])
            i += 1
    # "the color red": a colour head right before a colour adjective is filler; ", and" is "and"
    out: list[_Tok] = []
    for j, tok in enumerate(toks):
        nxt = toks[j + 1] if j + 1 < len(toks) else None
        if tok.head == "colour" and nxt is not None and nxt.kind == "adj" and _is_colour(nxt.value):
            continue
        if tok.kind == "sep" and tok.value == "," and nxt is not None and nxt.kind == "sep":
            continue
        out.append(tok)
    known = [t.surface for t in out if t.kind in ("adj", "noun", "part", "rel", "vrel")]
    return out, known, unknown


def _is_colour(f: object) -> bool:
    return isinstance(f, Formula) and f.op == "concept" and _category(f.name) == "colour"


# ----------------------------------------------------------------------------------- exact formula language

_EXACT: dict[tuple[str, ...], tuple[str, str]] = {tuple(n.split()): ("concept", n) for n in CONCEPT_NAMES}
_EXACT.update({("and",): ("op", "and"), ("or",): ("op", "or"), ("and", "not"): ("op", "and not"),
               ("not",): ("not", ""), ("(",): ("(", ""), (")",): (")", "")})
_EXACT.update({tuple(r.split()): ("op", r) for r in ("above", "below", "left of", "right of")})
_EXACT_MAX = max(len(k) for k in _EXACT)


def _exact_tokens(text: str) -> list[tuple[str, str]] | None:
    t = re.sub(r"[\s.]+$", "", text.lower().strip())
    words = re.findall(r"[a-z]+|[()]|\S", t)
    out, i = [], 0
    while i < len(words):
        for k in range(min(_EXACT_MAX, len(words) - i), 0, -1):
            hit = _EXACT.get(tuple(words[i:i + k]))
            if hit is not None:
                out.append(hit)
                i += k
                break
        else:
            return None
    return out or None


def _exact_and(acc: Formula, c: Formula) -> Formula:
    """Left-deep "acc and c", with the exclusive-category exception (see the module docstring)."""
    if c.op == "concept":
        members = [acc] if acc.op == "concept" else list(acc.args) if acc.op == "or" else []
        if members and all(m.op == "concept" and _exclusive(m.name, c.name) for m in members):
            return disj(acc, c)
    return conj(acc, c)


def _exact_parse(toks: list[tuple[str, str]]) -> Formula:
    pos = 0

    def term() -> Formula:
        nonlocal pos
        if pos >= len(toks):
            raise _Fail("formula ends early")
        kind, val = toks[pos]
        pos += 1
        if kind == "concept":
            return concept(val)
        if kind == "not":
            return _negate(term())
        if kind == "(":
            f = expr()
            if pos >= len(toks) or toks[pos][0] != ")":
                raise _Fail("unbalanced parenthesis")
            pos += 1
            return f
        raise _Fail(f"unexpected {val or kind}")

    def expr() -> Formula:
        nonlocal pos
        acc = term()
        while pos < len(toks) and toks[pos][0] == "op":
            op = toks[pos][1]
            pos += 1
            right = term()
            if op == "and":
                acc = _exact_and(acc, right)
            elif op == "or":
                acc = disj(acc, right)
            elif op == "and not":
                acc = conj(acc, _negate(right))
            else:
                acc = relation(acc, op, right)
        return acc

    f = expr()
    if pos != len(toks):
        raise _Fail("trailing tokens")
    return f


# ----------------------------------------------------------------------------------- natural language

class _NL:
    """Recursive descent over the tokens of one text (see the module docstring for the grammar)."""

    def __init__(self, toks: list[_Tok]):
        self.toks = toks
        self.pos = 0

    def peek(self, k: int = 0) -> _Tok | None:
        j = self.pos + k
        return self.toks[j] if j < len(self.toks) else None

    def is_(self, k: int, *kinds: str) -> bool:
        t = self.peek(k)
        return t is not None and t.kind in kinds

    def take(self) -> _Tok:
        t = self.peek()
        if t is None:
            raise _Fail("text ends early")
        self.pos += 1
        return t

    def parse(self) -> Formula:
        items = [self.item()]
        while self.peek() is not None:
            if not self.is_(0, "sep"):
                raise _Fail(f"unexpected {self.peek().surface!r}")
            self.take()
            items.append(self.item())
        return disj(*items)

    def item(self) -> Formula:
        f = self.np()
        if self.is_(0, "rel"):
            rel = self.take().value
            obj = self.rel_object()
            f = relation(f, rel, obj)
            if self.peek() is not None and not self.is_(0, "sep"):
                raise _Fail("only shapes may follow a relation")
        elif self.is_(0, "vrel"):
            self.take()
            self.rel_object()  # "near other shapes": no relation the formulas know; the subject stays
            if self.peek() is not None and not self.is_(0, "sep"):
                raise _Fail("only shapes may follow a relation")
        return f

    def rel_object(self) -> Formula:
        obj = self.core()
        if not _shape_only(obj):
            raise _Fail("a relation's object must be shapes")
        # "circles above squares or stars": bare shape nouns after the object join it
        while (self.is_(0, "sep") and self.is_(1, "noun") and _shape_only(self.peek(1).value)
               and (self.peek(2) is None or self.is_(2, "sep"))):
            self.take()
            obj = disj(obj, self.take().value)
        return obj

    def np(self) -> Formula:
        f = self.core()
        while True:
            t = self.peek()
            if t is None:
                return f
            if t.kind == "clause":
                self.take()
                negate = self.is_(0, "negpre")
                if negate:
                    self.take()
                c = self.core()
                f = _and(f, _negate(c) if negate else c)
            elif t.kind in ("with", "on"):
                self.take()
                f = _and(f, self.core())
            elif t.kind == "negpost":
                self.take()
                f = _and(f, _negate(self.core()))
            elif t.kind == "sep" and (self.is_(1, "negpost") or t.value == "and" and self.is_(1, "negpre")):
                self.take()  # ", but not blue ones", "and not blue ones"
                self.take()
                f = _and(f, _negate(self.core()))
            else:
                return f

    def adj_item(self) -> Formula:
        if self.is_(0, "negpre"):
            self.take()
            return _negate(self.take().value)
        return self.take().value

    def starts_adj(self, k: int) -> bool:
        return self.is_(k, "adj") or (self.is_(k, "negpre") and self.is_(k + 1, "adj"))

    def core(self) -> Formula:
        mods: list[Formula] = []
        head: _Tok | None = None
        head_f: Formula | None = None
        while True:
            if self.starts_adj(0):
                group = [self.adj_item()]
                while self.is_(0, "sep") and self.starts_adj(1):
                    self.take()
                    group.append(self.adj_item())
                mods.append(disj(*group) if len(group) > 1 else group[0])
            elif self.is_(0, "negpre") and self.is_(1, "noun"):
                self.take()
                mods.append(_negate(self.take().value))
                break
            elif self.is_(0, "noun"):
                head = self.take()
                head_f = head.value
                break
            elif self.is_(0, "part"):
                parts = self.take().value
                head_f = _partify(self.core(), parts)
                break
            else:
                break
        if not mods and head_f is None:
            t = self.peek()
            raise _Fail(f"expected a noun phrase at {t.surface if t else 'the end'!r}")
        if head is not None and head.head == "pattern" and any(concepts(m) & _TEXTURE_SET for m in mods):
            head_f = None  # "striped patterns": the adjective says which pattern
        parts = mods + ([head_f] if head_f is not None else [])
        if all(p.op == "not" or (p.op == "and" and all(a.op == "not" for a in p.args)) for p in parts):
            parts.append(OBJECT)  # "non blue": objects that are not blue
        return _and(*parts)


# ----------------------------------------------------------------------------------- entry point

@lru_cache(maxsize=1 << 16)
def parse(text: str) -> Parsed:
    """The formula a description claims (see the module docstring); never raises."""
    if not isinstance(text, str) or not text.strip():
        return Parsed(EMPTY, False, (), ())
    exact = _exact_tokens(text)
    if exact is not None:
        try:
            f = _exact_parse(exact)
            known = tuple(v for k, v in exact if k == "concept")
            return Parsed(f, True, known, ())
        except (_Fail, ValueError):
            pass
    if "(" in text or ")" in text:  # parentheses belong to the formula language only
        return Parsed(EMPTY, False, (), ())
    toks, known, unknown = _lex(_words(text))
    if unknown:
        return Parsed(EMPTY, False, tuple(known), tuple(unknown))
    if not toks:
        return Parsed(EMPTY, False, (), ())
    try:
        f = _NL(toks).parse()
    except (_Fail, ValueError, TypeError, AttributeError):
        return Parsed(EMPTY, False, tuple(known), ())
    if f.op == "empty":
        return Parsed(EMPTY, False, tuple(known), ())
    return Parsed(f, True, tuple(known), ())


__all__ = ["PARSER_VERSION", "Parsed", "parse"]
