"""Compositional Explanations (Mu & Andreas, NeurIPS 2020) as a describer: logical formulas of concepts.

A unit is explained by the formula over concept masks, built from up to
`max_length` concepts with AND, OR and AND NOT, whose mask has the highest
pooled IoU with the unit's exemplar masks. Formulas are left-deep, as in
the paper: ((a op b) op c). The search is the original's beam search
(jayelm/compexp, `NeuronOperator.compute_best_iou`), reproduced step for
step (`beam_search`): start from the `beam_size` best single concepts; at
each step extend every formula in the beam by every (concept, operator)
pair and keep the `beam_size` best of the old beam and the new formulas,
ties going to the earlier one. Each extension step is vectorised: for a
formula mask F, the intersections and sizes of F AND c, F OR c and F AND
NOT c with the unit mask follow, for every concept c at once, from two
matrix-vector products (`_extend`). All arithmetic is float64 on integer
pixel counts, so scores are exact and ties are real ties.

Text: `text="formula"` gives the formula as the MILAN paper scored it
(lowercase, no parentheses, logical words kept: "red and circle and not
blue"); `text="phrase"` renders it as a readable noun phrase ("red
circles that are not blue").

Differences from the original: IoU pooled over the unit's k exemplars, not
the probe dataset; concepts from `baselines.segmenters`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import torch
from tqdm.auto import tqdm

from milannotations.contract import AnnotatedExemplars, DescriberMeta, Exemplars
from milannotations.errors import MilanError

from .dissect import UnitConcepts, ranking_iou, unit_concepts
from .netdissect import NETDISSECT_CITATION, segmenter_reference
from .registry import register_describer
from .segmenters import MODIFIER_CATEGORIES, Segmenter, create_segmenter

COMPEXP_CITATION = "Mu, Andreas. Compositional Explanations of Neurons. NeurIPS 2020"
OPS = ("and", "or", "and not")


@dataclass(frozen=True)
class Formula:
    """A left-deep formula: `first`, then (op, concept) terms applied in order. Concepts are indices."""

    first: int
    terms: tuple[tuple[str, int], ...] = ()

    def __len__(self) -> int:
        return 1 + len(self.terms)

    @property
    def concepts(self) -> tuple[int, ...]:
        return (self.first,) + tuple(c for _, c in self.terms)

    def extend(self, op: str, concept: int) -> "Formula":
        return Formula(self.first, self.terms + ((op, concept),))

    def key(self) -> tuple:
        """Identity up to reorderings that cannot change the mask.

        A chain of AND / AND NOT is a set of required and a set of excluded
        concepts; a chain of ORs is a set; otherwise a leading run of one
        commutative operator is a set and what follows keeps its order.
        """
        ops = [op for op, _ in self.terms]
        if all(op in ("and", "and not") for op in ops):
            return ("conj", frozenset((self.first,) + tuple(c for op, c in self.terms if op == "and")),
                    frozenset(c for op, c in self.terms if op == "and not"))
        run = 0
        while run < len(ops) and ops[run] == ops[0] and ops[0] in ("and", "or"):
            run += 1
        head = frozenset((self.first,) + tuple(c for _, c in self.terms[:run]))
        return (ops[0] if run else None, head, self.terms[run:])

    def mask(self, masks: torch.Tensor) -> torch.Tensor:
        """The formula's bool mask from per-concept bool masks (C x N), indexed by this formula's concepts."""
        m = masks[self.first].clone()
        for op, c in self.terms:
            if op == "and":
                m &= masks[c]
            elif op == "or":
                m |= masks[c]
            elif op == "and not":
                m &= ~masks[c]
            else:
                raise ValueError(f"unknown operator {op!r}")
        return m

    def render(self, names: Sequence[str]) -> str:
        """Lowercase formula text, e.g. "red and circle and not blue"."""
        parts = [names[self.first]]
        for op, c in self.terms:
            parts += [op, names[c]]
        return " ".join(parts).lower()

    def map(self, index: Sequence[int]) -> "Formula":
        """The same formula with concept indices translated through `index`."""
        return Formula(int(index[self.first]), tuple((op, int(index[c])) for op, c in self.terms))


@dataclass(frozen=True)
class Explanation:
    """A unit's best formula (indices into the segmenter's concepts) and its pooled IoU."""

    formula: Formula
    iou: float
    text: str


def _extend(fmask: torch.Tensor, f_inter: float, f_size: float, M: torch.Tensor, uw: torch.Tensor,
            w: torch.Tensor, Mu: torch.Tensor, area: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Intersection with the unit and size of `F op c` for every concept c and op, from two products.

    M: C x S concept masks (float64); uw: the unit mask times the pixel
    weights; w: pixel weights; Mu = M @ uw and area = M @ w precomputed.
    Pixel weights are counts, so every value is an exact integer in float64.
    """
    f = fmask.to(M.dtype)
    a = M @ (f * uw)  # |F & c & u|
    b = M @ (f * w)   # |F & c|
    return {
        "and": (a, b),
        "or": (f_inter + Mu - a, f_size + area - b),
        "and not": (f_inter - a, f_size - b),
    }


