"""The leaderboard as a Markdown file and a static HTML page, from the submission folders.

One table per benchmark, protocol, scorer and data revision (numbers from
different scorers or data are not comparable, so they never share a table).
Describers are ranked by their normalized BERTScore F1, averaged over the
protocol's splits: (method - best floor) / (human ceiling - best floor), so
0 is what a trivial describer gets and 1 is human agreement. The floors and
the ceiling are rows of every table. For the real corpus, the numbers the
paper reports sit in separate rows marked "reported, not recomputed".

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

from eval.metrics.spec import HEADLINE, METRIC_NAMES
from eval.metrics.spec import METRICS as METRIC_SPECS
from milannotations.errors import MilanError

from .reported import SOURCE, reported_for, reported_protocols
from .submission import DESCRIPTIONS, Submission, find_submissions, load_submission

#: Columns and labels come from the one metric table (eval.metrics.spec); describers are ranked by
#: its headline metric (the paper's).
METRICS = METRIC_NAMES
METRIC_LABELS = {m.name: m.label for m in METRIC_SPECS}
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


def _value(d: Any, metric: str) -> float | None:
    try:
        v = d[metric]["value"]
    except (KeyError, TypeError):
        return None
    return float(v) if isinstance(v, (int, float)) else None


def _ci(d: Any, metric: str) -> list[float] | None:
    try:
        ci = d[metric]["ci95"]
    except (KeyError, TypeError):
        return None
    return list(ci) if isinstance(ci, (list, tuple)) and len(ci) == 2 else None


def _normalize(v: float | None, floor: float | None, ceil: float | None) -> float | None:
    """The harness's rule (`eval.harness.normalized_value`): None where the ceiling does not clear the floor."""
    from eval.harness import normalized_value

    return normalized_value(v, floor, ceil)


@dataclass
class Entry:
    """One describer's row: means over splits, per-split headline numbers, samples."""

    sub: Submission
    norm: dict[str, float | None]
    raw: dict[str, float | None]
    per_split: list[tuple[str, float | None, list[float] | None]]  # (split, normalized headline, ci)
    held_out: bool
    not_held_out_splits: list[str]
    samples: list[tuple[str, str]]
    rank: int = 0
    trials: int = 1
    spread: float | None = None  # sample SD over trials of the normalized headline (mean over splits)

    @property
    def spread_text(self) -> str:
        """"± sd over N trials" where the run had several (learned describers retrained per seed)."""
        return f"± {fmt(self.spread)} over {self.trials} trials" if self.spread is not None else ""

    @property
    def score(self) -> float:
        v = self.norm.get(HEADLINE)
        return v if v is not None else -math.inf


@dataclass
class RefRow:
    """A floor or the human ceiling, with its raw means and normalized means."""

    label: str
    kind: str  # "floor" | "best-floor" | "ceiling"
    raw: dict[str, float | None]
    norm: dict[str, float | None]


