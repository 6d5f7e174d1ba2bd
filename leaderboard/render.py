"""The leaderboard as a Markdown file and a static HTML page, from the validated submission folders.

One table group per benchmark, protocol, scorer and data revision (numbers from
different scorers or data are not comparable, so they never share a table).
Each group has up to two ranked views, one per metric family of the metric
table (`eval.metrics.spec`):

* **agreement**: ranked by normalized BERTScore F1 averaged over the
  protocol's splits, (method - best floor) / (human ceiling - best floor), the
  ceiling being the annotators' leave-one-out agreement;
* **truth** (synthetic world only, shown where the group's submissions carry
  truth metrics): ranked by normalized pixel Pearson, the ceiling being the
  truth formula scored as a description; the annotators' own descriptions
  scored by truth are a reference row, diagnostic metrics are shown apart and
  never ranked, and the parser's coverage is a column.

Floors, best floor and ceiling are reference rows of every view, and so are
runs whose describer used the oracle segmenter (an upper bound, never a ranked
entry). For the real corpus, the numbers the paper reports sit in separate rows
marked "reported, not recomputed".

Only validated submissions are published: `milan-leaderboard validate` writes
a validation record (`validated.json` beside the submissions folder) with the
sha256 of each submission's files and the outcome, and a submission is shown
only when its files still have those hashes and the outcome was valid. The
others are named on the page and on stderr.

Every string that came from a submission (names, authors, links,
descriptions, split names) is escaped: `html.escape` on the page and
`md_escape` in the README. The page has no external resources: CSS, JS and
the SVG plots are inline.
"""
from __future__ import annotations

import csv
import html
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from eval import Scores, SplitRecord
from eval.metrics.spec import AGREEMENT_METRICS, HEADLINE, HEADLINES, METRIC_NAMES, TRUTH_METRICS
from eval.metrics.spec import METRICS as METRIC_SPECS
from milannotations.errors import MilanError

from .reported import SOURCE, reported_for, reported_protocols
from .submission import (DESCRIPTIONS, ORACLE_NOTE, Submission, find_submissions, load_submission, read_record,
                         record_path, record_status)

#: Every metric of the one metric table (eval.metrics.spec); each view shows its family's columns.
METRICS = METRIC_NAMES
METRIC_LABELS = {m.name: m.label for m in METRIC_SPECS}
#: Metrics that failed a sanity check: shown apart, never ranked.
DIAGNOSTIC = frozenset(m.name for m in METRIC_SPECS if m.diagnostic)
VIEWS = ("agreement", "truth")
VIEW_METRICS = {"agreement": AGREEMENT_METRICS, "truth": TRUTH_METRICS}
VIEW_TITLES = {"agreement": "Agreement with the annotators",
               "truth": "Truth: the synthetic world's formula"}
VIEW_NOTES = {
    "agreement": "Ranked by normalized {label} averaged over splits: (describer − best floor) / (human ceiling − "
                 "best floor), the ceiling being each annotator scored against the others (leave-one-out); "
                 "0 = a trivial describer, 1 = human agreement. Other metrics are raw means over splits.",
    "truth": "Ranked by normalized {label} averaged over splits: (describer − best floor) / (truth formula − "
             "best floor), the ceiling being the unit's true formula scored as a description; 0 = a trivial "
             "describer, 1 = the truth. Other metrics are raw means over splits; diagnostic metrics are shown "
             "apart and never ranked. \"parsed\" is how many descriptions the truth parser read as a formula.",
}
CEILING_LABELS = {"agreement": "human ceiling (annotators, leave-one-out)",
                  "truth": "ceiling: truth formula (scored as a description)"}
PLOT_CEILING = {"agreement": "human ceiling", "truth": "truth formula"}
HUMANS_LABEL = "annotators, scored by truth"
DIAGNOSTIC_NOTE = "diagnostic: not ranked"
SAMPLES = 5
BENCHMARK_LABELS = {"synth": "synthetic ground-truth corpus (labelled synthetic; not human agreement)",
                    "milannotations": "MILANNOTATIONS (human descriptions)"}

#: Characters that make Markdown inside a table cell (the rest only matter at the start of a line,
#: where submitted text never is; < and > become entities first).
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md_escape(text: Any) -> str:
    """A submitted string as inert Markdown: no markup, no HTML, no table breaks, one line."""
    s = html.escape(" ".join(str(text).split()), quote=False)  # &, <, > as entities
    return _MD_SPECIAL.sub(r"\\\1", s)


def h(text: Any) -> str:
    """A submitted string as inert HTML text or attribute value."""
    return html.escape(str(text), quote=True)


def _safe_link(url: str) -> str | None:
    """Only plain http(s) links become hrefs; anything else (javascript:, data:) stays text."""
    u = str(url).strip()
    return u if re.match(r"^https?://[^\s\"'<>]+$", u) else None


def fmt(v: float | None) -> str:
    if v is None or not isinstance(v, (int, float)) or math.isnan(v):
        return "—"
    return f"{v:.3f}" if abs(v) < 10 else f"{v:.1f}"


def fmt_ci(ci: Sequence[float] | None) -> str:
    if not ci or len(ci) != 2 or any(not isinstance(x, (int, float)) for x in ci):
        return ""
    return f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def _mean(xs: Iterable[float | None]) -> float | None:
    vals = [float(x) for x in xs if isinstance(x, (int, float)) and not math.isnan(x)]
    return sum(vals) / len(vals) if vals else None


def _value(scores: Scores | None, metric: str) -> float | None:
    """A section's value of `metric`; None where the section or the metric is absent, or the value null."""
    v = None if scores is None else scores.value(metric)
    return None if v is None else float(v)


