"""Numbers the MILAN paper reports for the real corpus, kept apart from anything recomputed.

They come from Hernandez et al. (ICLR 2022), OpenReview version, Tables 2 and 3
(BERTScore F1 against the human descriptions, roberta-large, the paper's
own random and unreleased splits). Nobody here can recompute them: the
corpus and the paper's splits cannot be fetched in this build, and the
paper's test units were never published. The leaderboard prints them in
rows marked "reported, not recomputed" so they are never mistaken for, or
ranked against, validated submissions.
"""
from __future__ import annotations

from dataclasses import dataclass

SOURCE = "Hernandez et al., ICLR 2022 (OpenReview version)"


@dataclass(frozen=True)
class ReportedRow:
    """One number of the paper: which table, which describer, which train -> test split."""

    table: str
    protocol: str  # our protocol name (milannotations-format.md section 10)
    describer: str
    split: str  # the paper's wording of train -> test
    bertscore_f1: float


def _t2(held_out: str, compexp: float, netdissect: float, p: float, pmi: float) -> list[ReportedRow]:
    split = f"not-{held_out} -> {held_out}"
    return [
        ReportedRow("Table 2", "leave-one-out", "CompExp", split, compexp),
        ReportedRow("Table 2", "leave-one-out", "NetDissect", split, netdissect),
        ReportedRow("Table 2", "leave-one-out", "MILAN p(d|E)", split, p),
        ReportedRow("Table 2", "leave-one-out", "MILAN pmi(d;E)", split, pmi),
    ]


def _t3(protocol: str, split: str, value: float) -> ReportedRow:
    return ReportedRow("Table 3", protocol, "MILAN", split, value)


REPORTED: tuple[ReportedRow, ...] = (
    *_t2("alexnet-imagenet", 0.01, 0.24, 0.34, 0.38),
    *_t2("alexnet-places365", 0.02, 0.21, 0.31, 0.37),
    *_t2("resnet152-imagenet", 0.01, 0.25, 0.27, 0.35),
    *_t2("resnet152-places365", 0.03, 0.22, 0.30, 0.31),
    _t3("within-network", "alexnet-imagenet (90/10)", 0.39),
    _t3("within-network", "alexnet-places365 (90/10)", 0.47),
    _t3("within-network", "resnet152-imagenet (90/10)", 0.35),
    _t3("within-network", "resnet152-places365 (90/10)", 0.28),
    _t3("within-network", "biggan-imagenet (90/10)", 0.49),
    _t3("within-network", "biggan-places365 (90/10)", 0.52),
    _t3("across-network", "alexnet -> resnet152", 0.28),
    _t3("across-network", "resnet152 -> alexnet", 0.35),
    _t3("across-arch", "base -> dino_vits8-imagenet", 0.34),
    _t3("across-dataset", "imagenet -> places365", 0.30),
    _t3("across-dataset", "places365 -> imagenet", 0.33),
    _t3("across-task", "cls -> gen", 0.34),
    _t3("across-task", "gen -> cls", 0.27),
)


def reported_for(protocol: str) -> list[ReportedRow]:
    """The paper's rows for one of our protocol names, in table order."""
    return [r for r in REPORTED if r.protocol == protocol]


def reported_protocols() -> list[str]:
    return list(dict.fromkeys(r.protocol for r in REPORTED))