@dataclass
class Group:
    benchmark: str
    protocol: str
    scorer: str
    revision: str
    entries: list[Entry] = field(default_factory=list)
    refs: list[RefRow] = field(default_factory=list)
    splits: list[str] = field(default_factory=list)
    limit: int | None = None  # a --limit run: fewer test units, so a revision (and table) of its own

    @property
    def title(self) -> str:
        partial = f" (partial: --limit {self.limit})" if self.limit is not None else ""
        return f"{self.benchmark} · {self.protocol}{partial}"

    @property
    def anchor(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", f"{self.benchmark}-{self.protocol}-{self.scorer}-{self.revision[:8]}".lower())


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


def _trial_spread(splits: Sequence[dict]) -> tuple[int, float | None]:
    """(trials, SD over trials of the headline normalized score averaged over splits); (1, None) for one.

    Each trial's normalized value is its raw value through the split's floor and ceiling, the rule
    the harness applies to the mean, so the spread is on the scale the board ranks by."""
    per_split = []
    for s in splits:
        tv = ((s.get("metrics") or {}).get(HEADLINE) or {}).get("trial_values")
        if not isinstance(tv, list) or len(tv) < 2:
            return 1, None
        floor, ceil = _value(s.get("floor"), HEADLINE), _value(s.get("ceiling"), HEADLINE)
        per_split.append([_normalize(v, floor, ceil) for v in tv])
    n = len(per_split[0]) if per_split else 0
    if n < 2 or any(len(t) != n or None in t for t in per_split):
        return max(n, 1), None
    means = [sum(t[i] for t in per_split) / len(per_split) for i in range(n)]
    mu = sum(means) / n
    return n, math.sqrt(sum((m - mu) ** 2 for m in means) / (n - 1))


def _entry(sub: Submission) -> Entry:
    splits = [s for s in sub.results.get("splits") or [] if isinstance(s, dict)]
    trained_on = list(sub.meta.get("trained_on") or (sub.results.get("describer") or {}).get("trained_on") or [])
    norm = {m: _mean(_value(s.get("normalized"), m) for s in splits) for m in METRICS}
    raw = {m: _mean(_value(s.get("metrics"), m) for s in splits) for m in METRICS}
    per_split = [(str(s.get("name", "?")), _value(s.get("normalized"), HEADLINE), _ci(s.get("normalized"), HEADLINE))
                 for s in splits]
    bad = [str(s.get("name", "?")) for s in splits
           if s.get("held_out") is False or _trained_on_overlap(trained_on, s.get("test") or [])]
    trials, spread = _trial_spread(splits)
    return Entry(sub, norm, raw, per_split, not bad, bad, _samples(sub.path / DESCRIPTIONS), trials=trials,
                 spread=spread)


def _refs(sub: Submission) -> list[RefRow]:
    """Floor and ceiling rows from one submission (validation makes them equal across a group)."""
    splits = [s for s in sub.results.get("splits") or [] if isinstance(s, dict)]
    names = list(dict.fromkeys(n for s in splits for n in (s.get("floors") or {})))

    def norm_of(get) -> dict[str, float | None]:
        return {m: _mean(_normalize(get(s, m), _value(s.get("floor"), m), _value(s.get("ceiling"), m))
                         for s in splits) for m in METRICS}

    rows = []
    for name in names:
        get = lambda s, m, n=name: _value((s.get("floors") or {}).get(n), m)  # noqa: E731
        rows.append(RefRow(f"floor: {name}", "floor", {m: _mean(get(s, m) for s in splits) for m in METRICS},
                           norm_of(get)))
    best = lambda s, m: _value(s.get("floor"), m)  # noqa: E731
    rows.append(RefRow("best floor (per metric and split)", "best-floor",
                       {m: _mean(best(s, m) for s in splits) for m in METRICS}, norm_of(best)))
    ceil = lambda s, m: _value(s.get("ceiling"), m)  # noqa: E731
    rows.append(RefRow("human ceiling (each annotator vs the others)", "ceiling",
                       {m: _mean(ceil(s, m) for s in splits) for m in METRICS}, norm_of(ceil)))
    return rows


def build_groups(subs: Sequence[Submission]) -> list[Group]:
    """Submissions grouped into comparable tables, each ranked by normalized headline score."""
    by_key: dict[tuple[str, str, str, str], Group] = {}
    for sub in subs:
        r = sub.results
        key = (str(r.get("benchmark", "?")), str(r.get("protocol", "?")), str(r.get("scorer", "?")),
               str(r.get("revision", "?")))
        g = by_key.setdefault(key, Group(*key, limit=r.get("limit") if isinstance(r.get("limit"), int) else None))
        g.entries.append(_entry(sub))
        if not g.refs:
            g.refs = _refs(sub)
        for s in r.get("splits") or []:
            if isinstance(s, dict) and str(s.get("name")) not in g.splits:
                g.splits.append(str(s.get("name")))
    groups = sorted(by_key.values(), key=lambda g: (g.benchmark != "synth", g.benchmark, g.protocol,
                                                     g.scorer, g.revision))
    for g in groups:
        g.entries.sort(key=lambda e: (-e.score, e.sub.label.lower()))
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


# --------------------------------------------------------------------------- Markdown

def _md_row(cells: Iterable[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _md_group(g: Group) -> list[str]:
    head = ["#", "describer", "version", "held out", f"normalized {METRIC_LABELS[HEADLINE]} (mean)",
            *[f"{md_escape(s)}: normalized [95% CI]" for s in g.splits],
            *[f"{METRIC_LABELS[m]} (mean)" for m in METRICS]]
    lines = [f"### {md_escape(g.title)}", "",
             f"{md_escape(BENCHMARK_LABELS.get(g.benchmark, g.benchmark))}; scorer `{md_escape(g.scorer)}`, "
             f"data revision `{md_escape(g.revision[:12])}`.", "",
             _md_row(head), _md_row(["---"] * len(head))]
    for e in g.entries:
        split_cells = []
        per = {s: (v, ci) for s, v, ci in e.per_split}
        for s in g.splits:
            v, ci = per.get(s, (None, None))
            split_cells.append(f"{fmt(v)} {md_escape(fmt_ci(ci))}".strip())
        name = md_escape(e.sub.label)
        link = _safe_link(str(e.sub.meta.get("link", "")))
        if link:
            name = f"[{name}](<{link}>)"
        if e.sub.note:
            name += f" ({md_escape(e.sub.note)})"
        held = "yes" if e.held_out else f"**no** ({md_escape(', '.join(e.not_held_out_splits))})"
        lines.append(_md_row([str(e.rank), name, md_escape(e.sub.meta.get("version", "")), held,
                              f"**{fmt(e.norm.get(HEADLINE))}** {e.spread_text}".strip(), *split_cells,
                              *[fmt(e.raw.get(m)) for m in METRICS]]))
    for r in g.refs:
        lines.append(_md_row(["", f"*{md_escape(r.label)}*", "", "", fmt(r.norm.get(HEADLINE)),
                              *[""] * len(g.splits), *[fmt(r.raw.get(m)) for m in METRICS]]))
    lines.append("")
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


def render_markdown(groups: Sequence[Group]) -> str:
    lines = ["# milannotations leaderboard", "",
             "Generated by `milan-leaderboard render` from `leaderboard/submissions/`; do not edit by hand. "
             "Every number in the ranked rows was recomputed from the submitted `descriptions.csv` by "
             "`milan-leaderboard validate`. Ranked by normalized BERTScore F1 averaged over the protocol's "
             "splits: (describer - best floor) / (human ceiling - best floor); 0 = a trivial describer, "
             "1 = human agreement. Other metrics are raw means over splits.", ""]
    if not groups:
        lines += ["No submissions yet.", ""]
    for bench in dict.fromkeys(g.benchmark for g in groups):
        lines += [f"## {md_escape(BENCHMARK_LABELS.get(bench, bench))}", ""]
        for g in (g for g in groups if g.benchmark == bench):
            lines += _md_group(g)
            if bench == "milannotations":
                lines += _md_reported(g.protocol)
    real = {g.protocol for g in groups if g.benchmark == "milannotations"}
    rest = [p for p in reported_protocols() if p not in real]
    if rest:
        lines += ["## MILANNOTATIONS: numbers reported in the paper (not recomputed)", ""]
        for p in rest:
            lines += _md_reported(p)
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- HTML

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5em;color:#222;background:#fff}
h1{font-size:1.5em;margin:0 0 .3em}h2{font-size:1.2em}h3{font-size:1.05em}
.note{color:#555;max-width:60em}
nav.tabs{display:flex;flex-wrap:wrap;gap:.3em;margin:1em 0;border-bottom:1px solid #ccc}
nav.tabs button{border:1px solid #ccc;border-bottom:none;background:#f4f4f4;padding:.4em .8em;cursor:pointer;font:inherit}
nav.tabs button.active{background:#fff;font-weight:600;position:relative;top:1px}
section.group[hidden]{display:none}
table{border-collapse:collapse;margin:.6em 0 1em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:right;vertical-align:top}
th{background:#f7f7f7;cursor:pointer;user-select:none}th.sorted-asc::after{content:" ▲"}th.sorted-desc::after{content:" ▼"}
td.text,th.text{text-align:left}tbody.reference td{color:#555;font-style:italic;background:#fafafa}
tr.reported td{background:#fff8e6}.badge{font-size:.8em;padding:0 .3em;border-radius:3px;background:#fdd;color:#900}
.ci{color:#777;font-size:.85em}details{margin:.3em 0}code{background:#f3f3f3;padding:0 .2em}
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
      th.addEventListener('click',function(){sortBy(table,i,!th.classList.contains('sorted-asc'));});
    });
    if(q.has('sort'))sortBy(table,parseInt(q.get('sort'),10),q.get('dir')!=='desc');  // linkable sorted views
  });
  var buttons=document.querySelectorAll('nav.tabs button');
  function show(id){
    document.querySelectorAll('section.group').forEach(function(s){s.hidden=(s.id!==id);});
    buttons.forEach(function(b){b.classList.toggle('active',b.getAttribute('data-target')===id);});
  }
  buttons.forEach(function(b){b.addEventListener('click',function(){show(b.getAttribute('data-target'));history.replaceState(null,'','#'+b.getAttribute('data-target'));});});
  var first=buttons.length?buttons[0].getAttribute('data-target'):null;
  var want=location.hash?location.hash.slice(1):first;
  if(want&&!document.getElementById(want))want=first;
  if(want)show(want);
  document.body.setAttribute('data-ready','1');
})();
"""


def _td(value: float | None, ci: Sequence[float] | None = None, bold: bool = False, note: str = "") -> str:
    v = "" if value is None else repr(float(value))
    text = fmt(value)
    if bold:
        text = f"<strong>{text}</strong>"
    if ci:
        text += f' <span class="ci">{h(fmt_ci(ci))}</span>'
    if note:
        text += f'<br><span class="ci">{h(note)}</span>'
    return f'<td data-v="{h(v)}">{text}</td>'


def _svg_plot(g: Group) -> str:
    """Each describer as a dot on the normalized scale, between floor (0) and ceiling (1)."""
    pts = [(e.sub.label, e.norm.get(HEADLINE),
            [ci for _, _, ci in e.per_split if ci]) for e in g.entries]
    vals = [v for _, v, _ in pts if v is not None] + [x for *_, cis in pts for ci in cis for x in ci]
    lo, hi = min([0.0, *vals]) - 0.05, max([1.0, *vals]) + 0.05
    left, width, row, top = 190, 440, 22, 28
    height = top + row * max(1, len(pts)) + 10

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * width

    parts = [f'<svg class="plot" xmlns="http://www.w3.org/2000/svg" width="{left + width + 70}" height="{height}" '
             f'role="img" aria-label="normalized {h(METRIC_LABELS[HEADLINE])} per describer">',
             f'<line x1="{x(0):.1f}" y1="14" x2="{x(0):.1f}" y2="{height - 4}" stroke="#c33" stroke-dasharray="4 3"/>',
             f'<text x="{x(0):.1f}" y="11" font-size="11" text-anchor="middle" fill="#c33">best floor</text>',
             f'<line x1="{x(1):.1f}" y1="14" x2="{x(1):.1f}" y2="{height - 4}" stroke="#393" stroke-dasharray="4 3"/>',
             f'<text x="{x(1):.1f}" y="11" font-size="11" text-anchor="middle" fill="#393">human ceiling</text>']
    for i, (name, v, cis) in enumerate(pts):
        y = top + row * i + row / 2
        label = name if len(name) <= 28 else name[:27] + "…"
        parts.append(f'<text class="plot-label" x="{left - 8}" y="{y + 4:.1f}" font-size="12" text-anchor="end">'
                     f'{h(label)}</text>')
        parts.append(f'<line x1="{x(0):.1f}" y1="{y:.1f}" x2="{x(1):.1f}" y2="{y:.1f}" stroke="#ddd" stroke-width="6"/>')
        if cis:
            a, b = min(c[0] for c in cis), max(c[1] for c in cis)
            parts.append(f'<line x1="{x(a):.1f}" y1="{y:.1f}" x2="{x(b):.1f}" y2="{y:.1f}" stroke="#336" stroke-width="1.5"/>')
        if v is not None:
            parts.append(f'<circle cx="{x(v):.1f}" cy="{y:.1f}" r="5" fill="#336"><title>{h(name)}: {fmt(v)}</title></circle>')
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


def _html_group(g: Group) -> str:
    heads = ['<th>#</th>', '<th class="text">describer</th>', '<th class="text">version</th>',
             '<th class="text">held out</th>', f'<th>normalized {h(METRIC_LABELS[HEADLINE])} (mean)</th>',
             *[f'<th>{h(s)}<br><span class="ci">normalized [95% CI]</span></th>' for s in g.splits],
             *[f'<th>{h(METRIC_LABELS[m])}</th>' for m in METRICS]]
    out = [f'<section class="group" id="{h(g.anchor)}" data-benchmark="{h(g.benchmark)}" '
           f'data-protocol="{h(g.protocol)}">',
           f'<h2>{h(g.title)}</h2>',
           f'<p class="note">{h(BENCHMARK_LABELS.get(g.benchmark, g.benchmark))}. Scorer <code>{h(g.scorer)}</code>, '
           f'data revision <code>{h(g.revision[:12])}</code>. Click a column to sort.</p>',
           f'<table class="board sortable"><thead><tr>{"".join(heads)}</tr></thead><tbody class="ranked">']
    for e in g.entries:
        per = {s: (v, ci) for s, v, ci in e.per_split}
        link = _safe_link(str(e.sub.meta.get("link", "")))
        name = h(e.sub.label)
        if link:
            name = f'<a href="{h(link)}" rel="nofollow noopener">{name}</a>'
        if e.sub.note:
            name += f'<br><span class="ci">{h(e.sub.note)}</span>'
        authors = ", ".join(str(a) for a in e.sub.meta.get("authors") or [])
        if authors:
            name += f'<br><span class="ci">{h(authors)}</span>'
        held = "yes" if e.held_out else f'<span class="badge">no</span> {h(", ".join(e.not_held_out_splits))}'
        out.append(f'<tr class="describer" data-describer="{h(e.sub.label)}">'
                   f'<td data-v="{e.rank}">{e.rank}</td><td class="text">{name}</td>'
                   f'<td class="text">{h(e.sub.meta.get("version", ""))}</td><td class="text">{held}</td>'
                   + _td(e.norm.get(HEADLINE), bold=True, note=e.spread_text)
                   + "".join(_td(*per.get(s, (None, None))) for s in g.splits)
                   + "".join(_td(e.raw.get(m)) for m in METRICS) + "</tr>")
    out.append('</tbody><tbody class="reference">')
    for r in g.refs:
        out.append(f'<tr class="{h(r.kind)}"><td></td><td class="text">{h(r.label)}</td><td></td><td></td>'
                   + _td(r.norm.get(HEADLINE)) + "<td></td>" * len(g.splits)
                   + "".join(_td(r.raw.get(m)) for m in METRICS) + "</tr>")
    out.append("</tbody></table>")
    out.append(_svg_plot(g))
    out.append("<h3>Sample descriptions</h3>")
    for e in g.entries:
        items = "".join(f'<li><code>{h(u)}</code>: <span class="description">{h(d)}</span></li>' for u, d in e.samples)
        out.append(f'<details><summary>{h(e.sub.label)}</summary><ul>{items}</ul></details>')
    if g.benchmark == "milannotations":
        out.append(_html_reported(g.protocol))
    out.append("</section>")
    return "\n".join(out)


def render_html(groups: Sequence[Group]) -> str:
    sections = [_html_group(g) for g in groups]
    tabs = [(g.anchor, g.title) for g in groups]
    real = {g.protocol for g in groups if g.benchmark == "milannotations"}
    rest = [p for p in reported_protocols() if p not in real]
    if rest:
        sections.append('<section class="group" id="paper-reported"><h2>MILANNOTATIONS: numbers reported in the '
                        'paper (not recomputed)</h2>' + "".join(_html_reported(p) for p in rest) + "</section>")
        tabs.append(("paper-reported", "paper (reported, not recomputed)"))
    nav = "".join(f'<button type="button" data-target="{h(a)}">{h(t)}</button>' for a, t in tabs)
    body = "\n".join(sections) if groups else '<p>No submissions yet.</p>\n' + "\n".join(sections)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; "
        "script-src 'unsafe-inline'; img-src data:\">"
        f"<title>milannotations leaderboard</title><style>{_CSS}</style></head>\n"
        '<body data-ready="0"><h1>milannotations leaderboard</h1>'
        '<p class="note">Every ranked number was recomputed from the submitted descriptions by '
        '<code>milan-leaderboard validate</code>. Ranked by normalized BERTScore F1 averaged over splits: '
        '(describer − best floor) / (human ceiling − best floor). Other metrics are raw means over splits. '
        'Rows in yellow are reported in the paper and were not recomputed.</p>'
        f'<nav class="tabs">{nav}</nav>\n{body}\n<script>{_JS}</script></body></html>\n'
    )


def render(submissions: str | Path | None = None, out: str | Path | None = None) -> tuple[Path, Path]:
    """Write `README.md` and `index.html` for every readable submission; returns their paths."""
    from milannotations.fsutil import atomic_write_text

    subs, problems = load_all(submissions)
    for p in problems:
        print(f"milan-leaderboard: skipped unreadable submission: {p}", file=sys.stderr)
    groups = build_groups(subs)
    dest = Path(out) if out is not None else Path(__file__).resolve().parent
    md, page = dest / "README.md", dest / "index.html"
    atomic_write_text(md, render_markdown(groups))
    atomic_write_text(page, render_html(groups))
    return md, page


__all__ = ["build_groups", "h", "load_all", "md_escape", "render", "render_html", "render_markdown"]