def _ci(scores: Scores | None, metric: str) -> list[float] | None:
    ci = None if scores is None else scores.ci95(metric)
    # a normalized interval is null where the ceiling does not clear the floor
    return list(ci) if ci is not None and None not in ci else None


def _normalize(v: float | None, floor: float | None, ceil: float | None) -> float | None:
    """The harness's rule (`eval.harness.normalized_value`): None where the ceiling does not clear the floor."""
    from eval import normalized_value

    return normalized_value(v, floor, ceil)


def has_family(sub: Submission, family: str) -> bool:
    """Whether every split of `sub` carries the family's headline metric (truth: rescored synthetic runs)."""
    splits = sub.results.splits
    return bool(splits) and all(_value(s.metrics, HEADLINES[family]) is not None for s in splits)


@dataclass
class Parse:
    """The truth parser's coverage over a run's splits."""

    parser: str
    parsed: int
    descriptions: int
    unparsed: list[str]

    @property
    def fraction(self) -> float | None:
        return self.parsed / self.descriptions if self.descriptions else None

    @property
    def text(self) -> str:
        f = self.fraction
        return f"{self.parsed}/{self.descriptions}" + (f" ({100 * f:.0f}%)" if f is not None else "")


def _parse(splits: Sequence[SplitRecord]) -> Parse | None:
    reps = [s.parse for s in splits if s.parse is not None]
    if not reps:
        return None
    examples = [x for r in reps for x in r.unparsed_examples]
    return Parse(reps[0].parser, sum(r.parsed for r in reps), sum(r.descriptions for r in reps), examples[:SAMPLES])


@dataclass
class Entry:
    """One run's row: means over splits, per-split headline numbers per family, samples."""

    sub: Submission
    norm: dict[str, float | None]
    raw: dict[str, float | None]
    per_split: dict[str, list[tuple[str, float | None, list[float] | None]]]  # family -> (split, norm, ci)
    held_out: bool
    not_held_out_splits: list[str]
    samples: list[tuple[str, str]]
    rank: int = 0  # in the agreement view
    trials: int = 1
    spreads: dict[str, float | None] = field(default_factory=dict)  # family -> SD over trials (normalized)
    parse: Parse | None = None
    families: tuple[str, ...] = ("agreement",)

    @property
    def spread(self) -> float | None:
        return self.spreads.get("agreement")

    def spread_text_of(self, family: str) -> str:
        """"± sd over N trials" where the run had several (learned describers retrained per seed)."""
        sd = self.spreads.get(family)
        return f"± {fmt(sd)} over {self.trials} trials" if sd is not None else ""

    @property
    def spread_text(self) -> str:
        return self.spread_text_of("agreement")

    def score_of(self, family: str) -> float:
        v = self.norm.get(HEADLINES[family])
        return v if v is not None else -math.inf

    @property
    def score(self) -> float:
        return self.score_of("agreement")


@dataclass
class RefRow:
    """A reference row: a floor, the best floor, the ceiling, the annotators scored by truth, or an oracle
    run; with its raw and normalized means (and, for oracle runs, the run itself)."""

    label: str
    kind: str  # "floor" | "best-floor" | "ceiling" | "humans" | "oracle"
    raw: dict[str, float | None]
    norm: dict[str, float | None]
    entry: Entry | None = None


@dataclass
class View:
    """One ranked table of a group: a metric family, its ranked runs and its reference rows."""

    family: str
    ranked: list[Entry] = field(default_factory=list)
    ranks: list[int] = field(default_factory=list)
    refs: list[RefRow] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # runs of the group without this family's numbers

    @property
    def headline(self) -> str:
        return HEADLINES[self.family]

    @property
    def metrics(self) -> tuple[str, ...]:
        return VIEW_METRICS[self.family]


@dataclass
class Group:
    benchmark: str
    protocol: str
    scorer: str
    revision: str
    entries: list[Entry] = field(default_factory=list)  # ranked runs, in agreement order
    refs: list[RefRow] = field(default_factory=list)  # the agreement view's reference rows
    splits: list[str] = field(default_factory=list)
    limit: int | None = None  # a --limit run: fewer test units, so a revision (and table) of its own
    oracles: list[Entry] = field(default_factory=list)
    views: list[View] = field(default_factory=list)

    @property
    def partial(self) -> bool:
        return self.limit is not None

    @property
    def title(self) -> str:
        partial = f" (partial: --limit {self.limit})" if self.limit is not None else ""
        return f"{self.benchmark} · {self.protocol}{partial}"

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.benchmark}-{self.protocol}-{self.scorer}-{self.revision[:8]}".lower())

    def view(self, family: str) -> View | None:
        return next((v for v in self.views if v.family == family), None)


def _samples(path: Path, n: int = SAMPLES) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            for row in csv.DictReader(f):
                out.append((row.get("unit_id", ""), row.get("description", "")))
                if len(out) >= n:
                    break
    except (OSError, csv.Error, UnicodeDecodeError):
        pass
    return out


def _trained_on_overlap(trained_on: Sequence[str], test_configs: Sequence[str]) -> bool:
    from milannotations.load import expand_configs

    return bool(expand_configs(trained_on) & expand_configs(test_configs))


def _trial_spread(splits: Sequence[SplitRecord], metric: str = HEADLINE) -> tuple[int, float | None]:
    """(trials, SD over trials of `metric`'s normalized score averaged over splits); (1, None) for one.

    Each trial's normalized value is its raw value through the split's floor and ceiling, the rule
    the harness applies to the mean, so the spread is on the scale the board ranks by."""
    per_split = []
    for s in splits:
        score = s.metrics.get(metric)
        tv = None if score is None else score.trial_values
        if tv is None or len(tv) < 2:
            return 1, None
        floor, ceil = _value(s.floor, metric), _value(s.ceiling, metric)
        per_split.append([_normalize(v, floor, ceil) for v in tv])
    n = len(per_split[0]) if per_split else 0
    if n < 2 or any(len(t) != n or None in t for t in per_split):
        return max(n, 1), None
    means = [sum(t[i] for t in per_split) / len(per_split) for i in range(n)]
    mu = sum(means) / n
    return n, math.sqrt(sum((m - mu) ** 2 for m in means) / (n - 1))


