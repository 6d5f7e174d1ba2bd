"""milan-report and applications.report: the pipeline from a model, the page in headless Chromium, escaping."""
from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from applications.report import build_report, contact_sheet, script_json

CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs chromium on PATH to run the page's script")

EVIL = "<script>alert(1)</script> and </script><!-- <b>bold</b> & more"


def _dump_dom(url: str, profile: Path) -> str:
    """The DOM after the page's script ran (headless Chromium, no network, throw-away profile)."""
    out = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
         "--virtual-time-budget=5000", "--dump-dom", url],
        capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def _cards(dom: str) -> list[str]:
    return [html_unescape(u) for u in re.findall(r'<article class="card" data-unit-id="([^"]*)"', dom)]


def html_unescape(text: str) -> str:
    import html

    return html.unescape(text)


def _write_csv(path: Path, rows: list[tuple[str, str, int, str]]) -> Path:
    from eval.results import descriptions_csv

    path.write_text(descriptions_csv({"unit_id": u, "layer": la, "unit": n, "description": d, "split": "",
                                      "trial": 0} for u, la, n, d in rows), encoding="utf-8")
    return path


def _embedded(page: str) -> dict:
    block = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(block)


# --------------------------------------------------------------------------- escaping

def test_script_json_has_no_markup_characters_and_round_trips():
    obj = {"d": EVIL, "e": "\u2028x\u2029", "f": "</SCRIPT >"}
    text = script_json(obj)
    assert not set(text) & set("<>&\u2028\u2029")
    assert json.loads(text) == obj


def test_every_user_string_is_escaped_in_the_page(tmp_path):
    rows = [("m/<i>L</i>/0", "<i>L</i>", 0, EVIL), ("m/<i>L</i>/1", "<i>L</i>", 1, "</script>"),
            ("m/plain/0", "plain", 0, "dog faces")]
    stats = build_report(tmp_path / "rep", descriptions=_write_csv(tmp_path / "d.csv", rows),
                         title="<img src=x onerror=alert(2)> net", subtitle="by <u>me</u>")
    page = stats.path.read_text(encoding="utf-8")
    # only the page's own two script elements open and close
    assert page.count("<script") == 2 and page.count("</script>") == 2
    for raw in ("<script>alert(1)", "<i>L</i>", "<img src=x", "<u>me</u>", "<b>bold</b>", "<!--"):
        assert raw not in page, raw
    assert "&lt;img src=x onerror=alert(2)&gt; net" in page  # title, escaped
    assert '<option value="&lt;i&gt;L&lt;/i&gt;">&lt;i&gt;L&lt;/i&gt;</option>' in page
    data = _embedded(page)  # the records come back exactly as written
    assert [r[3] for r in data["units"]] == [EVIL, "</script>", "dog faces"]
    assert data["layers"] == ["<i>L</i>", "plain"]


@needs_chromium
def test_escaped_descriptions_stay_text_in_the_browser(tmp_path):
    rows = [("m/l/0", "l", 0, EVIL), ("m/l/1", "l", 1, "</script>")]
    stats = build_report(tmp_path / "rep", descriptions=_write_csv(tmp_path / "d.csv", rows))
    dom = _dump_dom(stats.path.resolve().as_uri(), tmp_path / "profile")
    assert '<body data-ready="1">' in dom
    assert dom.count("<script") == 2  # no element was made from a description
    assert "<b>bold</b>" not in dom
    assert '<p class="desc">&lt;script&gt;alert(1)&lt;/script&gt; and &lt;/script&gt;&lt;!-- &lt;b&gt;bold&lt;/b&gt; ' \
           '&amp; more</p>' in dom
    assert _cards(dom) == ["m/l/0", "m/l/1"]
    assert re.search(r'<button type="button" id="more" hidden="[^"]*">', dom)  # nothing more to show


# --------------------------------------------------------------------------- the page