#: The order in which the original tries operators on each (formula, concept); ties keep it.
SEARCH_ORDER = ("or", "and", "and not")


def original_length(formula: Formula) -> int:
    """The formula's length as jayelm/compexp counts it for its complexity penalty: leaves plus NOT nodes."""
    return len(formula) + sum(op == "and not" for op, _ in formula.terms)


@dataclass
class _Entry:
    formula: Formula
    score: float  # what the beam is ranked by: penalty factor x inter / (union + 1e-10)
    mask: torch.Tensor  # bool S
    inter: float
    size: float


def beam_search(uc: UnitConcepts, *, max_length: int = 3, beam_size: int = 5,
                ops: Sequence[str] = OPS, length_penalty: float = 0.0) -> list[tuple[Formula, float]]:
    """Best formulas for one unit with their IoU, best first: jayelm/compexp's beam search, step for step.

    The beam starts from the `beam_size` concepts of highest IoU among
    those with IoU > 0. Each step scores, after the current beam, every
    extension of every beam formula by every concept (those already in it
    and those absent from the exemplars too) and operator, in the order
    formula, concept, operator (OR, AND, AND NOT), and keeps the
    `beam_size` best with a stable sort. So equal scores go to the earlier
    candidate, as in the original: a formula beats its own no-op
    extensions ("a and not b" with b disjoint from a), which may still fill
    the beam behind it. Scores are `(1 - length_penalty)^(length - 1)` x
    inter / (union + 1e-10) in float64 (`ranking_iou`), with the length of
    `original_length`; `length_penalty=0` is the original's setting.
    Returns at most `beam_size` (formula, exact IoU) pairs; formula concept
    indices are rows of `uc.masks` (map them with `Formula.map(uc.index)`).
    """
    if max_length < 1 or beam_size < 1:
        raise MilanError(f"compexp needs max_length >= 1 and beam_size >= 1, got {max_length}, {beam_size}")
    C = uc.masks.shape[0]
    if C == 0:
        return []
    masks = uc.masks.bool()
    M = masks.to(torch.float64)
    w = uc.weights()
    uw = uc.unit.to(torch.float64) * w
    ua = float(uw.sum())
    Mu = M @ uw
    area = M @ w
    single = ranking_iou(Mu, area + ua - Mu)
    start = sorted((i for i in range(C) if float(Mu[i]) > 0), key=lambda i: -float(single[i]))[:beam_size]
    beam = [_Entry(Formula(i), float(single[i]), masks[i], float(Mu[i]), float(area[i])) for i in start]
    keep = 1.0 - float(length_penalty)
    search_ops = [op for op in SEARCH_ORDER if op in ops]
    n_ops = len(search_ops)

    for _ in range(max_length - 1 if n_ops else 0):
        scores = [torch.tensor([e.score for e in beam], dtype=torch.float64)]
        sizes = []
        for e in beam:
            ext = _extend(e.mask, e.inter, e.size, M, uw, w, Mu, area)
            inter = torch.stack([ext[op][0] for op in search_ops], dim=1)  # C x ops
            size = torch.stack([ext[op][1] for op in search_ops], dim=1)
            base = original_length(e.formula)
            penalty = torch.tensor([keep ** (base + (op == "and not")) for op in search_ops], dtype=torch.float64)
            scores.append((penalty * ranking_iou(inter, size + ua - inter)).reshape(-1))
            sizes.append((inter.reshape(-1), size.reshape(-1)))
        flat = torch.cat(scores)
        chosen = torch.sort(-flat, stable=True).indices[:beam_size].tolist()
        if chosen == list(range(len(beam))):
            break  # nothing new made the beam: every later step would repeat this one
        new_beam = []
        for j in chosen:
            if j < len(beam):
                new_beam.append(beam[j])
                continue
            j -= len(beam)
            parent, rest = divmod(j, C * n_ops)
            c, o = divmod(rest, n_ops)
            op, p = search_ops[o], beam[parent]
            if op == "and":
                m = p.mask & masks[c]
            elif op == "or":
                m = p.mask | masks[c]
            else:
                m = p.mask & ~masks[c]
            inter, size = sizes[parent]
            new_beam.append(_Entry(p.formula.extend(op, c), float(flat[len(beam) + j]), m,
                                   float(inter[rest]), float(size[rest])))
        beam = new_beam
    return [(e.formula, _exact(e.inter, e.size + ua - e.inter)) for e in beam]