def _entry(sub: Submission) -> Entry:
    splits = sub.results.splits
    trained_on = list(sub.meta.get("trained_on") or sub.results.describer.trained_on)
    norm = {m: _mean(_value(s.normalized, m) for s in splits) for m in METRICS}
    raw = {m: _mean(_value(s.metrics, m) for s in splits) for m in METRICS}
    families = tuple(f for f in VIEWS if has_family(sub, f))
    per_split = {f: [(s.name, _value(s.normalized, HEADLINES[f]), _ci(s.normalized, HEADLINES[f])) for s in splits]
                 for f in VIEWS}
    bad = [s.name for s in splits if not s.held_out or _trained_on_overlap(trained_on, s.test)]
    spreads, trials = {}, 1
    for f in VIEWS:
        n, spreads[f] = _trial_spread(splits, HEADLINES[f])
        trials = max(trials, n)
    return Entry(sub, norm, raw, per_split, not bad, bad, _samples(sub.path / DESCRIPTIONS), trials=trials,
                 spreads=spreads, parse=_parse(splits), families=families)


def _refs(sub: Submission, family: str) -> list[RefRow]:
    """Floor, ceiling (and, for truth, humans) rows from one submission (validation makes them equal across
    a group)."""
    splits = sub.results.splits
    metrics = VIEW_METRICS[family]
    names = list(dict.fromkeys(n for s in splits for n, _ in s.floors.items()))

    def norm_of(get) -> dict[str, float | None]:
        return {m: _mean(_normalize(get(s, m), _value(s.floor, m), _value(s.ceiling, m)) for s in splits)
                for m in metrics}

    def row(label: str, kind: str, get) -> RefRow:
        return RefRow(label, kind, {m: _mean(get(s, m) for s in splits) for m in metrics}, norm_of(get))

    rows = [row(f"floor: {name}", "floor", lambda s, m, n=name: _value(s.floors[n], m)) for name in names]
    rows.append(row("best floor (per metric and split)", "best-floor", lambda s, m: _value(s.floor, m)))
    if family == "truth" and any(s.humans is not None for s in splits):
        rows.append(row(HUMANS_LABEL, "humans", lambda s, m: _value(s.humans, m)))
    rows.append(row(CEILING_LABELS[family], "ceiling", lambda s, m: _value(s.ceiling, m)))
    return rows


def _oracle_row(e: Entry) -> RefRow:
    return RefRow(f"{e.sub.label}: {ORACLE_NOTE}", "oracle", dict(e.raw), dict(e.norm), entry=e)


def _view(family: str, runs: Sequence[Entry], oracles: Sequence[Entry], subs: Sequence[Submission]) -> View | None:
    """The family's view of a group, or None when no run of the group has its numbers."""
    source = next((s for s in subs if has_family(s, family)), None)
    if source is None:
        return None
    ranked = sorted((e for e in runs if family in e.families), key=lambda e: (-e.score_of(family),
                                                                              e.sub.label.lower()))
    refs = _refs(source, family)
    oracle_rows = [_oracle_row(e) for e in sorted(oracles, key=lambda e: (-e.score_of(family), e.sub.label.lower()))
                   if family in e.families]
    refs[-1:-1] = oracle_rows  # after the floors (and humans), before the ceiling
    missing = [e.sub.label for e in [*runs, *oracles] if family not in e.families]
    return View(family, ranked, list(range(1, len(ranked) + 1)), refs, missing)


def group_key(g: Group) -> tuple:
    """Full boards first (synthetic, then the real corpus), partial (`--limit`) runs last."""
    return (g.partial, g.benchmark != "synth", g.benchmark, g.protocol, g.scorer, g.revision)


def build_groups(subs: Sequence[Submission]) -> list[Group]:
    """Submissions grouped into comparable tables; each group's views ranked by their family's normalized
    headline metric, oracle runs as reference rows."""
    by_key: dict[tuple[str, str, str, str], Group] = {}
    members: dict[tuple[str, str, str, str], list[Submission]] = {}
    for sub in subs:
        r = sub.results
        key = (r.benchmark, r.protocol, r.scorer, r.revision)
        g = by_key.setdefault(key, Group(*key, limit=r.limit))
        members.setdefault(key, []).append(sub)
        e = _entry(sub)
        (g.oracles if sub.oracle else g.entries).append(e)
        for s in r.splits:
            if s.name not in g.splits:
                g.splits.append(s.name)
    groups = sorted(by_key.values(), key=group_key)
    for key, g in by_key.items():
        g.views = [v for f in VIEWS if (v := _view(f, g.entries, g.oracles, members[key])) is not None]
        agreement = g.view("agreement")
        if agreement is not None:
            g.refs = agreement.refs
            g.entries = agreement.ranked + [e for e in g.entries if e not in agreement.ranked]
        for i, e in enumerate(g.entries, 1):
            e.rank = i
    return groups


def load_all(root: str | Path | None = None) -> tuple[list[Submission], list[str]]:
    """Readable submissions and one message per folder that could not be read."""
    subs, problems = [], []
    for p in find_submissions(root):
        try:
            subs.append(load_submission(p))
        except MilanError as e:
            problems.append(str(e))
    return subs, problems


