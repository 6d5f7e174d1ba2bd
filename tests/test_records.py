"""The results record (eval/records.py): every stored results.json reads and round-trips, the harness writes
the same bytes the hand-made dicts gave, and a bad field is one line naming the file and the field path."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval import ResultsRecord, evaluate, read_results
from eval.records import RecordError, Scores, results_errors
from eval.results import validate_results, write_run
from milannotations import MilanError

ROOT = Path(__file__).resolve().parents[1]
SUBMISSIONS = ROOT / "leaderboard" / "submissions"
#: Stored as the harness wrote them (never rescored): byte-identical when re-serialised. random-unit has
#: 5 trials (trial values), netdissect with the oracle segmenter the `oracle` flag.
AS_WRITTEN = ("constant/synth-within-network", "random-unit/synth-within-network",
              "netdissect+segmenter-oracle/synth-across-family")


def _doc(name: str = AS_WRITTEN[0]) -> dict:
    return json.loads((SUBMISSIONS / name / "results.json").read_text(encoding="utf-8"))


def test_every_stored_results_file_reads_and_round_trips():
    files = sorted(SUBMISSIONS.glob("*/*/results.json"))
    assert len(files) >= 37
    for f in files:
        doc = json.loads(f.read_text(encoding="utf-8"))
        record = ResultsRecord.from_dict(doc, str(f))
        assert record.to_dict() == doc, f  # nothing lost, nothing added
        assert ResultsRecord.from_dict(record.to_dict()) == record, f


@pytest.mark.parametrize("name", AS_WRITTEN)
def test_a_file_as_the_harness_wrote_it_is_re_serialised_byte_for_byte(name):
    text = (SUBMISSIONS / name / "results.json").read_text(encoding="utf-8")
    record = ResultsRecord.from_dict(json.loads(text))
    assert record.to_json() == text
    assert record.oracle is (name.startswith("netdissect+segmenter-oracle"))


def test_records_are_typed_and_frozen():
    record = ResultsRecord.from_dict(_doc("random-unit/synth-within-network"))
    split = record.splits[0]
    assert isinstance(split.metrics, Scores) and split.metrics.value("bleu") == split.metrics["bleu"].value
    assert len(split.metrics["bertscore_f1"].trial_values) == record.trials == 5
    assert split.floor["bleu"].describer in ("constant", "random-unit")
    assert [name for name, _ in split.floors.items()] == ["constant", "random-unit"]
    assert split.parse is not None and split.parse.descriptions == 5 * split.n_units
    with pytest.raises(AttributeError):
        record.seed = 1  # type: ignore[misc]


def test_old_files_without_newer_fields_stay_readable_and_unchanged():
    doc = _doc(AS_WRITTEN[2])
    for key in ("batch_size",):
        del doc[key]
    assert "oracle" not in doc["describer"]  # the stored files are older than the field
    del doc["describer"]["reference"]
    for split in doc["splits"]:
        for key in ("revision", "train_split", "test_split", "humans", "parse"):
            del split[key]
    del doc["timing"]["load_s"]
    record = ResultsRecord.from_dict(doc)
    assert record.batch_size is None and record.describer.oracle is None and record.splits[0].humans is None
    assert record.to_dict() == doc and list(record.to_dict()) == list(doc)
    # no oracle field: the run's arguments decide
    assert record.oracle is True and record.describer.args["segmenter"] == "oracle"
    doc["describer"]["args"]["segmenter"] = "synth"
    assert ResultsRecord.from_dict(doc).oracle is False


def _error(doc, source="x/results.json") -> str:
    with pytest.raises(RecordError) as e:
        ResultsRecord.from_dict(doc, source)
    message = str(e.value)
    assert "\n" not in message and message.startswith(f"{source} is not a valid results file: ")
    assert isinstance(e.value, MilanError)
    return message


def test_a_bad_field_is_named_by_its_path():
    doc = _doc()
    doc["seed"] = "1"
    assert "results.seed: expected integer, got str '1'" in _error(doc)
    doc = _doc()
    del doc["splits"][1]["floor"]
    assert "results.splits[1]: missing 'floor'" in _error(doc)
    doc = _doc()
    doc["splits"][0]["metrics"]["meteor"] = doc["splits"][0]["metrics"]["bleu"]
    msg = _error(doc)
    assert "results.splits[0].metrics: unknown metric 'meteor'; known: bertscore_f1" in msg
    doc = _doc()
    doc["splits"][2]["ceiling"]["bleu"]["ci95"] = [0.1]
    assert "results.splits[2].ceiling.bleu.ci95: has 1 items" in _error(doc)
    doc = _doc()
    doc["splits"][0]["metrics"]["bleu"]["value"] = None  # null only where normalization has no ceiling
    assert "results.splits[0].metrics.bleu.value: expected number, got NoneType None" in _error(doc)
    doc["splits"][0]["metrics"]["bleu"]["value"] = float("nan")
    assert "results.splits[0].metrics.bleu.value: expected number" in _error(doc)
    doc = _doc()
    doc["describer"]["nickname"] = "x"
    assert "results.describer: unknown field 'nickname'" in _error(doc)
    doc = _doc()
    doc["revision"] = "ABC"
    assert "results.revision: expected 64 lowercase hex digits" in _error(doc)
    doc = _doc()
    doc["splits"][0]["normalized"]["bleu"] = {"value": None, "ci95": [None, None], "signature": "s|normalized"}
    ResultsRecord.from_dict(doc)  # a normalized score may be null


def test_every_problem_is_listed_and_the_checks_across_fields_run():
    doc = _doc()
    doc["trials"], doc["limit"], doc["date"] = 0, "5", 3
    errors = results_errors(doc)
    assert errors == ["results.trials: 0 is below 1", "results.limit: expected integer or null, got str '5'",
                      "results.date: expected string, got int 3"]
    with pytest.raises(MilanError, match=r"is not a valid results file: .*results.trials: 0 is below 1"):
        validate_results(doc, "here.json")
    doc = _doc()
    del doc["splits"][0]["ceiling"]["bleu"]
    doc["splits"][1]["name"] = doc["splits"][0]["name"]
    errors = results_errors(doc)
    name = doc["splits"][0]["name"]
    assert f"results.splits[0] ({name}).ceiling: metrics" in errors[0] and "differ from" in errors[0]
    assert errors[-1] == "results.splits: split names repeat"
    bad = {"benchmark": "nope"}
    assert "(and " in _error(bad)  # more than three problems: the count of the rest


def test_the_folder_benchmark_writes_its_labeller_before_the_splits():
    doc = _doc()
    labeller = {"name": "oracle", "args": {}, "model": "m", "exact": True, "same_model": []}
    with_labeller = {**doc, "labeller": labeller}
    keys = list(ResultsRecord.from_dict(with_labeller).to_dict())
    assert keys.index("splits") < keys.index("labeller")
    order = ("revision", "protocol", "scorer", "seed", "trials", "limit", "batch_size", "describer", "labeller",
             "splits", "environment", "timing", "date")
    folder = {"benchmark": "folder", "benchmark_path": "/data/ex", **{k: with_labeller[k] for k in order}}
    record = ResultsRecord.from_dict(folder)
    assert list(record.to_dict()) == list(folder)
    assert "benchmark_path goes with benchmark 'folder'" in _error({**doc, "benchmark_path": "/x"})


def test_a_small_run_writes_the_hand_made_layout_and_reads_back(corpus, tmp_path):
    """A run's results.json is its record's JSON, laid out key for key as the stored (hand-made) files."""
    out = tmp_path / "run"
    res = evaluate("constant", root=corpus, configs=["synth-shallow-plain"], output=out, progress=False)
    text = (out / "results.json").read_text(encoding="utf-8")
    record = read_results(out)
    assert record.to_dict() == res == json.loads(text) and record.to_json() == text
    stored = _doc(AS_WRITTEN[2])
    assert list(res) == list(stored)
    assert list(res["describer"]) == [*stored["describer"], "oracle"]  # the field is newer than the stored files
    split, stored_split = res["splits"][0], stored["splits"][0]
    assert [k for k in stored_split if k in split] == list(split)  # no truth on the tiny corpus: no humans/parse
    assert list(split["floor"]["bleu"]) == list(stored_split["floor"]["bleu"])


def test_write_run_refuses_a_record_that_would_not_read_back(tmp_path):
    from dataclasses import replace

    record = ResultsRecord.from_dict(_doc())
    bad = replace(record, splits=(replace(record.splits[0], ceiling=Scores(tuple(
        (k, v) for k, v in record.splits[0].ceiling.items() if k != "bleu"))), *record.splits[1:]))
    with pytest.raises(MilanError, match=r"ceiling: metrics .* differ from"):
        write_run(tmp_path / "out", bad, [])
    assert not (tmp_path / "out").exists()


def test_validation_reports_each_bad_field_of_a_submission(tmp_path):
    """The leaderboard reads submissions with the same record: each problem is one error naming the field."""
    import shutil

    from leaderboard.render import load_all
    from leaderboard.validate import validate_submission

    sub = tmp_path / "subs" / AS_WRITTEN[0]
    shutil.copytree(SUBMISSIONS / AS_WRITTEN[0], sub)
    doc = _doc()
    doc["seed"], doc["splits"][0]["held_out"] = "0", "yes"
    (sub / "results.json").write_text(json.dumps(doc))
    rep = validate_submission(sub, recompute=False)
    assert [str(p) for p in rep.errors] == [
        "error: constant/synth-within-network: results.json: results.seed: expected integer, got str '0'",
        "error: constant/synth-within-network: results.json: results.splits[0].held_out: expected boolean, "
        "got str 'yes'"]
    subs, problems = load_all(tmp_path / "subs")  # the page skips it, naming the file and the fields
    assert subs == [] and len(problems) == 1 and f"{sub / 'results.json'} is not a valid results file" in problems[0]