def _exact(inter: float, union: float) -> float:
    return inter / union if union > 0 else 0.0


#: Synthetic truth kinds expressible as a two-concept formula, and their operator.
_TRUTH_OPS = {"and": "and", "or": "or", "polysemantic": "or", "not": "and not"}


def formula_from_truth(truth: dict, concepts: Sequence[str]) -> Formula | None:
    """A synthetic unit's truth (`{"kind", "concepts", ...}`) as a Formula over `concepts`, for scoring recovery.

    None for kinds no AND/OR/AND NOT formula expresses (spatial relations).
    Evaluation code only: describers never see the truth.
    """
    names = list(concepts)
    c = truth["concepts"]
    if truth["kind"] == "concept":
        return Formula(names.index(c[0]))
    if truth["kind"] in _TRUTH_OPS:
        return Formula(names.index(c[0]), ((_TRUTH_OPS[truth["kind"]], names.index(c[1])),))
    return None


def _plural(noun: str) -> str:
    """English plural of a concept noun; "top edge of star" -> "top edges of star", mass nouns unchanged."""
    if " of " in noun:
        head, tail = noun.split(" of ", 1)
        return f"{_plural(head)} of {tail}"
    words = noun.split(" ")
    w = words[-1]
    if w in _MASS_NOUNS or noun in _MASS_NOUNS:
        return noun
    if w.endswith(("s", "x", "z", "ch", "sh")):
        w += "es"
    elif w.endswith("y") and len(w) > 1 and w[-2] not in "aeiou":
        w = w[:-1] + "ies"
    else:
        w += "s"
    words[-1] = w
    return " ".join(words)


_MASS_NOUNS = frozenset({
    "wall", "sky", "floor", "ceiling", "road", "grass", "earth", "water", "sea", "field", "sand", "land",
    "dirt track", "river", "food", "apparel", "snow", "stripes", "dots", "background",
})


def render_phrase(formula: Formula, names: Sequence[str], categories: Sequence[str]) -> str:
    """A readable noun phrase for a formula: "red circles", "squares or triangles", "circles that are not blue".

    The left-deep formula is distributed into a disjunction of conjunctive
    groups (AND and AND NOT apply to every group formed so far; OR starts a
    new group), which is exact for left-deep formulas. In each group,
    colours and textures become adjectives before the (pluralised) nouns.
    """
    groups: list[tuple[list[int], list[int]]] = [([formula.first], [])]
    for op, c in formula.terms:
        if op == "or":
            groups.append(([c], []))
        else:
            for pos, neg in groups:
                (pos if op == "and" else neg).append(c)

    def is_mod(c: int) -> bool:
        return categories[c] in MODIFIER_CATEGORIES

    def group_text(pos: list[int], neg: list[int]) -> str:
        mods = [names[c] for c in pos if is_mod(c)]
        nouns = [names[c] for c in pos if not is_mod(c)]
        if nouns:
            bg = [names[c] for c in pos if categories[c] == "background"]
            fg = [n for n in nouns if n not in bg] or nouns[:1]
            rest_bg = [b for b in bg if b not in fg]
            text = " ".join(mods + [" and ".join(n if n in bg else _plural(n) for n in fg)])
            if rest_bg:
                text += " on " + " and ".join(rest_bg)
        elif len(mods) == 1 and not neg:
            text = mods[0]
        else:
            text = " ".join(mods) + " things"
        neg_mods = [names[c] for c in neg if is_mod(c)]
        neg_nouns = [_plural(names[c]) for c in neg if not is_mod(c)]
        if neg_mods:
            text += " that are not " + " or ".join(neg_mods)
        if neg_nouns:
            text += (" and" if neg_mods else "") + " without " + " or ".join(neg_nouns)
        return text

    return " or ".join(group_text(p, n) for p, n in groups).lower()