def published(subs: Sequence[Submission], record: str | Path) -> tuple[list[Submission], list[tuple[str, str]]]:
    """The submissions whose files match a valid entry of the validation record, and (name, why) for the
    others. A missing record publishes nothing; a damaged one likewise, and says so."""
    try:
        entries = read_record(record)
    except MilanError as e:
        return [], [(s.name, f"validation record unreadable: {e}") for s in subs]
    kept, left = [], []
    for s in subs:
        why = record_status(s.path, entries, record)
        (left.append((s.name, why)) if why else kept.append(s))
    return kept, left


# --------------------------------------------------------------------------- Markdown

def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _metric_head(m: str) -> str:
    return f"{METRIC_LABELS[m]} ({DIAGNOSTIC_NOTE})" if m in DIAGNOSTIC else METRIC_LABELS[m]


def _md_name(e: Entry) -> str:
    name = md_escape(e.sub.label)
    link = _safe_link(str(e.sub.meta.get("link", "")))
    if link:
        name = f"[{name}](<{link}>)"
    if e.sub.note:
        name += f" ({md_escape(e.sub.note)})"
    return name


def _md_view(g: Group, v: View) -> list[str]:
    label = METRIC_LABELS[v.headline]
    truth = v.family == "truth"
    head = ["#", "describer", "version", "held out", f"normalized {label} (mean)",
            *[f"{md_escape(s)}: normalized [95% CI]" for s in g.splits],
            *[f"{_metric_head(m)} (mean)" for m in v.metrics], *(["parsed"] if truth else [])]
    lines = [f"#### {VIEW_TITLES[v.family]}: ranked by normalized {label}", "",
             VIEW_NOTES[v.family].format(label=label), "",
             _md_row(head), _md_row(["---"] * len(head))]

    def split_cells(e: Entry | None) -> list[str]:
        if e is None:
            return [""] * len(g.splits)
        per = {s: (x, ci) for s, x, ci in e.per_split[v.family]}
        return [f"{fmt(x)} {md_escape(fmt_ci(ci))}".strip() for x, ci in (per.get(s, (None, None))
                                                                           for s in g.splits)]

    def parse_cell(e: Entry | None) -> list[str]:
        return [md_escape(e.parse.text) if e is not None and e.parse else ""] if truth else []

    for rank, e in zip(v.ranks, v.ranked):
        held = "yes" if e.held_out else f"**no** ({md_escape(', '.join(e.not_held_out_splits))})"
        lines.append(_md_row([str(rank), _md_name(e), md_escape(e.sub.meta.get("version", "")), held,
                              f"**{fmt(e.norm.get(v.headline))}** {e.spread_text_of(v.family)}".strip(),
                              *split_cells(e), *[fmt(e.raw.get(m)) for m in v.metrics], *parse_cell(e)]))
    for r in v.refs:
        e = r.entry
        name = f"*{md_escape(r.label)}*" if e is None else f"*{md_escape(e.sub.label)}* ({ORACLE_NOTE})"
        version = md_escape(e.sub.meta.get("version", "")) if e is not None else ""
        lines.append(_md_row(["", name, version, "", fmt(r.norm.get(v.headline)), *split_cells(e),
                              *[fmt(r.raw.get(m)) for m in v.metrics], *parse_cell(e)]))
    lines.append("")
    if v.missing:
        lines += [f"Not in this view (no {v.family} metrics in their results; rescore them): "
                  f"{md_escape(', '.join(v.missing))}.", ""]
    return lines


def _md_group(g: Group) -> list[str]:
    lines = [f"### {md_escape(g.title)}", "",
             f"{md_escape(BENCHMARK_LABELS.get(g.benchmark, g.benchmark))}; scorer `{md_escape(g.scorer)}`, "
             f"data revision `{md_escape(g.revision[:12])}`.", ""]
    for v in g.views:
        lines += _md_view(g, v)
    return lines


def _md_reported(protocol: str) -> list[str]:
    rows = reported_for(protocol)
    if not rows:
        return []
    lines = [f"#### {md_escape(protocol)}: reported in the paper, not recomputed", "",
             f"BERTScore F1 (roberta-large) from {md_escape(SOURCE)}, on the paper's unreleased random splits; "
             "not comparable with the recomputed rows above.", "",
             _md_row(["source", "describer", "train -> test", "BERTScore F1", "status"]),
             _md_row(["---"] * 5)]
    for r in rows:
        lines.append(_md_row([md_escape(r.table), md_escape(r.describer), md_escape(r.split),
                              fmt(r.bertscore_f1), "reported, not recomputed"]))
    lines.append("")
    return lines


INTRO = ("Every number in the ranked rows was recomputed from the submitted `descriptions.csv` by "
         "`milan-leaderboard validate`, which records the sha256 of each submission's files in "
         "`validated.json`; a submission is shown only while its files still match a valid entry there.")


