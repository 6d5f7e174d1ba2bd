"""milan-eval and milan-describe as a user runs them: a describer in a file of their own, by path."""
from __future__ import annotations

import json
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest
import sacrebleu

from baselines import registry
from baselines.floors import ConstantDescriber
from baselines.registry import create_describer, parse_describer_args, resolve_describer
from eval.cli import describe_main, main
from eval.results import read_descriptions, results_errors
from milannotations import MilanError, load

CONFIG = "synth-shallow-plain"

USER_DESCRIBER = '''
"""A describer that lives outside the project: plain Python, no registration needed."""
from milannotations import DescriberMeta


class Echo:
    def __init__(self, word="thing", repeat=1, loud=False, device="nowhere"):
        self.word, self.repeat, self.loud, self.device = word, repeat, loud, device
        self.meta = DescriberMeta(name="echo", version="0.1", citation="nobody 2026")

    def fit(self, train):
        self.n_train = len(train)

    def describe(self, units):
        out = []
        for u in units:
            text = " ".join([f"bright {self.word} on the {u.layer}"] * self.repeat)
            out.append(text.upper() if self.loud else text)
        return out


class Broken(Echo):
    def describe(self, units):
        out = super().describe(units)
        out[-1] = None
        return out
'''


@pytest.fixture
def user_file(tmp_path) -> Path:
    path = tmp_path / "elsewhere" / "my_describer.py"
    path.parent.mkdir()
    path.write_text(USER_DESCRIBER)
    return path


def test_user_describer_file_by_path_results_and_bleu_recomputed(corpus, user_file, tmp_path, capsys):
    out = tmp_path / "out"
    rc = main(["--describer", f"{user_file}:Echo", "--describer-args", "word=red circles,repeat=1,loud=false",
               "--root", str(corpus), "--configs", CONFIG, "--output", str(out), "--no-progress", "--submit",
               "--submissions", str(tmp_path / "submissions")])
    printed = capsys.readouterr().out
    assert rc == 0
    assert "echo" in printed and "floor: constant" in printed and "ceiling" in printed
    assert "bleu (0-100)" in printed and "rouge_l (" not in printed  # BLEU's scale beside the 0-1 metrics
    res = json.loads((out / "results.json").read_text())
    assert results_errors(res) == []
    assert res["describer"] == {"name": "echo", "version": "0.1", "trained_on": [],
                                "args": {"word": "red circles", "repeat": 1, "loud": False, "device": "cpu"},
                                "citation": "nobody 2026", "reference": "", "reproducible": True, "oracle": False}
    lines = (out / "descriptions.csv").read_text().splitlines()
    assert lines[0] == "unit_id,layer,unit,description,split,trial"
    rows = read_descriptions(out / "descriptions.csv")
    assert len(rows) == res["splits"][0]["n_units"] == 8
    assert all(r["description"] == f"bright red circles on the {r['layer']}" for r in rows)

    # BLEU from descriptions.csv and the corpus references with sacrebleu alone (the paper's recipe)
    test = load(CONFIG, split="test", root=corpus)
    refs_of = dict(zip(test["unit_id"], test["annotations"]))
    norm = lambda t: t.lower().strip(". ")  # noqa: E731
    preds = [norm(r["description"]) for r in rows]
    refs = [[norm(a) for a in refs_of[r["unit_id"]]] for r in rows]
    bleu = sacrebleu.corpus_bleu(preds, [list(s) for s in zip(*refs)])
    assert bleu.score > 0
    assert res["splits"][0]["metrics"]["bleu"]["value"] == pytest.approx(bleu.score, abs=1e-9)

    # --submit copied the run, byte for byte, into --submissions; its arguments make a variant
    dest = tmp_path / "submissions" / "echo+loud-False+repeat-1+word-red_circles" / "synth-within-network"
    assert sorted(p.name for p in dest.iterdir()) == ["descriptions.csv", "meta.json", "results.json"]
    assert (dest / "results.json").read_bytes() == (out / "results.json").read_bytes()
    assert (dest / "descriptions.csv").read_bytes() == (out / "descriptions.csv").read_bytes()


