"""The leaderboard: submissions made by the harness validate, tampered ones are refused, the page renders.

One tiny synthetic-like corpus (tests/eval_corpus.py) is scored by the real
harness for two describers: the `constant` floor and a describer whose name
and descriptions carry markup. Everything else works on copies of those
submissions.
"""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from leaderboard.reported import REPORTED
from milannotations.contract import DescriberMeta
from tests.eval_corpus import write_eval_corpus

CHROMIUM = Path("/usr/bin/chromium")
MARKUP = "<script>alert(1)</script> <b>x</b>"
EVIL_NAME = "<i>evil</i> & co"


class MarkupDescriber:
    """Describes every unit with HTML markup; its name is markup too."""

    meta = DescriberMeta(name=EVIL_NAME, version="<v1>", trained_on=())

    def fit(self, train) -> None:
        pass

    def describe(self, units) -> list[str]:
        return [f"{MARKUP} {u.unit}" for u in units]


@pytest.fixture(scope="module")
def board(tmp_path_factory):
    """A corpus, and two real submissions made by eval.evaluate + leaderboard.submission."""
    from eval import evaluate
    from leaderboard.submission import submit, write_submission

    base = tmp_path_factory.mktemp("board")
    corpus = write_eval_corpus(base / "corpus", n_units=16, n_test=5)
    subs = base / "submissions"
    evaluate("constant", root=corpus, output=base / "run-constant", progress=False)
    constant = write_submission(base / "run-constant", root=subs, authors=["A. <Tester>"],
                                link="https://example.org/constant?a=1&b=2")
    results = evaluate(MarkupDescriber(), root=corpus, output=base / "run-evil", progress=False)
    evil = submit(base / "run-evil", results, root=subs)
    return {"base": base, "corpus": corpus, "subs": subs, "constant": constant, "evil": evil}


@pytest.fixture(scope="module")
def validated(board):
    """The board's submissions validated by the CLI, which writes the validation record render publishes from
    (`validated.json` beside the submissions folder); render leaves out anything without a matching entry."""
    from leaderboard.cli import main

    assert main(["validate", "--root", str(board["corpus"]), str(board["subs"])]) == 0
    assert (board["subs"].parent / "validated.json").is_file()
    return board


def _copy(board, name: str) -> Path:
    """A copy of the constant submission under another submissions root (same relative folder)."""
    src: Path = board["constant"]
    dst = board["base"] / name / src.parent.name / src.name
    shutil.copytree(src, dst)
    return dst


def _validate(board, path: Path, **kw):
    from leaderboard.validate import validate_submission

    return validate_submission(path, corpus_root=board["corpus"], **kw)


def test_submission_folder_layout(board):
    constant, evil = board["constant"], board["evil"]
    assert constant.relative_to(board["subs"]).as_posix() == "constant/synth-within-network"
    assert evil.parent.name == "i_evil_i_co"  # markup never reaches the filesystem
    meta = json.loads((constant / "meta.json").read_text())
    assert meta["name"] == "constant" and meta["authors"] == ["A. <Tester>"]
    assert meta["link"] == "https://example.org/constant?a=1&b=2" and meta["trained_on"] == []
    # results.json is the harness's file, byte for byte
    assert (constant / "results.json").read_bytes() == (board["base"] / "run-constant" / "results.json").read_bytes()
    assert json.loads((evil / "meta.json").read_text())["name"] == EVIL_NAME


def test_harness_submissions_validate_and_recompute_every_number(board):
    from leaderboard.validate import validate_paths

    reports = validate_paths([board["constant"], board["evil"]], corpus_root=board["corpus"])
    for rep in reports:
        assert rep.ok, [str(p) for p in rep.problems]
        # 4 splits x (metrics + ceiling + floor + 2 floors + normalized) x 6 metrics
        assert rep.checked == 4 * 6 * 6
        assert rep.units == 4 * 5 and rep.descriptions == 4 * 5
        assert rep.summary.startswith("20 described units (20 descriptions), 144 numbers recomputed, 0 error(s)")