def render_markdown(groups: Sequence[Group], excluded: Sequence[tuple[str, str]] = ()) -> str:
    lines = ["# milannotations leaderboard", "",
             "Generated by `milan-leaderboard render` from `leaderboard/submissions/`; do not edit by hand. "
             + INTRO + " Each protocol has an agreement view (ranked by normalized BERTScore F1: (describer - "
             "best floor) / (human ceiling - best floor); 0 = a trivial describer, 1 = human agreement) and, on "
             "the synthetic world, a truth view (ranked by normalized pixel Pearson against the truth formula). "
             "Oracle-segmenter runs are reference rows (upper bounds), never ranked. Other metrics are raw means "
             "over splits. Partial (`--limit`) runs are listed last.", ""]
    if not groups:
        lines += ["No validated submissions yet.", ""]
    full = [g for g in groups if not g.partial]
    for bench in dict.fromkeys(g.benchmark for g in full):
        lines += [f"## {md_escape(BENCHMARK_LABELS.get(bench, bench))}", ""]
        for g in (g for g in full if g.benchmark == bench):
            lines += _md_group(g)
            if bench == "milannotations":
                lines += _md_reported(g.protocol)
    real = {g.protocol for g in full if g.benchmark == "milannotations"}
    rest = [p for p in reported_protocols() if p not in real]
    if rest:
        lines += ["## MILANNOTATIONS: numbers reported in the paper (not recomputed)", ""]
        for p in rest:
            lines += _md_reported(p)
    partial = [g for g in groups if g.partial]
    if partial:
        lines += ["## Partial runs (`--limit`): fewer test units, not comparable with the full boards", ""]
        for g in partial:
            lines += _md_group(g)
    if excluded:
        lines += ["## Not shown: not validated", "",
                  "These submissions have no valid entry in the validation record matching their files; run "
                  "`milan-leaderboard validate` on them, then render again.", ""]
        lines += [f"- {md_escape(name)}: {md_escape(why)}" for name, why in excluded]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em}h3{font-size:1.05em}h4{font-size:1em}