@needs_chromium
def test_cards_are_drawn_a_page_at_a_time_and_filters_come_from_the_url(tmp_path):
    words = ["dog faces", "blue sky", "text"]
    rows = [(f"m/layer{la}/{u}", f"layer{la}", u, f"{words[u % 3]} {u}") for la in (1, 2) for u in range(150)]
    stats = build_report(tmp_path / "rep", descriptions=_write_csv(tmp_path / "d.csv", rows))
    url = stats.path.resolve().as_uri()
    dom = _dump_dom(url, tmp_path / "p1")
    assert re.search(r'<main id="report" data-matches="300" data-shown="120"', dom)
    assert _cards(dom) == [r[0] for r in rows[:120]]  # model order: layer1 0..119
    assert len(_cards(_dump_dom(url + "#n=all", tmp_path / "p2"))) == 300
    # free text (all terms), layer filter and sort, from the hash or the query string
    dog = _cards(_dump_dom(url + "#q=DOG&layer=layer2&n=all", tmp_path / "p3"))
    assert dog == [f"m/layer2/{u}" for u in range(0, 150, 3)]
    assert _cards(_dump_dom(url + "?q=dog+faces+12", tmp_path / "p4")) == \
        ["m/layer1/12", "m/layer1/120", "m/layer1/123", "m/layer1/126", "m/layer1/129",
         "m/layer2/12", "m/layer2/120", "m/layer2/123", "m/layer2/126", "m/layer2/129"]
    za = _cards(_dump_dom(url + "#q=sky&layer=layer1&sort=desc-za&n=3", tmp_path / "p5"))
    # text order ("blue sky 97" > "... 94" > "... 91"); n=3 draws 3 cards first, then more while in view
    assert za[:3] == ["m/layer1/97", "m/layer1/94", "m/layer1/91"] and len(za) == 50
    # a term matches where a word starts: "tex" finds the "text" units (by the p4 check above: "12"
    # finds "120"), "ext" finds none
    none = _dump_dom(url + "#q=ext", tmp_path / "p6")
    assert _cards(none) == [] and "No unit matches." in none and 'data-matches="0"' in none


def test_contact_sheet_dims_outside_the_mask():
    import io

    import numpy as np
    from PIL import Image

    from milannotations.writer import encode_png

    white = np.full((3, 32, 32), 255, dtype=np.uint8)
    mask = np.zeros((32, 32), dtype=np.uint8)
    mask[:, :16] = 255
    data, size = contact_sheet([encode_png(white)] * 7, [encode_png(mask)] * 7, tile=16, columns=5)
    assert size == (80, 32)  # 5 columns, 2 rows
    sheet = np.asarray(Image.open(io.BytesIO(data)).convert("L"), dtype=np.float32)
    assert sheet.shape == (32, 80)
    tile = sheet[:16, :16]
    assert tile[:, :6].mean() > 240 and abs(tile[:, 11:].mean() - 0.3 * 255) < 12
    assert sheet[16:, 40:].mean() < 40  # empty cells of the last row stay dark


def test_report_replaces_an_earlier_one_whole(tmp_path):
    out = tmp_path / "rep"
    build_report(out, descriptions=_write_csv(tmp_path / "a.csv", [("m/l/0", "l", 0, "first")]))
    (out / "stale.txt").write_text("old")
    build_report(out, descriptions=_write_csv(tmp_path / "b.csv", [("m/l/1", "l", 1, "second")]))
    assert not (out / "stale.txt").exists()
    assert [r[0] for r in _embedded((out / "index.html").read_text())["units"]] == ["m/l/1"]
    assert "Thumbnails:" not in (out / "index.html").read_text()  # no exemplars, so no thumbnails to explain
    with open(out / "descriptions.csv", newline="") as f:
        assert [r["description"] for r in csv.DictReader(f)] == ["second"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left


# --------------------------------------------------------------------------- the CLI

@pytest.mark.parametrize("argv,needle", [
    (["--descriptions", "{tmp}/missing.csv"], "does not exist"),
    (["--exemplars", "{tmp}/nowhere"], "no such folder"),
    ([], "nothing to report"),
    (["--descriptions", "{tmp}/ok.csv", "--output", "{tmp}/file.txt"], "is a file"),
    (["--model", "torchvision:resnet18", "--layers", "layer4"], "--model needs --images"),
    (["--descriptions", "{tmp}/ok.csv", "--describer", "constant"], "not both"),
    (["--descriptions", "{tmp}/ok.csv", "--limit", "0"], "--limit must be at least 1"),
])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys, argv, needle):
    from applications.report_cli import main

    _write_csv(tmp_path / "ok.csv", [("m/l/0", "l", 0, "x")])
    (tmp_path / "file.txt").write_text("")
    argv = [a.format(tmp=tmp_path) for a in argv]
    if "--output" not in argv:
        argv += ["--output", str(tmp_path / "rep")]
    before = sorted(p.name for p in tmp_path.iterdir())
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert needle in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_parser_has_the_common_flag_names():
    from applications.report_cli import build_parser
    from tests.test_cli_flags import test_common_flags_have_the_common_names

    test_common_flags_have_the_common_names("milan-report", build_parser())


