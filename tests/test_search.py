"""milan-search and applications.search: ranking by description, whole-word selection, bad input."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from applications.search import read_units_file, search, select_by_words

ROWS = [
    ("net/layer4/0", "layer4", 0, "blue sky"),
    ("net/layer4/1", "layer4", 1, "dog faces"),
    ("net/layer4/2", "layer4", 2, "text and letters"),
    ("net/layer3/5", "layer3", 5, "blue sky"),
    ("net/layer3/6", "layer3", 6, "Hotdogs and DOG. ears"),
]


def _csv(path: Path, rows=ROWS) -> Path:
    from eval.results import descriptions_csv

    path.write_text(descriptions_csv({"unit_id": u, "layer": la, "unit": n, "description": d, "split": "",
                                      "trial": 0} for u, la, n, d in rows), encoding="utf-8")
    return path


def test_dog_ranks_dog_faces_above_blue_sky(tmp_path):
    hits = search(_csv(tmp_path / "d.csv"), "dog")
    ids = [h.unit_id for h in hits]
    assert sorted(ids) == sorted(r[0] for r in ROWS)  # every unit, once
    assert ids.index("net/layer4/1") < ids.index("net/layer4/0")
    assert ids[0] in ("net/layer4/1", "net/layer3/6")  # the two descriptions that name dogs come first
    assert all(-1.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # a tuple (unit_id, score, description), as documented
    unit_id, score, description = hits[0]
    assert description == dict((r[0], r[3]) for r in ROWS)[unit_id]


def test_ties_are_ordered_by_unit_id_whatever_the_input_order(tmp_path):
    forward = search(_csv(tmp_path / "a.csv"), "sky", k=2)
    backward = search(_csv(tmp_path / "b.csv", ROWS[::-1]), "sky", k=2)
    # the two identical "blue sky" descriptions tie exactly and lead; unit id breaks the tie
    assert [h.unit_id for h in forward] == ["net/layer3/5", "net/layer4/0"] == [h.unit_id for h in backward]
    assert forward[0].score == forward[1].score
    # rows and mappings are accepted as well as paths, with the same result
    mapping = {u: d for u, _, _, d in ROWS}
    assert search(mapping, "sky", k=2) == forward


def test_select_by_words_is_whole_word_and_case_insensitive():
    rows = [{"unit_id": u, "description": d} for u, _, _, d in ROWS]
    assert select_by_words(rows, ["dog"]) == ["net/layer4/1", "net/layer3/6"]  # "DOG." matches, "Hotdogs" not
    assert select_by_words(rows, "dog faces") == ["net/layer4/1"]  # a phrase
    assert select_by_words(rows, ["faces", "sky"]) == ["net/layer4/0", "net/layer4/1", "net/layer3/5"]  # input order
    assert select_by_words(rows, ["dog", "ears"], require_all=True) == ["net/layer3/6"]
    assert select_by_words(rows, ["hotdog"]) == []  # not a part of "Hotdogs"
    assert select_by_words(rows, "Blue,letters") == ["net/layer4/0", "net/layer4/2", "net/layer3/5"]


def test_select_by_words_matches_dog_in_dog_faces():
    assert select_by_words({"a": "dog faces", "b": "dogs", "c": "a dog-like shape"}, ["dog"]) == ["a", "c"]


def test_cli_prints_ranked_ids_and_writes_units_file(tmp_path, capsys):
    from applications.search_cli import main

    csv_path = _csv(tmp_path / "d.csv")
    assert main(["--descriptions", str(csv_path), "dog", "--limit", "2", "--ids-only", "--no-progress"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [h.unit_id for h in search(csv_path, "dog", k=2)]
    out = tmp_path / "units.txt"
    assert main(["--descriptions", str(csv_path), "--words", "sky", "--output", str(out)]) == 0
    assert read_units_file(out) == ["net/layer4/0", "net/layer3/5"]
    report = tmp_path / "report"  # a milan-report folder stands for its descriptions.csv
    report.mkdir()
    _csv(report / "descriptions.csv")
    assert main(["--descriptions", str(report), "--words", "letters", "--ids-only"]) == 0
    assert capsys.readouterr().out.split() == ["net/layer4/2"]
    js = tmp_path / "r.json"
    assert main(["--descriptions", str(csv_path), "letters", "--limit", "1", "--output", str(js)]) == 0
    data = json.loads(js.read_text())
    assert [d["unit_id"] for d in data] == ["net/layer4/2"] and data[0]["rank"] == 1


@pytest.mark.parametrize("make,needle", [
    (lambda p: p / "missing.csv", "does not exist"),
    (lambda p: (p / "empty.csv").write_text("unit_id,layer,unit,description\n") and p / "empty.csv",
     "no described units"),
    (lambda p: (p / "bad.csv").write_text("id,text\n1,x\n") and p / "bad.csv", "header must start with"),
])
def test_bad_descriptions_are_one_line_exit_2(tmp_path, capsys, make, needle):
    from applications.search_cli import main

    path = make(tmp_path)
    assert main(["--descriptions", str(path), "dog"]) == 2
    err = capsys.readouterr().err
    assert needle in err and str(path) in err and err.count("\n") == 1


def test_cli_refuses_query_and_words_together(tmp_path, capsys):
    from applications.search_cli import main

    csv_path = _csv(tmp_path / "d.csv")
    assert main(["--descriptions", str(csv_path), "dog", "--words", "dog"]) == 2
    assert main(["--descriptions", str(csv_path)]) == 2
    assert main(["--descriptions", str(csv_path), "dog", "--output", str(tmp_path)]) == 2  # a folder
    assert capsys.readouterr().err.count("\n") == 3


def test_parser_has_the_common_flag_names():
    from applications.search_cli import build_parser
    from tests.test_cli_flags import test_common_flags_have_the_common_names

    test_common_flags_have_the_common_names("milan-search", build_parser())