def test_raised_numbers_are_refused_naming_split_and_metric(board):
    path = _copy(board, "raised")
    doc = json.loads((path / "results.json").read_text())
    names = [s["name"] for s in doc["splits"]]
    doc["splits"][1]["metrics"]["bertscore_f1"]["value"] += 0.01
    doc["splits"][0]["ceiling"]["bleu"]["ci95"][1] += 1e-3
    doc["splits"][2]["normalized"]["rouge_l"]["value"] += 1e-5
    (path / "results.json").write_text(json.dumps(doc))
    rep = _validate(board, path)
    assert not rep.ok
    msgs = sorted(str(p) for p in rep.errors)
    # the three raised numbers, and the normalized score the raised metric no longer agrees with
    assert len(msgs) == 4, msgs
    assert all(m.startswith("error: constant/synth-within-network: split ") for m in msgs)
    assert any(f"split {names[1]!r}, metrics.bertscore_f1: claimed" in m and "but recomputed" in m for m in msgs)
    assert any(f"split {names[1]!r}, normalized.bertscore_f1: claimed" in m and
               "but the claimed metric, floor and ceiling give" in m for m in msgs), msgs
    assert any(f"split {names[0]!r}, ceiling.bleu: claimed 95% interval" in m for m in msgs), msgs
    assert any(f"split {names[2]!r}, normalized.rouge_l: claimed" in m for m in msgs), msgs


def test_rescore_rewrites_only_the_numbers_and_then_validates(board, capsys):
    from leaderboard.cli import main

    path = _copy(board, "rescore")
    original = json.loads((path / "results.json").read_text())
    doc = json.loads(json.dumps(original))
    doc["splits"][1]["metrics"]["bertscore_f1"]["value"] += 0.25  # as if the metric's definition had changed
    doc["splits"][0]["floors"]["constant"]["bleu"]["ci95"][0] -= 1.0
    doc["splits"][3]["normalized"]["rouge_l"]["value"] = None
    (path / "results.json").write_text(json.dumps(doc))
    assert not _validate(board, path).ok
    assert main(["rescore", "--root", str(board["corpus"]), str(path)]) == 0
    assert "rescored: constant/synth-within-network" in capsys.readouterr().out
    assert json.loads((path / "results.json").read_text()) == original  # numbers back, the rest untouched
    assert _validate(board, path).ok
    # a submission that fails a check other than the numbers is not rewritten
    _rewrite_csv(path, lambda rows: (rows[1:], None))
    before = (path / "results.json").read_bytes()
    assert main(["rescore", "--root", str(board["corpus"]), str(path)]) == 1
    assert (path / "results.json").read_bytes() == before


def test_wrong_n_units_is_one_error_per_split_whatever_the_trials(board):
    path = _copy(board, "n-units")
    doc = json.loads((path / "results.json").read_text())
    doc["trials"] = 2
    doc["splits"][0]["n_units"] += 1
    (path / "results.json").write_text(json.dumps(doc))
    _rewrite_csv(path, lambda rows: (rows + [{**r, "trial": "1"} for r in rows], None))
    rep = _validate(board, path, recompute=False)
    n_units = [str(p) for p in rep.errors if "n_units" in str(p)]
    assert n_units == [f"error: constant/synth-within-network: split {doc['splits'][0]['name']!r}: n_units is 6 "
                       "but the split has 5 test units"], [str(p) for p in rep.problems]
    assert rep.units == 4 * 5 and rep.descriptions == 2 * 4 * 5