@register_describer("compexp")
class CompExp:
    """Explain each unit by the best logical formula of up to `max_length` concepts.

    segmenter: `oracle` (synthetic corpus only, an upper bound), `synth` or
    `ade20k`; other keyword arguments go to the segmenter. text: "formula"
    (as the paper scored it) or "phrase". ops: "+"-separated subset of
    and, or, andnot (default all three). length_penalty: 1 minus the
    original's FORMULA_COMPLEXITY_PENALTY; the default 0 is the original's
    (no penalty), and the only setting chosen without looking at any unit's
    truth.
    """

    def __init__(self, segmenter: str | Segmenter = "oracle", max_length: int = 3, beam_size: int = 5,
                 text: str = "formula", ops: str = "and+or+andnot", length_penalty: float = 0.0,
                 progress: bool = False, device: str | None = None, **segmenter_args: Any) -> None:
        if text not in ("formula", "phrase"):
            raise MilanError(f"compexp text must be 'formula' or 'phrase', got {text!r}")
        names = {"and": "and", "or": "or", "andnot": "and not", "and not": "and not"}
        try:
            self.ops = tuple(names[o.strip()] for o in str(ops).split("+") if o.strip())
        except KeyError as e:
            raise MilanError(f"compexp ops must be a '+'-separated subset of and, or, andnot; got {ops!r}") from e
        if not 1 <= int(max_length) <= 10 or not 1 <= int(beam_size) <= 100:
            raise MilanError(f"compexp needs 1 <= max_length <= 10 and 1 <= beam_size <= 100, got "
                             f"{max_length}, {beam_size}")
        self.segmenter = create_segmenter(segmenter, device=device, **segmenter_args)
        self.max_length = int(max_length)
        self.beam_size = int(beam_size)
        self.text = text
        if not 0.0 <= float(length_penalty) < 1.0:
            raise MilanError(f"compexp length_penalty must be in [0, 1), got {length_penalty}")
        self.length_penalty = float(length_penalty)
        self.progress = progress
        self.meta = DescriberMeta(
            oracle=bool(self.segmenter.upper_bound), name="compexp", version="2", trained_on=(),
            citation=COMPEXP_CITATION + "; " + NETDISSECT_CITATION + (
                f"; segmenter: {self.segmenter.citation}" if self.segmenter.citation else ""),
            reference=(segmenter_reference(self.segmenter)
                       + f"; formula length <= {self.max_length}, beam {self.beam_size}, length penalty "
                          f"{self.length_penalty}, text={self.text}"),
        )

    def fit(self, train: Sequence[AnnotatedExemplars]) -> None:
        """Compositional Explanations learn nothing from descriptions."""

    def explain(self, unit: Exemplars) -> Explanation:
        """The best formula of one unit, its IoU and its text."""
        # Over the whole vocabulary, as the original: absent concepts take beam slots too.
        uc = unit_concepts(unit, self.segmenter).with_all_concepts(len(self.segmenter.concepts))
        found = beam_search(uc, max_length=self.max_length, beam_size=self.beam_size, ops=self.ops,
                            length_penalty=self.length_penalty)
        names = [self.segmenter.describe_concept(i) for i in range(len(self.segmenter.concepts))]
        f, iou = found[0] if found else (Formula(0), 0.0)
        text = f.render(names) if self.text == "formula" else render_phrase(f, names, self.segmenter.categories)
        return Explanation(f, float(iou), text)

    def describe(self, units: Sequence[Exemplars]) -> list[str]:
        return [self.explain(u).text for u in tqdm(units, desc="compexp", disable=not self.progress)]