def test_bad_describer_on_the_command_line_is_one_line_and_writes_nothing(corpus, user_file, tmp_path,
                                                                          capsys):
    out = tmp_path / "out"
    rc = main(["--describer", f"{user_file}:Broken", "--root", str(corpus), "--configs", CONFIG,
               "--output", str(out), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert "'echo'" in err and "returned None for unit synth-shallow-plain/" in err
    assert not out.exists()
    rc = main(["--describer", "no-such-describer", "--root", str(corpus), "--no-progress"])
    assert rc == 2 and "unknown describer 'no-such-describer'" in capsys.readouterr().err


def test_registry_resolution_order(tmp_path, monkeypatch, user_file):
    pkg = tmp_path / "site"
    pkg.mkdir()
    (pkg / "their_describers.py").write_text(USER_DESCRIBER)
    monkeypatch.syspath_prepend(str(pkg))
    eps = [EntryPoint(name="from-ep", value="their_describers:Echo", group=registry.ENTRY_POINT_GROUP),
           EntryPoint(name="constant", value="their_describers:Echo", group=registry.ENTRY_POINT_GROUP)]
    monkeypatch.setattr(registry, "entry_points", lambda group=None: [e for e in eps if e.group == group])

    assert resolve_describer("constant") is ConstantDescriber  # built-in wins over an entry point
    assert resolve_describer("from-ep").__name__ == "Echo"
    assert resolve_describer("their_describers:Echo").__module__ == "their_describers"
    from_file = resolve_describer(f"{user_file}:Echo")
    assert from_file.__name__ == "Echo" and from_file.__module__.startswith("_milan_user_describer_")
    assert "from-ep" in registry.available_describers()

    d = create_describer("from-ep", word="dog", repeat=2)
    assert (d.word, d.repeat) == ("dog", 2)
    with pytest.raises(MilanError, match="does not accept arguments"):
        create_describer("constant", nonsense=1)
    with pytest.raises(MilanError, match="has no attribute 'Nope'"):
        resolve_describer(f"{user_file}:Nope")
    with pytest.raises(MilanError, match="does not exist"):
        resolve_describer(f"{tmp_path}/missing.py:Echo")


def test_describer_args_are_coerced():
    assert parse_describer_args("a=1,b=2.5,c=true,d=False,e=none,f=some text, g = x=y") == {
        "a": 1, "b": 2.5, "c": True, "d": False, "e": None, "f": "some text", "g": "x=y"}
    assert parse_describer_args("") == {}
    with pytest.raises(MilanError, match="not key=value"):
        parse_describer_args("oops")


TOLD_DESCRIBER = '''
from milannotations import DescriberMeta


class Told:
    """Describes every unit by what it was given of the run."""

    def __init__(self, device="unset", seed=-1, progress=True):
        self.told = f"device {device} seed {seed} progress {progress}"
        self.meta = DescriberMeta(name="told")

    def describe(self, units):
        return [self.told] * len(units)
'''


def test_milan_describe_hands_device_seed_and_quiet_to_a_describer_that_takes_them(tmp_path, corpus):
    """milan-describe builds describers as milan-eval does (baselines.registry.build_describer): --device,
    --seed and --no-progress reach a constructor that names them; explicit --describer-args win."""
    path = tmp_path / "told.py"
    path.write_text(TOLD_DESCRIBER)
    base = ["--describer", f"{path}:Told", "--units", CONFIG, "--root", str(corpus), "--limit", "3"]
    out = tmp_path / "told.csv"
    assert describe_main([*base, "--device", "cpu", "--seed", "7", "--no-progress", "--output", str(out)]) == 0
    assert [r["description"] for r in read_descriptions(out)] == ["device cpu seed 7 progress False"] * 3
    out2 = tmp_path / "told2.csv"
    assert describe_main([*base, "--seed", "7", "--describer-args", "seed=3,progress=true,device=meta",
                          "--no-progress", "--output", str(out2)]) == 0
    assert {r["description"] for r in read_descriptions(out2)} == {"device meta seed 3 progress True"}
    out3 = tmp_path / "told3.csv"  # the defaults: cpu, seed 0, the describer's own progress setting
    assert describe_main([*base, "--output", str(out3)]) == 0
    assert {r["description"] for r in read_descriptions(out3)} == {"device cpu seed 0 progress True"}


def test_milan_describe_writes_descriptions_for_unannotated_units(tmp_path, corpus, capsys):
    import numpy as np

    from milannotations.writer import ConfigMeta, UnitRow, write_config

    # what `milannotations exemplars` writes for a user's own network: no annotations, a name of its own
    folder = tmp_path / "my-exemplars"
    rows = [UnitRow(layer="features.3", unit=u, images=np.zeros((2, 3, 8, 8), np.uint8),
                    masks=np.ones((2, 1, 8, 8), bool), image_ids=[0, 1]) for u in range(5)]
    write_config(folder, ConfigMeta("mynet-mydata", "mynet", "mydata"), rows,
                 {f"mynet-mydata/features.3/{u}": "train" for u in range(5)})
    out = tmp_path / "d" / "descriptions.csv"
    rc = describe_main(["--describer", "constant", "--describer-args", "text=a dog", "--units", str(folder),
                        "--output", str(out), "--no-progress"])
    assert rc == 0
    got = read_descriptions(out)
    assert [(r["unit_id"], r["layer"], r["unit"], r["description"]) for r in got] == [
        (f"mynet-mydata/features.3/{u}", "features.3", u, "a dog") for u in range(5)]
    assert out.read_text().splitlines()[0] == "unit_id,layer,unit,description,split,trial"

    # a describer that has to learn first is refused before describing anything
    rc = describe_main(["--describer", "constant", "--units", str(folder), "--output", str(tmp_path / "x.csv")])
    assert rc == 2 and "must be trained" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists()

    # a config name under --root works too, and the units' annotations are never needed
    out2 = tmp_path / "named.csv"
    rc = describe_main(["--describer", "constant", "--describer-args", "text=x", "--units", CONFIG,
                        "--root", str(corpus), "--output", str(out2), "--no-progress"])
    assert rc == 0 and len(read_descriptions(out2)) == 24