.note{color:#555;max-width:60em}
nav.tabs{display:flex;flex-wrap:wrap;gap:.3em;margin:1em 0;border-bottom:1px solid #ccc}
nav.tabs button{border:1px solid #ccc;border-bottom:none;background:#f4f4f4;padding:.4em .8em;cursor:pointer;font:inherit}
nav.tabs button.active{background:#fff;font-weight:600;position:relative;top:1px}
nav.tabs button.partial{color:#777;font-style:italic}
section.group[hidden]{display:none}
div.view{margin:0 0 1.5em;padding-top:.2em;border-top:2px solid #eee}
div.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;margin:.6em 0 1em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f7f7f7;cursor:pointer;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
th[data-nosort]{cursor:default}
td.text,th.text{text-align:left}tbody.reference td{color:#555;font-style:italic;background:#fafafa}
tbody.reference tr.oracle td{background:#eef4ff}
th.diagnostic,td.diagnostic{color:#777;background:repeating-linear-gradient(45deg,#f6f6f6,#f6f6f6 4px,#eee 4px,#eee 8px);border-style:dashed}
tr.reported td{background:#fff8e6}.badge{font-size:.8em;padding:0 .3em;border-radius:3px;background:#fdd;color:#900}
.ci{color:#777;font-size:.85em}details{margin:.3em 0}code{background:#f3f3f3;padding:0 .2em}
ul.excluded li{color:#900}
"""

_JS = r"""
(function(){
  function num(td){var v=td.getAttribute('data-v');return v===null||v===''?NaN:parseFloat(v);}
  function sortBy(table,i,asc){
    var ths=table.querySelectorAll('thead th'),th=ths[i];
    var body=table.querySelector('tbody.ranked');if(!body||!th)return;
    ths.forEach(function(o){o.classList.remove('sorted-asc','sorted-desc');});
    th.classList.add(asc?'sorted-asc':'sorted-desc');
    var rows=Array.prototype.slice.call(body.rows);
    rows.sort(function(a,b){
      var x=a.cells[i],y=b.cells[i];var nx=num(x),ny=num(y),c;
      if(!isNaN(nx)||!isNaN(ny)){c=(isNaN(nx)?-Infinity:nx)-(isNaN(ny)?-Infinity:ny);}
      else{c=x.textContent.localeCompare(y.textContent);}
      return asc?c:-c;});
    rows.forEach(function(r){body.appendChild(r);});
  }
  var q=new URLSearchParams(location.search);
  document.querySelectorAll('table.sortable').forEach(function(table){
    var ths=table.querySelectorAll('thead th');
    ths.forEach(function(th,i){
      if(th.hasAttribute('data-nosort'))return;  // diagnostic columns never order the board
      th.addEventListener('click',function(){sortBy(table,i,!th.classList.contains('sorted-asc'));});
    });
    var k=q.has('sort')?parseInt(q.get('sort'),10):-1;
    if(k>=0&&ths[k]&&!ths[k].hasAttribute('data-nosort'))sortBy(table,k,q.get('dir')!=='desc');  // linkable sorted views
  });
  var buttons=document.querySelectorAll('nav.tabs button');
  function show(id){
    document.querySelectorAll('section.group').forEach(function(s){s.hidden=(s.id!==id);});
    buttons.forEach(function(b){b.classList.toggle('active',b.getAttribute('data-target')===id);});
  }
  buttons.forEach(function(b){b.addEventListener('click',function(){show(b.getAttribute('data-target'));history.replaceState(null,'','#'+b.getAttribute('data-target'));});});
  var full=document.querySelector('nav.tabs button:not(.partial)')||buttons[0];  // open on a full board
  var first=full?full.getAttribute('data-target'):null;
  var want=location.hash?location.hash.slice(1):first;
  if(want&&!document.getElementById(want))want=first;
  if(want)show(want);
  document.body.setAttribute('data-ready','1');
})();
"""


def _td(value: float | None, ci: Sequence[float] | None = None, bold: bool = False, note: str = "",
        cls: str = "") -> str:
    v = "" if value is None else repr(float(value))
    text = fmt(value)
    if bold:
        text = f"<strong>{text}</strong>"
    if ci:
        text += f' <span class="ci">{h(fmt_ci(ci))}</span>'
    if note:
        text += f'<br><span class="ci">{h(note)}</span>'
    klass = f' class="{h(cls)}"' if cls else ""
    return f'<td{klass} data-v="{h(v)}">{text}</td>'


#: Plot geometry (pixels): name column, scale width, row height, margin right of the scale.
_PLOT_LEFT, _PLOT_WIDTH, _PLOT_ROW, _PLOT_RIGHT = 230, 440, 22, 70
_LABEL_FONT, _LABEL_CHAR, _LABEL_LINE = 11, 6.5, 13  # px: font size, width allowed per character, line step


def _label_extent(text: str, x: float, anchor: str) -> tuple[float, float]:
    w = _LABEL_CHAR * len(text)
    return {"start": (x, x + w), "end": (x - w, x), "middle": (x - w / 2, x + w / 2)}[anchor]


def place_labels(marks: Sequence[tuple[str, float]], total_width: float) -> list[dict]:
    """Positions for the labels of vertical reference lines (`(text, x)`), so that none overlaps another
    and none leaves the plot: each is centred on its line, shifted inside the plot where it would cross
    an edge, and moved to the next line down where it would overlap a label already placed. Returns one
    dict per mark (same order): text, x (the text's anchor point), y (baseline), anchor, x0, x1 (extent)."""
    placed: list[dict] = []
    for text, x in marks:
        w = _LABEL_CHAR * len(text)
        x0 = min(max(x - w / 2, 2.0), total_width - 2.0 - w)
        x1 = x0 + w
        line = 0
        while any(p["line"] == line and x0 < p["x1"] + 4 and p["x0"] < x1 + 4 for p in placed):
            line += 1
        placed.append({"text": text, "x": (x0 + x1) / 2, "y": _LABEL_FONT + line * _LABEL_LINE,
                       "anchor": "middle", "x0": x0, "x1": x1, "line": line, "at": x})
    return placed


def plot_layout(v: View) -> dict:
    """The plot of one view, as numbers: the scale, each point's row and the reference labels' positions."""
    pts = [(e.sub.label, e.norm.get(v.headline), [ci for _, _, ci in e.per_split[v.family] if ci], "run")
           for e in v.ranked]
    pts += [(r.entry.sub.label if r.entry else r.label, r.norm.get(v.headline),
             [ci for _, _, ci in r.entry.per_split[v.family] if ci] if r.entry else [], r.kind)
            for r in v.refs if r.kind in ("oracle", "humans")]
    vals = [x for _, x, _, _ in pts if x is not None] + [x for *_, cis, _ in pts for ci in cis for x in ci]
    vals = [x for x in vals if isinstance(x, (int, float)) and math.isfinite(x)]
    lo, hi = min([0.0, *vals]) - 0.05, max([1.0, *vals]) + 0.05
    total = _PLOT_LEFT + _PLOT_WIDTH + _PLOT_RIGHT

    def x(val: float) -> float:
        return _PLOT_LEFT + (val - lo) / (hi - lo) * _PLOT_WIDTH

    labels = place_labels([("best floor", x(0)), (PLOT_CEILING[v.family], x(1))], total)
    top = max(p["y"] for p in labels) + 17
    height = top + _PLOT_ROW * max(1, len(pts)) + 10
    return {"points": pts, "x": x, "labels": labels, "top": top, "height": height, "width": total,
            "line_top": max(p["y"] for p in labels) + 3}


def _svg_plot(v: View) -> str:
    """Each run as a dot on the normalized scale, between best floor (0) and ceiling (1); reference runs
    (oracle segmenter, annotators scored by truth) as hollow dots."""
    lay = plot_layout(v)
    x, top, height = lay["x"], lay["top"], lay["height"]
    colors = ["#c33", "#393"]
    parts = [f'<svg class="plot" data-view="{h(v.family)}" xmlns="http://www.w3.org/2000/svg" '
             f'width="{lay["width"]}" height="{height}" role="img" '
             f'aria-label="normalized {h(METRIC_LABELS[v.headline])} per describer">']
    for (at, color), lab in zip(((0, colors[0]), (1, colors[1])), lay["labels"]):
        parts.append(f'<line x1="{x(at):.1f}" y1="{lay["line_top"]:.1f}" x2="{x(at):.1f}" y2="{height - 4}" '
                     f'stroke="{color}" stroke-dasharray="4 3"/>')
        parts.append(f'<text class="ref-label" x="{lab["x"]:.1f}" y="{lab["y"]:.1f}" font-size="{_LABEL_FONT}" '
                     f'text-anchor="{lab["anchor"]}" fill="{color}">{h(lab["text"])}</text>')
    for i, (name, val, cis, kind) in enumerate(lay["points"]):
        y = top + _PLOT_ROW * i + _PLOT_ROW / 2
        ref = kind != "run"
        shown = name if len(name) <= 32 else name[:31] + "…"  # 32 characters of 12 px fit the 230 px column
        style = ' font-style="italic" fill="#555"' if ref else ""
        parts.append(f'<text class="plot-label" x="{_PLOT_LEFT - 8}" y="{y + 4:.1f}" font-size="12" '
                     f'text-anchor="end"{style}>{h(shown)}</text>')
        parts.append(f'<line x1="{x(0):.1f}" y1="{y:.1f}" x2="{x(1):.1f}" y2="{y:.1f}" stroke="#ddd" stroke-width="6"/>')
        if cis:
            lo_ci, hi_ci = min(c[0] for c in cis), max(c[1] for c in cis)
            parts.append(f'<line x1="{x(lo_ci):.1f}" y1="{y:.1f}" x2="{x(hi_ci):.1f}" y2="{y:.1f}" stroke="#336" '
                         'stroke-width="1.5"/>')
        if val is not None:
            what = {"oracle": f" ({ORACLE_NOTE})", "humans": " (reference)"}.get(kind, "")
            fill = 'fill="#fff" stroke="#336" stroke-width="2"' if ref else 'fill="#336"'
            parts.append(f'<circle cx="{x(val):.1f}" cy="{y:.1f}" r="5" {fill}><title>{h(name)}{h(what)}: '
                         f'{fmt(val)}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)


def _html_reported(protocol: str) -> str:
    rows = reported_for(protocol)
    if not rows:
        return ""
    out = [f'<h4>{h(protocol)}: reported in the paper, not recomputed</h4>',
           f'<p class="note">BERTScore F1 (roberta-large) from {h(SOURCE)}, on the paper\'s unreleased random '
           'splits; not comparable with recomputed rows.</p>',
           '<table class="reported"><thead><tr><th class="text">source</th><th class="text">describer</th>'
           '<th class="text">train → test</th><th>BERTScore F1</th><th class="text">status</th></tr></thead><tbody>']
    for r in rows:
        out.append(f'<tr class="reported"><td class="text">{h(r.table)}</td><td class="text">{h(r.describer)}</td>'
                   f'<td class="text">{h(r.split)}</td>{_td(r.bertscore_f1)}'
                   f'<td class="text">reported, not recomputed</td></tr>')
    out.append("</tbody></table>")
    return "".join(out)


def _html_name(e: Entry) -> str:
    link = _safe_link(str(e.sub.meta.get("link", "")))
    name = h(e.sub.label)
    if link:
        name = f'<a href="{h(link)}" rel="nofollow noopener">{name}</a>'
    if e.sub.note:
        name += f'<br><span class="ci">{h(e.sub.note)}</span>'
    authors = ", ".join(str(a) for a in e.sub.meta.get("authors") or [])
    if authors:
        name += f'<br><span class="ci">{h(authors)}</span>'
    return name


def _metric_cells(raw: dict, metrics: Sequence[str]) -> str:
    return "".join(_td(raw.get(m), cls="diagnostic" if m in DIAGNOSTIC else "") for m in metrics)


def _parse_td(e: Entry | None) -> str:
    if e is None or e.parse is None:
        return "<td></td>"
    tip = ("unparsed, e.g.: " + " | ".join(e.parse.unparsed)) if e.parse.unparsed else ""
    f = e.parse.fraction
    return (f'<td data-v="{h("" if f is None else repr(f))}" title="{h(tip)}">{h(e.parse.text)}</td>')


def _html_view(g: Group, v: View) -> str:
    label = METRIC_LABELS[v.headline]
    truth = v.family == "truth"
    heads = ['<th>#</th>', '<th class="text">describer</th>', '<th class="text">version</th>',
             '<th class="text">held out</th>', f'<th>normalized {h(label)} (mean)</th>',
             *[f'<th>{h(s)}<br><span class="ci">normalized [95% CI]</span></th>' for s in g.splits],
             *[(f'<th class="diagnostic" data-nosort="1">{h(METRIC_LABELS[m])}<br>'
                f'<span class="ci">{DIAGNOSTIC_NOTE}</span></th>') if m in DIAGNOSTIC
               else f'<th>{h(METRIC_LABELS[m])}</th>' for m in v.metrics],
             *(['<th>parsed<br><span class="ci">by the truth parser</span></th>'] if truth else [])]
    out = [f'<div class="view" data-view="{h(v.family)}">',
           f'<h3>{h(VIEW_TITLES[v.family])}: ranked by normalized {h(label)}</h3>',
           f'<p class="note">{h(VIEW_NOTES[v.family].format(label=label))} Click a column to sort.</p>',
           f'<div class="scroll"><table class="board sortable" data-view="{h(v.family)}"><thead><tr>'
           f'{"".join(heads)}</tr></thead><tbody class="ranked">']

    def split_tds(e: Entry | None) -> str:
        if e is None:
            return "<td></td>" * len(g.splits)
        per = {s: (x, ci) for s, x, ci in e.per_split[v.family]}
        return "".join(_td(*per.get(s, (None, None))) for s in g.splits)

    for rank, e in zip(v.ranks, v.ranked):
        held = "yes" if e.held_out else f'<span class="badge">no</span> {h(", ".join(e.not_held_out_splits))}'
        out.append(f'<tr class="describer" data-describer="{h(e.sub.label)}">'
                   f'<td data-v="{rank}">{rank}</td><td class="text">{_html_name(e)}</td>'
                   f'<td class="text">{h(e.sub.meta.get("version", ""))}</td><td class="text">{held}</td>'
                   + _td(e.norm.get(v.headline), bold=True, note=e.spread_text_of(v.family))
                   + split_tds(e) + _metric_cells(e.raw, v.metrics) + (_parse_td(e) if truth else "") + "</tr>")
    out.append('</tbody><tbody class="reference">')
    for r in v.refs:
        e = r.entry
        if e is not None:  # an oracle run: a reference row, never ranked
            out.append(f'<tr class="oracle" data-describer="{h(e.sub.label)}"><td></td>'
                       f'<td class="text">{_html_name(e)}</td><td class="text">{h(e.sub.meta.get("version", ""))}'
                       '</td><td></td>' + _td(r.norm.get(v.headline), note=e.spread_text_of(v.family))
                       + split_tds(e) + _metric_cells(r.raw, v.metrics) + (_parse_td(e) if truth else "") + "</tr>")
            continue
        out.append(f'<tr class="{h(r.kind)}"><td></td><td class="text">{h(r.label)}</td><td></td><td></td>'
                   + _td(r.norm.get(v.headline)) + "<td></td>" * len(g.splits)
                   + _metric_cells(r.raw, v.metrics) + ("<td></td>" if truth else "") + "</tr>")
    out.append("</tbody></table></div>")
    if v.missing:
        out.append(f'<p class="note">Not in this view (no {h(v.family)} metrics in their results; rescore them): '
                   f'{h(", ".join(v.missing))}.</p>')
    out.append(_svg_plot(v))
    out.append("</div>")
    return "\n".join(out)


def _html_group(g: Group) -> str:
    partial = ' data-partial="1"' if g.partial else ""
    out = [f'<section class="group" id="{h(g.anchor)}" data-benchmark="{h(g.benchmark)}" '
           f'data-protocol="{h(g.protocol)}"{partial}>',
           f'<h2>{h(g.title)}</h2>',
           f'<p class="note">{h(BENCHMARK_LABELS.get(g.benchmark, g.benchmark))}. Scorer <code>{h(g.scorer)}</code>, '
           f'data revision <code>{h(g.revision[:12])}</code>.</p>']
    out += [_html_view(g, v) for v in g.views]
    out.append("<h3>Sample descriptions</h3>")
    for e in [*g.entries, *g.oracles]:
        items = "".join(f'<li><code>{h(u)}</code>: <span class="description">{h(d)}</span></li>' for u, d in e.samples)
        if e.parse is not None and e.parse.unparsed:
            items += ('<li>not parsed by the truth parser, e.g.: '
                      + "; ".join(f'<span class="description">{h(x)}</span>' for x in e.parse.unparsed) + "</li>")
        note = f' <span class="ci">({h(e.sub.note)})</span>' if e.sub.note else ""
        out.append(f'<details><summary>{h(e.sub.label)}{note}</summary><ul>{items}</ul></details>')
    if g.benchmark == "milannotations":
        out.append(_html_reported(g.protocol))
    out.append("</section>")
    return "\n".join(out)


def _class(cls: str) -> str:
    return f' class="{h(cls)}"' if cls else ""


def render_html(groups: Sequence[Group], excluded: Sequence[tuple[str, str]] = ()) -> str:
    full = [g for g in groups if not g.partial]
    partial = [g for g in groups if g.partial]
    sections = [_html_group(g) for g in full]
    tabs = [(g.anchor, g.title, "") for g in full]
    real = {g.protocol for g in full if g.benchmark == "milannotations"}
    rest = [p for p in reported_protocols() if p not in real]
    if rest:
        sections.append('<section class="group" id="paper-reported"><h2>MILANNOTATIONS: numbers reported in the '
                        'paper (not recomputed)</h2>' + "".join(_html_reported(p) for p in rest) + "</section>")
        tabs.append(("paper-reported", "paper (reported, not recomputed)", ""))
    sections += [_html_group(g) for g in partial]  # partial (--limit) runs last, never the opening tab
    tabs += [(g.anchor, g.title, "partial") for g in partial]
    nav = "".join(f'<button type="button"{_class(c)} data-target="{h(a)}">{h(t)}</button>' for a, t, c in tabs)
    body = "\n".join(sections) if groups else '<p>No validated submissions yet.</p>\n' + "\n".join(sections)
    left = ""
    if excluded:
        left = ('<section class="excluded"><h2>Not shown: not validated</h2><p class="note">These submissions have '
                'no valid entry in the validation record matching their files; run <code>milan-leaderboard '
                'validate</code> on them, then render again.</p><ul class="excluded">'
                + "".join(f"<li><code>{h(n)}</code>: {h(w)}</li>" for n, w in excluded) + "</ul></section>")
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        f"<title>milannotations leaderboard</title><style>{_CSS}</style></head>\n"
        '<body data-ready="0"><h1>milannotations leaderboard</h1>'
        '<p class="note">Every ranked number was recomputed from the submitted descriptions by '
        '<code>milan-leaderboard validate</code>, which records the sha256 of each submission\'s files in '
        '<code>validated.json</code>; a submission is shown only while its files match a valid entry there'
        + (f" ({len(excluded)} not shown: listed at the end)" if excluded else "") + '. '
        'Each protocol has an agreement view, ranked by normalized BERTScore F1 (describer − best floor) / '
        '(human ceiling − best floor), and on the synthetic world a truth view, ranked by normalized pixel '
        'Pearson against the truth formula. Runs with the oracle segmenter are reference rows (upper bounds), '
        'never ranked. Other metrics are raw means over splits. '
        'Rows in yellow are reported in the paper and were not recomputed. Partial (<code>--limit</code>) runs '
        'are the last tabs.</p>'
        f'<nav class="tabs">{nav}</nav>\n{body}\n{left}<script>{_JS}</script></body></html>\n'
    )


def render(submissions: str | Path | None = None, out: str | Path | None = None,
           record: str | Path | None = None) -> tuple[Path, Path]:
    """Write `README.md` and `index.html` for every readable submission whose files match a valid entry
    of the validation record (default: `validated.json` beside the submissions folder); the others are
    named on stderr and on the page. Returns the two paths."""
    from milannotations.fsutil import atomic_write_text

    subs, problems = load_all(submissions)
    for p in problems:
        print(f"milan-leaderboard: skipped unreadable submission: {p}", file=sys.stderr)
    record_file = Path(record) if record is not None else record_path(submissions)
    shown, excluded = published(subs, record_file)
    for name, why in excluded:
        print(f"milan-leaderboard: not published: {name}: {why}", file=sys.stderr)
    if excluded:
        print(f"milan-leaderboard: published {len(shown)} of {len(subs)} submissions; the validation record "
              f"{record_file} has no valid entry matching the others' files (run milan-leaderboard validate)",
              file=sys.stderr)
    groups = build_groups(shown)
    dest = Path(out) if out is not None else Path(__file__).resolve().parent
    md, page = dest / "README.md", dest / "index.html"
    atomic_write_text(md, render_markdown(groups, excluded))
    atomic_write_text(page, render_html(groups, excluded))
    return md, page


__all__ = ["build_groups", "h", "load_all", "md_escape", "place_labels", "plot_layout", "published", "render",
           "render_html", "render_markdown"]
