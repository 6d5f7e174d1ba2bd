"""The leaderboard page from small hand-made results: two ranked views (agreement, truth), oracle runs and the
annotators as reference rows, diagnostics never ranked, only validated submissions published, full boards
first, reference labels that never overlap, and a hostile describer name that stays text.

No describer runs here: each results.json is built by `_results` with the shape the harness writes
(`eval.harness._score_and_write`), numbers chosen so that the agreement and truth rankings differ.
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

import pytest

from eval.harness import normalized_value
from eval.metrics.spec import AGREEMENT_METRICS, TRUTH_METRICS

CHROMIUM = Path("/usr/bin/chromium")
HOSTILE = '<img src=x onerror="alert(1)">&\'"'
SPLITS = ("synth-plain->synth-cluttered", "synth-cluttered->synth-plain")
FLOOR = {"agreement": 0.30, "truth": 0.10}
CEILING = {"agreement": 0.70, "truth": 0.90}
HUMANS = 0.50  # the annotators scored by truth: (0.5 - 0.1) / (0.9 - 0.1) = 0.5 normalized


def _score(v: float) -> dict:
    return {"value": v, "ci95": [v - 0.01, v + 0.01], "signature": "test"}


def _section(agreement: float, truth: float | None, diagnostic: float | None = None) -> dict:
    out = {m: _score(agreement) for m in AGREEMENT_METRICS}
    if truth is not None:
        out.update({m: _score(truth) for m in TRUTH_METRICS})
        if diagnostic is not None:
            out.update({m: _score(diagnostic) for m in ("truth_concept_precision", "truth_concept_recall")})
    return out


def _results(name: str, agreement: float, truth: float | None, *, diagnostic: float | None = None,
             oracle: bool | None = None, args: dict | None = None, protocol: str = "within-network",
             limit: int | None = None, reference: str = "", revision: str = "a" * 64) -> dict:
    """A results.json of a synthetic run whose every metric of a family is `agreement` / `truth`."""
    with_truth = truth is not None
    floor = _section(FLOOR["agreement"], FLOOR["truth"] if with_truth else None)
    ceiling = _section(CEILING["agreement"], CEILING["truth"] if with_truth else None)
    metrics = _section(agreement, truth, diagnostic)
    splits = []
    for split in SPLITS:
        s = {"name": split, "train": ["synth-plain"], "test": ["synth-cluttered"], "n_units": 10, "held_out": True,
             "revision": revision, "metrics": metrics,
             "floors": {"constant": floor, "random-unit": _section(FLOOR["agreement"] - 0.05,
                                                                   FLOOR["truth"] - 0.05 if with_truth else None)},
             "floor": {m: {**v, "describer": "constant"} for m, v in floor.items()}, "ceiling": ceiling,
             "normalized": {m: {"value": normalized_value(v["value"], floor[m]["value"], ceiling[m]["value"]),
                                "ci95": [None, None], "signature": "test"} for m, v in metrics.items()}}
        if with_truth:
            s["humans"] = {m: _score(HUMANS) for m in TRUTH_METRICS}
            s["parse"] = {"parser": "synth-parse-1", "descriptions": 10, "parsed": 9,
                          "unparsed_examples": [f"{name} unparsed <b>x</b>"]}
        splits.append(s)
    describer = {"name": name, "version": "1", "trained_on": [], "args": dict(args or {}), "citation": "",
                 "reference": reference, "reproducible": True}
    if oracle is not None:
        describer["oracle"] = oracle
    return {"benchmark": "synth", "revision": revision, "protocol": protocol, "scorer": "offline", "seed": 0,
            "trials": 1, "limit": limit, "describer": describer, "splits": splits,
            "environment": {"python": "3", "torch": "2", "milannotations": "0", "bert_score": None, "sacrebleu": None,
                            "git": None, "device": "cpu"},
            "timing": {"fit_s": 0.0, "describe_s": 0.0, "score_s": 0.0, "total_s": 0.0},
            "date": "2025-01-01T00:00:00+00:00"}


def _write(root: Path, results: dict, descriptions: str = "a fish") -> Path:
    """A submission folder as write_submission lays it out."""
    from eval import ResultsRecord
    from leaderboard.submission import make_meta, submission_dir, variant

    record = ResultsRecord.from_dict(results)  # the shape the harness writes, or this fails here
    dest = submission_dir(record.describer.name, record.benchmark, record.protocol, root, variant(record))
    dest.mkdir(parents=True)
    (dest / "results.json").write_text(json.dumps(results))
    (dest / "meta.json").write_text(json.dumps(make_meta(record)))
    (dest / "descriptions.csv").write_text(
        "unit_id,layer,unit,description,split,trial\n" + f'u0,l,0,"{descriptions}",{SPLITS[0]},0\n')
    return dest


def _board(root: Path) -> dict[str, Path]:
    """Runs on one protocol whose agreement and truth orders differ, plus oracle runs of both kinds."""
    runs = {
        "talker": _results("talker", 0.65, 0.20),  # best agreement, poor truth
        "grounded": _results("grounded", 0.40, 0.80),  # poor agreement, best truth
        # best precision and recall (diagnostic) but the worst pixel Pearson: must rank last in truth
        "precise": _results("precise", 0.50, 0.15, diagnostic=0.99),
        "oracle-new": _results("netdissect", 0.69, 0.89, oracle=True, args={"segmenter": "oracle"}),
        "oracle-old": _results("compexp", 0.68, 0.88, args={"segmenter": "oracle"}),  # no describer.oracle
        # a free-text mention of an oracle is not an oracle run
        "prose": _results("prose", 0.35, 0.30, oracle=False, reference="uses no ORACLE masks"),
    }
    return {k: _write(root, r) for k, r in runs.items()}


def _groups(paths):
    from leaderboard.render import build_groups
    from leaderboard.submission import load_submission

    return build_groups([load_submission(p) for p in paths])


def _record_all(paths, record: Path) -> None:
    """A validation record saying every one of `paths` is valid as it is now (what validate would write)."""
    from leaderboard.submission import file_hashes, record_entry, record_key, write_record

    write_record(record, {record_key(p, record): record_entry(valid=True, hashes=file_hashes(p), mode="validate")
                          for p in paths})


def _view_rows(html_text: str, family: str) -> str:
    m = re.search(rf'<div class="view" data-view="{family}">.*?</svg>\s*</div>', html_text, re.S)
    assert m, f"no {family} view"
    return m.group(0)


def test_truth_view_ranks_by_normalized_pixel_pearson(tmp_path):
    (g,) = _groups(_board(tmp_path).values())
    assert [v.family for v in g.views] == ["agreement", "truth"]
    agreement, truth = g.view("agreement"), g.view("truth")
    assert [e.sub.describer for e in agreement.ranked] == ["talker", "precise", "grounded", "prose"]
    assert [e.sub.describer for e in truth.ranked] == ["grounded", "prose", "talker", "precise"]
    assert truth.ranks == [1, 2, 3, 4]
    assert truth.ranked[0].norm["truth_px_pearson"] == pytest.approx((0.80 - 0.10) / (0.90 - 0.10))
    # the truth view's columns are the truth family, the agreement view's the agreement family
    assert truth.metrics == TRUTH_METRICS and agreement.metrics == AGREEMENT_METRICS
    from leaderboard.render import render_html, render_markdown

    page = render_html([g])
    assert re.findall(r'<tr class="describer" data-describer="([^"]+)"', _view_rows(page, "truth")) == \
        ["grounded", "prose", "talker", "precise"]
    assert "<th>normalized Pixel Pearson (mean)</th>" in _view_rows(page, "truth")
    assert "BERTScore" not in _view_rows(page, "truth") and "Pixel Pearson" not in _view_rows(page, "agreement")
    md = render_markdown([g])
    truth_md = md[md.index("#### Truth"):]
    assert [ln.split(" | ")[1] for ln in truth_md.splitlines() if re.match(r"\| \d+ \|", ln)] == \
        ["grounded", "prose", "talker", "precise"]
    assert "18/20 (90%)" in truth_md and "18/20 (90%)" in _view_rows(page, "truth")  # parsed, both splits
    assert "parsed" not in _view_rows(page, "agreement")


def test_oracle_runs_are_reference_rows_in_both_views(tmp_path):
    (g,) = _groups(_board(tmp_path).values())
    for v in g.views:
        ranked = [e.sub.describer for e in v.ranked]
        assert "netdissect" not in ranked and "compexp" not in ranked  # the best numbers, yet never ranked
        assert "prose" in ranked  # "ORACLE" in free text does not make an oracle run
        oracles = [r for r in v.refs if r.kind == "oracle"]
        assert [r.entry.sub.describer for r in oracles] == ["netdissect", "compexp"]
        assert all(r.label.endswith("oracle segmenter: upper bound") for r in oracles)
    assert g.oracles and all(e.sub.oracle for e in g.oracles) and not any(e.sub.oracle for e in g.entries)
    from leaderboard.render import render_html, render_markdown

    page = render_html([g])
    for family in ("agreement", "truth"):
        view = _view_rows(page, family)
        ranked, reference = view.split('<tbody class="reference">')
        assert "netdissect" not in ranked and "compexp" not in ranked
        assert re.search(r'<tr class="oracle" data-describer="netdissect \(segmenter=oracle\)">', reference)
        assert "oracle segmenter: upper bound" in reference
    md = render_markdown([g])
    assert not [ln for ln in md.splitlines() if re.match(r"\| \d+ \|", ln) and "segmenter=oracle" in ln]
    assert md.count("| *netdissect (segmenter=oracle)* (oracle segmenter: upper bound) |") == 2  # both views


def test_diagnostic_metrics_never_rank_and_are_marked(tmp_path):
    (g,) = _groups(_board(tmp_path).values())
    truth = g.view("truth")
    precise = next(e for e in truth.ranked if e.sub.describer == "precise")
    assert precise.raw["truth_concept_precision"] == 0.99  # the best diagnostic numbers...
    assert truth.ranked[-1] is precise  # ...and ranked last, by pixel Pearson
    assert truth.headline == "truth_px_pearson"
    from leaderboard.render import render_html, render_markdown

    view = _view_rows(render_html([g]), "truth")
    heads = re.findall(r"<th[^>]*>.*?</th>", view.split("</thead>")[0])
    from eval.metrics.spec import METRICS

    labels = [m.label for m in METRICS if m.family == "truth" and m.diagnostic]  # the table decides
    diag = [t for t in heads if any(lab in t for lab in labels)]
    assert len(diag) == len(labels) >= 2
    assert all('class="diagnostic" data-nosort="1"' in t and "diagnostic: not ranked" in t for t in diag)
    assert not [t for t in heads if "diagnostic" in t and not any(lab in t for lab in labels)]
    # every row has one diagnostic cell per diagnostic metric: ranked, oracles, floors, best, humans, ceiling
    assert view.count('<td class="diagnostic"') == len(labels) * (4 + 2 + 2 + 1 + 1 + 1)
    md = render_markdown([g])
    assert "Concept precision (diagnostic: not ranked) (mean)" in md


def test_humans_row_and_labelled_ceilings(tmp_path):
    (g,) = _groups(_board(tmp_path).values())
    truth, agreement = g.view("truth"), g.view("agreement")
    kinds = [r.kind for r in truth.refs]
    assert kinds == ["floor", "floor", "best-floor", "humans", "oracle", "oracle", "ceiling"]
    humans = truth.refs[kinds.index("humans")]
    assert humans.label == "annotators, scored by truth"
    assert humans.raw["truth_px_pearson"] == pytest.approx(HUMANS)
    assert humans.norm["truth_px_pearson"] == pytest.approx((HUMANS - 0.10) / (0.90 - 0.10))
    assert truth.refs[-1].label == "ceiling: truth formula (scored as a description)"
    assert truth.refs[-1].norm["truth_px_pearson"] == pytest.approx(1.0)
    assert "humans" not in [r.kind for r in agreement.refs]
    assert agreement.refs[-1].label == "human ceiling (annotators, leave-one-out)"
    from leaderboard.render import render_html, render_markdown

    page = render_html([g])
    assert '<tr class="humans"><td></td><td class="text">annotators, scored by truth</td>' in _view_rows(page, "truth")
    assert "truth formula" in _view_rows(page, "truth") and "leave-one-out" in _view_rows(page, "agreement")
    assert "| *annotators, scored by truth* |" in render_markdown([g])


def test_truth_view_only_where_the_runs_have_truth_metrics(tmp_path):
    old = [_write(tmp_path / "a", _results("talker", 0.6, None)),
           _write(tmp_path / "a", _results("grounded", 0.4, None))]
    (g,) = _groups(old)
    assert [v.family for v in g.views] == ["agreement"]
    from leaderboard.render import render_html

    assert 'data-view="truth"' not in render_html([g])
    # one run rescored, one not yet: the truth view ranks the rescored one and names the other
    mixed = [_write(tmp_path / "b", _results("talker", 0.6, None)),
             _write(tmp_path / "b", _results("grounded", 0.4, 0.7))]
    (g,) = _groups(mixed)
    truth = g.view("truth")
    assert [e.sub.describer for e in truth.ranked] == ["grounded"] and truth.missing == ["talker"]
    assert "Not in this view (no truth metrics in their results; rescore them): talker." in render_html([g])
    assert [e.sub.describer for e in g.view("agreement").ranked] == ["talker", "grounded"]


def _partial_board(root: Path) -> list[Path]:
    # the partial run's protocol sorts first alphabetically; it must still come after the full board
    return [_write(root, _results("talker", 0.6, 0.3, protocol="across-domain", limit=5, revision="b" * 64)),
            _write(root, _results("talker", 0.6, 0.3, protocol="within-network"))]


def test_page_opens_on_the_full_board_and_lists_partial_runs_last(tmp_path):
    from leaderboard.render import render_html, render_markdown

    groups = _groups(_partial_board(tmp_path))
    assert [(g.protocol, g.partial) for g in groups] == [("within-network", False), ("across-domain", True)]
    page = render_html(groups)
    buttons = re.findall(r'<button type="button"( class="partial")? data-target="([^"]+)">', page)
    assert buttons[0] == ("", groups[0].anchor)
    assert buttons[-1] == (' class="partial"', groups[1].anchor)  # after the paper's tab too
    assert page.index(f'id="{groups[0].anchor}"') < page.index('id="paper-reported"') < \
        page.index(f'id="{groups[1].anchor}"')
    md = render_markdown(groups)
    assert md.index("### synth · within-network") < md.index("## Partial runs") < \
        md.index("### synth · across-domain (partial: --limit 5)")


def test_unvalidated_submissions_are_not_published(tmp_path, capsys):
    from leaderboard.render import render
    from leaderboard.submission import (file_hashes, record_entry, record_key, record_path, write_record)

    subs = tmp_path / "submissions"
    paths = _board(subs)
    record = record_path(subs)
    assert record == tmp_path / "validated.json"
    # no record at all: nothing is published, everything is named
    md, page = render(subs, tmp_path / "none")
    assert "No validated submissions yet." in md.read_text()
    assert '<tr class="describer"' not in page.read_text()
    assert page.read_text().count("not validated (no entry in the validation record)") == len(paths)
    capsys.readouterr()
    # talker and grounded validated; precise refused; prose changed after validation; the rest never validated
    entries = {record_key(paths[k], record): record_entry(valid=True, hashes=file_hashes(paths[k]), mode="validate")
               for k in ("talker", "grounded", "prose")}
    entries[record_key(paths["precise"], record)] = record_entry(
        valid=False, hashes=file_hashes(paths["precise"]), mode="validate", errors=["split 'x': raised number"])
    write_record(record, entries)
    meta = json.loads((paths["prose"] / "meta.json").read_text())
    (paths["prose"] / "meta.json").write_text(json.dumps({**meta, "authors": ["someone else"]}))
    md, page = render(subs, tmp_path / "site")
    html_text, md_text = page.read_text(), md.read_text()
    ranked = re.findall(r'<tr class="describer" data-describer="([^"]+)"', html_text)
    assert sorted(set(ranked)) == ["grounded", "talker"]
    err = capsys.readouterr().err
    page_text = html.unescape(re.sub(r"<[^>]+>", "", html_text))
    md_plain = md_text.replace("\\", "")  # Markdown escapes of + and _ aside
    for text in (page_text, md_plain, err):
        assert "prose/synth-within-network: changed since validation (meta.json)" in text
        assert "precise/synth-within-network: refused by validation (split 'x': raised number)" in text
        assert "netdissect+segmenter-oracle/synth-within-network: not validated" in text
    assert "Every ranked number was recomputed" in html_text
    # a damaged record publishes nothing
    record.write_text("{not json")
    _, page = render(subs, tmp_path / "damaged")
    assert '<tr class="describer"' not in page.read_text() and "validation record unreadable" in page.read_text()


def test_validate_writes_the_record_and_no_recompute_leaves_it(tmp_path, monkeypatch, capsys):
    """The CLI records each report with the files' hashes; --no-recompute validated nothing and writes nothing;
    files changed while being validated are recorded as refused."""
    import leaderboard.validate as validate
    from leaderboard.cli import main
    from leaderboard.submission import file_hashes, read_record, record_path
    from leaderboard.validate import Report

    subs = tmp_path / "submissions"
    a = _write(subs, _results("talker", 0.6, 0.3))
    b = _write(subs, _results("grounded", 0.4, 0.7))
    calls = []

    def fake(paths, **kw):
        calls.append(kw)
        reps = [Report(f"{p.parent.name}/{p.name}", p) for p in paths]
        for rep in reps:
            if rep.name.startswith("grounded/"):
                rep.error("raised number")
        return reps

    monkeypatch.setattr(validate, "validate_paths", fake)
    assert main(["validate", "--no-recompute", "--submissions", str(subs)]) == 1
    assert not record_path(subs).exists()
    assert main(["validate", "--submissions", str(subs)]) == 1
    entries = read_record(record_path(subs))
    assert entries["submissions/talker/synth-within-network"]["outcome"] == "valid"
    assert entries["submissions/talker/synth-within-network"]["files"] == file_hashes(a)
    assert entries["submissions/grounded/synth-within-network"]["outcome"] == "refused"
    assert "raised number" in entries["submissions/grounded/synth-within-network"]["errors"][0]

    def changing(paths, **kw):
        (a / "meta.json").write_text("{}")
        return [Report(f"{p.parent.name}/{p.name}", p) for p in paths]

    monkeypatch.setattr(validate, "validate_paths", changing)
    assert main(["validate", str(a)]) == 1
    assert "files changed while being validated" in capsys.readouterr().err
    assert read_record(record_path(subs))["submissions/talker/synth-within-network"]["outcome"] == "refused"
    assert read_record(record_path(subs))["submissions/grounded/synth-within-network"]["outcome"] == "refused"
    assert b.exists()


def test_reference_labels_never_overlap_on_extreme_values(tmp_path):
    from leaderboard.render import _LABEL_CHAR, place_labels, plot_layout, render_html

    # a run far above the ceiling squeezes 0 and 1 into a few pixels; one far below pushes them to the right edge
    for agreement in (0.30 + 0.40 * 60, 0.30 - 0.40 * 40):
        (g,) = _groups([_write(tmp_path / str(agreement), _results("extreme", agreement, 0.5))])
        lay = plot_layout(g.view("agreement"))
        labels = lay["labels"]
        assert [p["text"] for p in labels] == ["best floor", "human ceiling"]
        for p in labels:
            assert 0 <= p["x0"] < p["x1"] <= lay["width"]
            assert p["x1"] - p["x0"] == pytest.approx(_LABEL_CHAR * len(p["text"]))
        one, two = labels
        assert one["y"] != two["y"] or one["x1"] <= two["x0"] or two["x1"] <= one["x0"]
        assert lay["top"] > max(p["y"] for p in labels)  # the rows start below the labels
        svg = _view_rows(render_html([g]), "agreement")  # the page draws them where the layout says
        drawn = re.findall(r'<text class="ref-label" x="([^"]+)" y="([^"]+)"', svg)
        assert drawn == [(f"{p['x']:.1f}", f"{p['y']:.1f}") for p in labels]
    # ordinary values keep both labels on one line, centred on their lines
    a, b = place_labels([("best floor", 250.0), ("human ceiling", 600.0)], 700)
    assert a["y"] == b["y"] and a["x"] == pytest.approx(250.0) and b["x"] == pytest.approx(600.0)


def test_hostile_describer_name_is_escaped_everywhere(tmp_path):
    from leaderboard.render import render

    subs = tmp_path / "submissions"
    paths = [_write(subs, _results(HOSTILE, 0.6, 0.5), descriptions="<script>alert(2)</script>"),
             _write(subs, _results(HOSTILE, 0.6, 0.5, oracle=True, args={"segmenter": "oracle"})),
             _write(subs, _results("plain", 0.5, 0.4))]
    _record_all(paths, tmp_path / "validated.json")
    md, page = render(subs, tmp_path / "site")
    text = page.read_text()
    assert "<img" not in text and "<script>alert(2)" not in text and "<b>x</b>" not in text
    escaped = "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&amp;&#x27;&quot;"
    assert text.count(f'data-describer="{escaped}"') == 2  # ranked in the agreement and the truth view
    assert text.count(f'<tr class="oracle" data-describer="{escaped} (segmenter=oracle)">') == 2
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in text
    m = md.read_text()
    assert "<img" not in m and "&lt;img src=x onerror=\"alert(1)\"&gt;&amp;'\"" in m


needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium to run the page's script")


from tests.test_leaderboard import _dump_dom  # noqa: E402  (one Chromium driver for both page tests)


@needs_chromium
def test_page_in_chromium_opens_on_the_full_board_and_diagnostics_do_not_sort(tmp_path):
    from leaderboard.render import render

    subs = tmp_path / "submissions"
    paths = [*_partial_board(subs), *_board(tmp_path / "more").values()]
    _record_all(paths[:2], tmp_path / "validated.json")
    _record_all(paths[2:], tmp_path / "more-record.json")
    _, page = render(subs, tmp_path / "site")
    dom = _dump_dom(page.resolve().as_uri(), tmp_path / "profile")
    assert '<body data-ready="1">' in dom
    active = re.findall(r'<button type="button"[^>]*class="[^"]*active[^"]*"[^>]*>', dom)
    assert len(active) == 1 and 'data-target="synth-within-network' in active[0], active
    assert re.search(r'<section class="group" id="synth-across-domain[^"]*"[^>]*hidden', dom)
    # a diagnostic column (9th header of the truth table: after #, name, version, held out, normalized,
    # 2 splits, 8 ranked truth metrics) cannot reorder the ranked rows, even by URL
    _, page = render(tmp_path / "more", tmp_path / "site2", record=tmp_path / "more-record.json")
    diag = 5 + len(SPLITS) + TRUTH_METRICS.index("truth_concept_precision")
    dom = _dump_dom(page.resolve().as_uri() + f"?sort={diag}&dir=desc", tmp_path / "profile2")
    truth = re.search(r'<table class="board sortable" data-view="truth">.*?</table>', dom, re.S).group(0)
    assert re.findall(r'<tr class="describer" data-describer="([^"]+)"', truth) == \
        ["grounded", "prose", "talker", "precise"]
    assert "sorted-desc" not in truth