DESCRIBER = '''
from milannotations.contract import DescriberMeta

WORDS = ["dog faces", "blue sky", "text and letters"]


class Words:
    """Describes unit u by WORDS[u % 3], so the test knows every description in advance."""

    meta = DescriberMeta(name="words", version="1", trained_on=(), citation="", reference="test")

    def describe(self, units):
        assert all(u.images.shape[0] == 5 for u in units)  # it sees the exemplars the report computed
        return [f"{WORDS[u.unit % 3]} ({u.layer})" for u in units]


describer = Words()
'''


def test_one_command_from_a_random_resnet18_to_a_report(tmp_path, capsys):
    """The done-when of issue 16 item 1: model -> exemplars -> descriptions -> report, opened in Chromium."""
    import numpy as np
    from PIL import Image

    from applications.report_cli import main

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(20):
        Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(images / f"{i:02d}.png")
    (tmp_path / "words.py").write_text(DESCRIBER)
    out = tmp_path / "report"
    assert main(["--model", "torchvision:resnet18", "--images", str(images), "--layers", "layer1", "--k", "5",
                 "--resize", "64", "--crop", "64", "--limit", "24", "--describer", f"{tmp_path / 'words.py'}:describer",
                 "--output", str(out), "--no-progress"]) == 0
    assert "wrote a report of 24 units (24 with thumbnails" in capsys.readouterr().out
    with open(out / "descriptions.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 24 and all(r["layer"] == "layer1" and r["unit_id"].startswith("resnet18/layer1/")
                                   for r in rows)
    words = ["dog faces", "blue sky", "text and letters"]
    assert all(r["description"] == f"{words[int(r['unit']) % 3]} (layer1)" for r in rows)
    assert len(list((out / "thumbs").glob("*.jpg"))) == 24
    assert "Thumbnails: each unit's top images" in (out / "index.html").read_text()
    work = tmp_path / "report.work"
    assert (work / "descriptions.csv").is_file() and (work / "exemplars" / "data" / "resnet18").is_dir()

    # the report step alone, from what the pipeline kept
    again = tmp_path / "again"
    assert main(["--exemplars", str(work / "exemplars"), "--descriptions", str(work / "descriptions.csv"),
                 "--output", str(again), "--no-progress", "--tile", "32"]) == 0
    assert _embedded((again / "index.html").read_text())["units"] == \
        [[r[0], r[1], r[2], r[3], r[4], r[5] // 2, r[6] // 2, r[7]]
         for r in _embedded((out / "index.html").read_text())["units"]]

    if CHROMIUM is None:
        pytest.skip("chromium not on PATH: the page itself is not opened")
    url = (out / "index.html").resolve().as_uri()
    dom = _dump_dom(url, tmp_path / "p1")
    assert '<body data-ready="1">' in dom
    ids = sorted(r["unit_id"] for r in rows)
    assert sorted(_cards(dom)) == ids  # every unit is a card
    assert 'data-loaded="1"' in dom  # thumbnails load from the folder (lazily: at least those in view)
    dogs = sorted(r["unit_id"] for r in rows if r["description"].startswith("dog"))
    assert dogs and sorted(_cards(_dump_dom(url + "#q=dog", tmp_path / "p2"))) == dogs