def _rewrite_csv(path: Path, edit) -> dict:
    with (path / "descriptions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    rows, info = edit(rows)
    with (path / "descriptions.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    return info


def test_missing_unit_is_refused_naming_the_unit(board):
    path = _copy(board, "missing")
    gone = _rewrite_csv(path, lambda rows: (rows[:3] + rows[4:], rows[3]))
    msgs = [str(p) for p in _validate(board, path).errors]
    assert any(f"split {gone['split']!r}, trial 0: 1 test unit(s) not described: {gone['unit_id']}" in m
               for m in msgs), msgs


def test_duplicated_unit_is_refused_naming_the_unit(board):
    path = _copy(board, "duplicated")
    dup = _rewrite_csv(path, lambda rows: (rows + [rows[7]], rows[7]))
    msgs = [str(p) for p in _validate(board, path).errors]
    assert any(f"split {dup['split']!r}, trial 0: unit(s) described more than once: {dup['unit_id']} (2 times)" in m
               for m in msgs), msgs


def test_stray_unit_revision_and_held_out_claims_are_refused(board):
    path = _copy(board, "stray")
    _rewrite_csv(path, lambda rows: (rows[:-1] + [{**rows[-1], "unit_id": "synth-deep-cluttered/layer1/99",
                                                    "unit": "99"}], None))
    doc = json.loads((path / "results.json").read_text())
    doc["revision"] = "0" * 64
    doc["describer"]["trained_on"] = ["synth-deep-cluttered"]
    (path / "results.json").write_text(json.dumps(doc))
    meta = json.loads((path / "meta.json").read_text())
    meta["trained_on"] = ["synth-deep-cluttered"]
    (path / "meta.json").write_text(json.dumps(meta))
    rep = _validate(board, path, recompute=False)
    msgs = [str(p) for p in rep.problems]
    assert any("not test units of this split: synth-deep-cluttered/layer1/99" in m for m in msgs), msgs
    assert any("data revision 0000000000000000... is not the benchmark data's" in m for m in msgs), msgs
    assert any(m.startswith("warning:") and "trained on synth-deep-cluttered" in m and "not held out" in m
               for m in msgs), msgs
    assert any("claims held_out=true but trained_on includes synth-deep-cluttered" in m for m in msgs), msgs


def test_cli_validate_exit_codes(board, capsys):
    from leaderboard.cli import main

    bad = _copy(board, "cli-bad")
    (bad / "meta.json").unlink()
    assert main(["validate", "--root", str(board["corpus"]), "--no-recompute", str(board["constant"])]) == 0
    assert main(["validate", "--root", str(board["corpus"]), str(bad)]) == 1
    captured = capsys.readouterr()
    assert f"error: constant/synth-within-network: {bad}: missing meta.json" in captured.err
    assert "ok: constant/synth-within-network" in captured.out
    assert "REFUSED: constant/synth-within-network" in captured.out


@pytest.mark.parametrize("case, content, needle", [
    ("long", None, "description longer than"),
    ("latin1", "unit_id,layer,unit,description,split,trial\nx,l,0,caf\xe9,s,0\n".encode("latin-1"), "not UTF-8"),
    ("bom", b"\xef\xbb\xbfunit_id,layer,unit,description,split,trial\n", "byte-order mark"),
])
def test_unreadable_descriptions_are_one_error_each_and_the_rest_still_validate(board, case, content, needle,
                                                                                 capsys):
    """Issue 14 item 3: each bad descriptions.csv is one line; the other paths of the run still validate."""
    from leaderboard.cli import main
    from eval.results import MAX_DESCRIPTION

    bad = _copy(board, f"csv-{case}")
    csv_path = bad / "descriptions.csv"
    if content is None:  # one field above both csv's default limit and ours
        rows = csv_path.read_text().splitlines()
        head, first = rows[0], rows[1].split(",")
        first[3] = "x" * (MAX_DESCRIPTION + 10)
        content = (head + "\n" + ",".join(first) + "\n").encode()
    csv_path.write_bytes(content)
    before = {p: p.read_bytes() for p in bad.iterdir()}
    rc = main(["validate", "--root", str(board["corpus"]), "--no-recompute", str(bad), str(board["constant"])])
    captured = capsys.readouterr()
    assert rc == 1 and "Traceback" not in captured.err
    errors = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and needle in errors[0] and "descriptions.csv" in errors[0], captured.err
    assert "ok: constant/synth-within-network" in captured.out  # the good submission was still validated
    assert {p: p.read_bytes() for p in bad.iterdir()} == before  # nothing written


def test_markdown_escapes_submitted_strings(validated, tmp_path):
    board = validated
    from leaderboard.render import render

    md, page = render(board["subs"], tmp_path)
    text = md.read_text()
    assert "<i>" not in text and "<script>" not in text
    assert "&lt;i&gt;evil&lt;/i&gt; &amp; co" in text
    assert r"[constant](<https://example.org/constant?a=1&b=2>)" in text
    # ranked rows, floors, ceiling, and the paper's numbers marked as not recomputed
    table = [ln for ln in text.splitlines() if ln.startswith("| 1 |") or ln.startswith("| 2 |")]
    assert len(table) == 2
    assert "*human ceiling" in text and "*floor: constant*" in text
    assert text.count("reported, not recomputed") == len(REPORTED)  # every paper number of Tables 2-3, once
    html_text = page.read_text()
    assert "<script>alert(1)</script>" not in html_text
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;x&lt;/b&gt;" in html_text
    assert not re.search(r"""(src|href)=["']https?://(?!example\.org)""", html_text)  # no external resources


def _dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page's script ran, from headless Chromium (no network, throw-away profile)."""
    out = subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=2000", "--dump-dom", url],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


needs_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium "
                                    "(apt-get install -y chromium) to render the page headless")


@needs_chromium
def test_page_renders_in_headless_chromium(validated, tmp_path):
    board = validated
    from leaderboard.render import render

    _, page = render(board["subs"], tmp_path / "site")
    dom = _dump_dom(page.resolve().as_uri(), tmp_path / "profile")
    assert '<body data-ready="1">' in dom, "the page's script did not run"
    section = re.search(r'<section class="group" id="synth-within-network[^"]*".*?</section>', dom, re.S)
    assert section, dom[:2000]
    rows = re.findall(r'<tr class="describer" data-describer="([^"]*)"', section.group(0))
    assert sorted(rows) == sorted(["constant", "&lt;i&gt;evil&lt;/i&gt; &amp; co"])
    # the markup arrived as text: no element was made from it, the text is there
    assert "<script>alert(1)</script>" not in dom and "<b>x</b>" not in dom
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &lt;b&gt;x&lt;/b&gt;" in dom
    # tabs: the first is active and shown, the paper tab hidden
    assert re.search(r'<button type="button" data-target="synth-within-network[^"]*" class="active">', dom)
    assert re.search(r'<section class="group" id="paper-reported" hidden="">', dom)


def test_seed_runs_milan_eval_submit_for_every_board_entry_and_protocol(capsys):
    from baselines.registry import available_describers
    from eval.protocols import protocols
    from leaderboard.seed import BOARD, PROTOCOLS, main

    assert set(PROTOCOLS) == set(protocols("synth"))
    assert {e.describer for e in BOARD} == set(available_describers())  # every built-in is on the board
    assert main(["--dry-run"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("$ ")]
    assert len(lines) == len(BOARD) * len(PROTOCOLS)
    pairs = [(e, p) for p in PROTOCOLS for e in BOARD]  # by protocol: every entry's cheap runs first
    for (entry, protocol), line in zip(pairs, lines):
        assert f"--describer {entry.describer} --benchmark synth --protocol {protocol} " in line
        # the paper's 5 trials within-network for seeded describers; deterministic ones would repeat one run
        trials = 5 if protocol == "within-network" and entry.seeded else 1
        assert "--submit" in line and f"--trials {trials} " in line
        # MILAN gets the paper's within-network patience on top of its variant's arguments
        args = ",".join(a for a in (entry.args, "patience=10" if (entry.describer, protocol) ==
                                    ("milan", "within-network") else "") if a)
        assert (f"--describer-args {args}" in line) if args else "--describer-args" not in line
    assert {e.describer for e in BOARD if e.seeded} == {"milan", "random-unit"}
    assert main(["--dry-run", "--describers", "nope"]) == 2


def test_variants_of_one_describer_are_separate_submissions(board, tmp_path):
    from eval import ResultsRecord
    from leaderboard.submission import load_submission, variant, write_submission

    doc = json.loads((board["constant"] / "results.json").read_text())
    doc["describer"]["args"] = {"segmenter": "synth", "device": "cpu", "top": 2}
    assert variant(ResultsRecord.from_dict(doc)) == "segmenter=synth, top=2"  # device cannot change a description
    dest = write_submission(doc, descriptions=board["constant"] / "descriptions.csv", root=tmp_path)
    assert dest.relative_to(tmp_path).as_posix() == "constant+segmenter-synth+top-2/synth-within-network"
    assert load_submission(dest).label == "constant (segmenter=synth, top=2)"
    assert _validate(board, dest, recompute=False).ok  # validation expects the variant's folder
    misplaced = tmp_path / "elsewhere" / "constant" / "synth-within-network"
    shutil.copytree(dest, misplaced)
    assert any("should be constant+segmenter-synth+top-2/synth-within-network" in str(p)
               for p in _validate(board, misplaced, recompute=False).errors)
    doc["describer"]["args"] = {"device": "cpu"}
    plain = write_submission(doc, descriptions=board["constant"] / "descriptions.csv", root=tmp_path)
    assert plain.parent.name == "constant" and load_submission(plain).label == "constant"


def test_seed_does_not_render_when_validation_fails(monkeypatch, capsys):
    import subprocess

    from leaderboard import seed

    ran: list[list[str]] = []

    def fake_run(cmd, check=False):
        ran.append(list(cmd))
        return subprocess.CompletedProcess(cmd, 1 if "validate" in cmd else 0)

    monkeypatch.setattr(seed.subprocess, "run", fake_run)
    assert seed.main(["--describers", "constant", "--protocols", "within-network"]) == 1
    assert [cmd[-1] if "validate" in cmd else cmd[cmd.index("--describer") + 1] for cmd in ran] == \
        ["constant", "validate"]  # no render after a failed validation
    assert "not rendered" in capsys.readouterr().err


@needs_chromium
def test_page_sorts_rows_by_a_column(validated, tmp_path):
    """`?sort=4&dir=asc` runs the same code as a click on the 5th header (normalized score)."""
    board = validated
    from leaderboard.render import render

    _, page = render(board["subs"], tmp_path / "site")
    for direction in ("asc", "desc"):
        dom = _dump_dom(page.resolve().as_uri() + f"?sort=4&dir={direction}", tmp_path / f"profile-{direction}")
        section = re.search(r'<section class="group" id="synth-within-network.*?</section>', dom, re.S).group(0)
        rows = re.findall(r'<tr class="describer".*?</tr>', section, re.S)
        scores = [float(re.findall(r'data-v="([^"]+)"', r)[1]) for r in rows]  # rank, then normalized
        assert len(scores) == 2 and scores[0] != scores[1]
        assert scores == sorted(scores, reverse=direction == "desc")
        assert re.search(rf'<th class="sorted-{direction}">normalized', section)


def test_trial_spread_is_the_sd_of_each_trials_normalized_mean_over_splits():
    import statistics

    from eval import Floors, Score, Scores, SplitRecord
    from leaderboard.render import _trial_spread

    def scores(value, tv=None):
        return Scores((("bertscore_f1", Score(value, (value, value), "test", trial_values=tv)),))

    def split(tv, floor, ceil):  # trial values only for several trials, as the harness writes them
        mean = sum(tv) / len(tv)
        return SplitRecord("s", ("c",), ("c",), 3, True, metrics=scores(mean, tuple(tv) if len(tv) > 1 else None),
                           floors=Floors(scores(floor), scores(floor)), floor=scores(floor), ceiling=scores(ceil),
                           normalized=scores(0.0))

    splits = [split([0.5, 0.6, 0.7], 0.3, 0.8), split([0.4, 0.4, 0.6], 0.2, 0.6)]
    per_trial = [((a - 0.3) / 0.5 + (b - 0.2) / 0.4) / 2 for a, b in zip([0.5, 0.6, 0.7], [0.4, 0.4, 0.6])]
    n, sd = _trial_spread(splits)
    assert n == 3 and sd == pytest.approx(statistics.stdev(per_trial))
    assert _trial_spread([split([0.5], 0.3, 0.8)]) == (1, None)  # one trial: no spread


def test_seed_skip_existing_leaves_out_entries_already_submitted(tmp_path, monkeypatch, capsys):
    import leaderboard.submission as submission
    from leaderboard.seed import BOARD, main, submission_of

    monkeypatch.setattr(submission, "SUBMISSIONS_ROOT", tmp_path)
    greedy = next(e for e in BOARD if e.args == "strategy=greedy")
    done = submission_of(greedy, "synth", "within-network")
    assert done == tmp_path / "milan+patience-10+strategy-greedy" / "synth-within-network"
    done.mkdir(parents=True)
    (done / "results.json").write_text("{}")
    assert main(["--dry-run", "--skip-existing", "--protocols", "within-network", "--describers", "milan"]) == 0
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("$ ")]
    assert len(lines) == 2 and not any("strategy=greedy" in ln for ln in lines)
