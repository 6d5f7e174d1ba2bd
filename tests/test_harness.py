"""The harness: floors, protocols, what describers see, refused outputs, trials, limits, results format."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from baselines.floors import ConstantDescriber, RandomUnitDescriber
from eval import evaluate, protocol_splits, read_descriptions, read_results, results_errors
from eval import limit_indices
from milannotations import AnnotatedExemplars, DescriberMeta, Exemplars, MilanError, UnitSet, load
from tests.eval_corpus import CONCEPTS, concept_of

CONFIG = "synth-shallow-plain"


class PixelReader:
    """Reads the colour of each unit's first exemplar: a describer that beats the floors honestly."""

    meta = DescriberMeta(name="pixel-reader", version="1")

    def fit(self, train) -> None:
        pass

    def describe(self, units):
        return [f"bright {concept_of(u.images[0])} on the left" for u in units]


@pytest.fixture(scope="module")
def constant_run(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "constant"
    return evaluate("constant", root=corpus, configs=[CONFIG], output=out, progress=False), out


# --------------------------------------------------------------------------- floors

def _annotated(texts_per_unit):
    import torch

    return [AnnotatedExemplars(unit_id=f"c/l/{i}", model="m", dataset="d", layer="l", unit=i,
                               images=torch.zeros(0, 3, 2, 2, dtype=torch.uint8),
                               masks=torch.zeros(0, 1, 2, 2, dtype=torch.bool), annotations=tuple(t))
            for i, t in enumerate(texts_per_unit)]


def test_constant_picks_most_frequent_training_description_with_deterministic_ties():
    d = ConstantDescriber()
    d.fit(_annotated([["Dogs.", "cats"], ["dogs", "birds"], ["cats "]]))
    # "dogs" and "cats" both appear twice after normalisation; the alphabetical first wins
    assert d.describe([None] * 3) == ["cats"] * 3
    d.fit(_annotated([["zebra", "zebra"], ["apple"]]))
    assert d.describe([None]) == ["zebra"]
    fixed = ConstantDescriber(text="a thing")
    fixed.fit(_annotated([["other"]]))
    assert fixed.describe([None, None]) == ["a thing", "a thing"]
    with pytest.raises(MilanError, match="fit"):
        ConstantDescriber().describe([None])


def test_random_unit_draws_seeded_training_descriptions_only():
    train = _annotated([[f"unit {i} text {j}" for j in range(3)] for i in range(20)])
    pool = {t for u in train for t in u.annotations}
    a, b, c = RandomUnitDescriber(seed=1), RandomUnitDescriber(seed=1), RandomUnitDescriber(seed=2)
    for d in (a, b, c):
        d.fit(train)
    out_a, out_b, out_c = a.describe([None] * 50), b.describe([None] * 50), c.describe([None] * 50)
    assert out_a == out_b and out_a != out_c
    assert set(out_a) <= pool and len(set(out_a)) > 10
    a.fit(train)  # refitting restarts the same sequence
    assert a.describe([None] * 50) == out_b


def test_floors_read_text_columns_of_a_unitset(corpus):
    train = UnitSet(load(CONFIG, split="train", root=corpus), annotated=True)
    d = ConstantDescriber()
    d.fit(train)
    counts = {}
    for anns in train.annotations():
        for a in anns:
            counts[a] = counts.get(a, 0) + 1
    top = max(counts.values())
    assert d.text == min(a for a, c in counts.items() if c == top)


# --------------------------------------------------------------------------- protocols

def test_protocols_match_the_paper_and_configs_restrict():
    real = {s.name: s for s in protocol_splits("milannotations", "across-network")}
    assert real["alexnet->resnet152"].train == ("alexnet-imagenet", "alexnet-places365")
    assert real["alexnet->resnet152"].test == ("resnet152-imagenet", "resnet152-places365")
    assert real["alexnet->resnet152"].test_split is None
    arch = protocol_splits("milannotations", "across-arch")
    assert [(s.name, len(s.train), s.test) for s in arch] == [("base->dino_vits8-imagenet", 6,
                                                                ("dino_vits8-imagenet",))]
    within = protocol_splits("milannotations", "within-network")
    assert len(within) == 6 and all(s.train_split == "train" and s.test_split == "test" for s in within)
    loo = protocol_splits("milannotations", "leave-one-out", ["alexnet-imagenet"])
    assert [s.name for s in loo] == ["not-alexnet-imagenet->alexnet-imagenet"]
    assert len(protocol_splits("milannotations", "leave-one-out")) == 12
    fam = protocol_splits("synth", "across-family")
    assert [s.name for s in fam] == ["synth-shallow->synth-deep", "synth-deep->synth-shallow"]
    assert [s.name for s in protocol_splits("synth", "within-network", ["synth-deep"])] == [
        "synth-deep-plain", "synth-deep-cluttered"]
    with pytest.raises(MilanError, match="selects no split"):
        protocol_splits("synth", "within-network", ["alexnet-imagenet"])
    with pytest.raises(MilanError, match="across-arch"):
        protocol_splits("synth", "across-arch")


def test_cross_config_protocol_trains_on_all_units_of_train_configs(corpus):
    seen = {}

    class Recorder(PixelReader):
        meta = DescriberMeta(name="recorder")

        def fit(self, train):
            seen.setdefault("train", []).append(list(train.unit_ids))

        def describe(self, units):
            seen.setdefault("test", []).extend(u.unit_id for u in units)
            return super().describe(units)

    res = evaluate(Recorder(), root=corpus, protocol="across-family", configs=["synth-shallow->synth-deep"],
                   limit=5, progress=False)
    train_ids = seen["train"][0]
    assert len(train_ids) == 2 * 24 and {u.split("/")[0] for u in train_ids} == {
        "synth-shallow-plain", "synth-shallow-cluttered"}
    assert len(seen["test"]) == 5 and {u.split("/")[0] for u in seen["test"]} <= {
        "synth-deep-plain", "synth-deep-cluttered"}
    assert res["splits"][0]["n_units"] == 5 and res["splits"][0]["test_split"] == "all"


# --------------------------------------------------------------------------- results

def test_results_follow_the_format(constant_run):
    res, out = constant_run
    assert results_errors(res) == []
    assert read_results(out).to_dict() == json.loads((out / "results.json").read_text())
    assert res["benchmark"] == "synth" and res["protocol"] == "within-network" and res["scorer"] == "offline"
    assert len(res["revision"]) == 64
    split = res["splits"][0]
    assert split["name"] == CONFIG and split["train"] == [CONFIG] and split["test"] == [CONFIG]
    assert split["n_units"] == 8 and split["held_out"] is True
    for section in ("metrics", "ceiling", "normalized", "floor"):
        assert set(split[section]) == {"bertscore_f1", "bleu", "rouge_l", "cider", "retrieval_top1",
                                       "retrieval_mrr"}
    assert res["describer"]["name"] == "constant"
    assert set(res["environment"]) >= {"python", "torch", "transformers", "bert_score", "sacrebleu", "datasets",
                                       "git", "device"}
    assert set(res["timing"]) == {"load_s", "fit_s", "describe_s", "score_s", "total_s"}
    rows = read_descriptions(out / "descriptions.csv")
    assert (out / "descriptions.csv").read_text().splitlines()[0] == "unit_id,layer,unit,description,split,trial"
    assert len(rows) == 8 and {r["split"] for r in rows} == {CONFIG} and {r["trial"] for r in rows} == {0}
    assert all(r["unit_id"] == f"{CONFIG}/{r['layer']}/{r['unit']}" for r in rows)


def test_what_fit_decided_is_recorded_per_split_and_trial_with_the_environment(corpus, tmp_path):
    class Recorder(PixelReader):
        meta = DescriberMeta(name="recorder", version="1")

        def fit(self, train) -> None:
            self.fit_record = {"n_train": len(train), "chosen": ("a", 1)}

    res = evaluate(Recorder(), root=corpus, configs=[CONFIG], trials=2, output=tmp_path / "run", progress=False)
    assert results_errors(res) == []
    n_train = len(load(CONFIG, split="train", root=corpus))
    assert res["splits"][0]["fitted"] == [{"n_train": n_train, "chosen": ["a", 1]}] * 2  # JSON-safe
    assert list(read_results(tmp_path / "run").splits[0].fitted) == res["splits"][0]["fitted"]
    env = res["environment"]
    assert env["threads"] >= 1 and env["cpu_capability"] and "cpu" in env and "onednn" in env
    # describers that keep no record add nothing
    assert "fitted" not in evaluate("constant", root=corpus, configs=[CONFIG], progress=False)["splits"][0]


def test_no_progress_reaches_describers_without_being_recorded(corpus, tmp_path):
    """`--no-progress` silences a describer's own bars; it is not a describer argument in results."""
    plugin = tmp_path / "chatty.py"
    plugin.write_text(
        "from milannotations import DescriberMeta\n"
        "class Chatty:\n"
        "    meta = DescriberMeta(name='chatty', version='1')\n"
        "    def __init__(self, progress=True, device='cpu'):\n"
        "        self.progress = progress\n"
        "    def fit(self, train):\n"
        "        pass\n"
        "    def describe(self, units):\n"
        "        return [f'progress {self.progress}' for _ in units]\n")
    quiet = evaluate(f"{plugin}:Chatty", root=corpus, configs=[CONFIG], progress=False, output=tmp_path / "q")
    assert {r["description"] for r in read_descriptions(tmp_path / "q" / "descriptions.csv")} == {"progress False"}
    assert quiet["describer"]["args"] == {"device": "cpu"}
    evaluate(f"{plugin}:Chatty", root=corpus, configs=[CONFIG], progress=True, output=tmp_path / "l")
    assert {r["description"] for r in read_descriptions(tmp_path / "l" / "descriptions.csv")} == {"progress True"}


def test_constant_scores_chance_on_retrieval_and_ceiling_clears_floors(constant_run):
    res, _ = constant_run
    split = res["splits"][0]
    n = split["n_units"]
    assert split["metrics"]["retrieval_top1"]["value"] == pytest.approx(1 / n)
    assert split["metrics"]["retrieval_mrr"]["value"] == pytest.approx(sum(1 / r for r in range(1, n + 1)) / n)
    # the method is the constant floor itself
    for m, s in split["metrics"].items():
        assert s["value"] == pytest.approx(split["floors"]["constant"][m]["value"])
        best = max(split["floors"]["constant"][m]["value"], split["floors"]["random-unit"][m]["value"])
        assert split["floor"][m]["value"] == best
        assert split["ceiling"][m]["value"] > best, m
        assert split["normalized"][m]["value"] <= 1e-9
        lo, hi = s["ci95"]
        assert lo <= s["value"] <= hi


# --------------------------------------------------------------------------- what describers see

def test_describers_never_receive_annotations_or_truth(corpus, tmp_path):
    test_ds = load(CONFIG, split="test", root=corpus)
    secrets = {a for anns in test_ds["annotations"] for a in anns} | set(test_ds["truth"])
    got = {}

    class Spy(PixelReader):
        meta = DescriberMeta(name="spy")

        def fit(self, train):
            got["train"] = train

        def describe(self, units):
            got.setdefault("units", []).append(units)
            for u in units:
                assert type(u) is Exemplars, type(u)
                assert not hasattr(u, "annotations") and not hasattr(u, "truth")
                for value in vars(u).values():
                    assert not (isinstance(value, str) and value in secrets)
            return super().describe(units)

    res = evaluate(Spy(), root=corpus, configs=[CONFIG], output=tmp_path / "spy", progress=False, batch_size=3)
    # reading pixels (all a describer may read) is enough to beat both floors
    split = res["splits"][0]
    assert split["metrics"]["retrieval_top1"]["value"] == 1.0
    for m in ("bertscore_f1", "bleu", "rouge_l", "cider", "retrieval_mrr"):
        assert split["normalized"][m]["value"] > 0.5, m
        assert split["metrics"][m]["value"] > split["floor"][m]["value"], m
    batches = got["units"]
    assert [len(b) for b in batches] == [3, 3, 2]
    assert sorted(u.unit_id for b in batches for u in b) == sorted(test_ds["unit_id"])
    for b in batches:
        assert not hasattr(b, "annotations") and not hasattr(b, "dataset")
        assert not any(isinstance(v, str) and v in secrets for v in vars(b).values())
        with pytest.raises(AttributeError):
            b.annotations()
        for value in vars(b).values():  # the lazy view's backing data holds no hidden column either
            if hasattr(value, "dataset"):
                assert not {"annotations", "truth"} & set(value.dataset.column_names)
    # training units: descriptions yes (that is what fit is for), truth never
    train = got["train"]
    assert isinstance(train[0], AnnotatedExemplars) and len(train[0].annotations) == 3
    assert "truth" not in train.dataset.column_names
    assert not set(train.unit_ids) & set(test_ds["unit_id"])


# --------------------------------------------------------------------------- bad describers

class Bad:
    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.meta = DescriberMeta(name=f"bad-{mode}")

    def fit(self, train) -> None:
        pass

    def describe(self, units):
        out = ["fine"] * len(units)
        target = next((i for i, u in enumerate(units) if u.unit == 5), None)
        if target is None:
            return out
        if self.mode == "count":
            return out[:-1]
        if self.mode == "raise":
            raise RuntimeError("model exploded")
        out[target] = {"none": None, "nonstr": 42, "empty": "  ", "bytes": b"x"}[self.mode]
        return out


@pytest.mark.parametrize("mode,fragment", [
    ("count", "returned 7 descriptions for 8 units"),
    ("none", "returned None for unit synth-shallow-plain/layer1/5"),
    ("nonstr", "returned int 42 for unit synth-shallow-plain/layer1/5"),
    ("bytes", "returned bytes b'x' for unit synth-shallow-plain/layer1/5"),
    ("empty", "returned an empty description for unit synth-shallow-plain/layer1/5"),
    ("raise", "raised RuntimeError: model exploded while describing unit synth-shallow-plain/layer1/5"),
])
def test_bad_describers_are_refused_naming_describer_and_unit(corpus, tmp_path, mode, fragment):
    out = tmp_path / "run"
    with pytest.raises(MilanError) as err:
        evaluate(Bad(mode), root=corpus, configs=[CONFIG], output=out, progress=False)
    msg = str(err.value)
    assert f"bad-{mode}" in msg and fragment in msg and "synth-shallow-plain/" in msg
    assert not out.exists() and not list(tmp_path.iterdir())  # nothing written, no staging left


def test_a_missing_scorer_model_fails_before_the_describer_is_fit(corpus, tmp_path, monkeypatch):
    import eval.metrics

    def missing_model(**kwargs):
        raise MilanError("BERTScore model roberta-large is not in the Hugging Face cache")

    monkeypatch.setattr(eval.metrics, "Scorer", missing_model)
    fits: list[int] = []

    class Recorder(PixelReader):
        def fit(self, train) -> None:
            fits.append(len(train))

    out = tmp_path / "run"
    with pytest.raises(MilanError, match="roberta-large is not in the Hugging Face cache"):
        evaluate(Recorder(), root=corpus, configs=[CONFIG], output=out, progress=False)
    assert fits == []  # failed before phase 1, not after all the fitting
    assert not out.exists() and not list(tmp_path.iterdir())


# --------------------------------------------------------------------------- trials, limit, held-out

def test_trials_average_and_limit_is_seeded(corpus, tmp_path, constant_run):
    class Noisy:
        meta = DescriberMeta(name="noisy", trained_on=("synth-shallow",))

        def fit(self, train):
            import random

            self.rng = random.Random(random.random())  # follows the harness seed

        def describe(self, units):
            return [self.rng.choice(CONCEPTS) for _ in units]

    res = evaluate(Noisy(), root=corpus, configs=[CONFIG], limit=5, trials=2, seed=3, output=tmp_path / "r",
                   progress=False)
    split = res["splits"][0]
    assert split["n_units"] == 5 and split["held_out"] is False  # synth-shallow contains the test config
    rows = read_descriptions(tmp_path / "r" / "descriptions.csv")
    assert len(rows) == 10 and {r["trial"] for r in rows} == {0, 1}
    ids = [[r["unit_id"] for r in rows if r["trial"] == t] for t in (0, 1)]
    assert ids[0] == ids[1]
    texts = [[r["description"] for r in rows if r["trial"] == t] for t in (0, 1)]
    assert texts[0] != texts[1]  # each trial is seeded with seed + trial
    m = split["metrics"]["bleu"]
    assert len(m["trial_values"]) == 2 and m["value"] == pytest.approx(sum(m["trial_values"]) / 2)
    bert = split["metrics"]["bertscore_f1"]["trial_values"]  # (BLEU of one-word texts is 0 in both)
    assert len(bert) == 2 and bert[0] != bert[1]
    again = evaluate(Noisy(), root=corpus, configs=[CONFIG], limit=5, trials=2, seed=3, progress=False)
    assert again["splits"][0]["metrics"]["bleu"]["trial_values"] == m["trial_values"]
    assert again["revision"] == res["revision"]
    # the revision fingerprints the units used: other units (all 8 here) give another one
    assert constant_run[0]["revision"] != res["revision"]
    # --limit is a seeded, order-independent choice: the same for one seed, another for another seed
    test_ids = list(load(CONFIG, split="test", root=corpus)["unit_id"])
    assert sorted(test_ids[i] for i in limit_indices(test_ids, 5, 3)) == sorted(ids[0])
    assert limit_indices(test_ids[::-1], 5, 3) == sorted(len(test_ids) - 1 - i
                                                         for i in limit_indices(test_ids, 5, 3))
    picks = {tuple(limit_indices(test_ids, 5, seed)) for seed in range(6)}
    assert len(picks) > 1 and all(len(p) == 5 for p in picks)


def test_a_limit_that_cuts_no_split_is_a_complete_run(corpus, constant_run):
    """--limit above every split's size (8 test units here) is recorded as `limit: null`, so the board
    does not show a complete run as partial; a limit that cuts is kept."""
    full = constant_run[0]
    assert full["splits"][0]["n_units"] == 8 and full["limit"] is None
    for limit in (8, 1000):
        res = evaluate("constant", root=corpus, configs=[CONFIG], limit=limit, progress=False)
        assert res["limit"] is None and res["revision"] == full["revision"], limit
    assert evaluate("constant", root=corpus, configs=[CONFIG], limit=7, progress=False)["limit"] == 7


def test_describers_that_seed_themselves_get_each_trials_seed(corpus, tmp_path):
    """random-unit seeds its own generator (seed=0 by default): the harness hands it seed + trial."""
    def run(trials: int, seed: int) -> tuple[dict, list[list[str]]]:
        out = tmp_path / f"t{trials}-s{seed}"
        res = evaluate("random-unit", root=corpus, configs=[CONFIG], trials=trials, seed=seed, output=out,
                       progress=False)
        rows = read_descriptions(out / "descriptions.csv")
        return res, [[r["description"] for r in rows if r["trial"] == t] for t in range(trials)]

    res, texts = run(2, 5)
    assert res["describer"]["args"] == {}  # the trial seed is results["seed"] + trial, not a describer arg
    assert texts[0] != texts[1]  # two trials are two seeds, not the same run twice
    assert run(1, 5)[1][0] == texts[0]  # trial 0 of --seed 5 is the --seed 5 run
    assert run(1, 6)[1][0] == texts[1]  # and trial 1 is the --seed 6 run


def test_describers_and_floors_are_built_by_the_one_factory(corpus, monkeypatch):
    """The describer under test and both floors come from `baselines.registry.build_describer`, each with
    the runtime it takes from: the describer the trial's seed, device and progress; the floors the seed."""
    from baselines import registry
    from eval import harness, scoring

    built = []

    def spy(spec, args=None, runtime=None):
        built.append((spec, runtime))
        return registry.build_describer(spec, args, runtime)

    monkeypatch.setattr(harness, "build_describer", spy)
    monkeypatch.setattr(scoring, "build_describer", spy)
    evaluate("random-unit", root=corpus, configs=[CONFIG], trials=2, seed=3, progress=False)
    Runtime = registry.Runtime
    assert built == [("random-unit", Runtime("cpu", 3, False)), ("random-unit", Runtime("cpu", 4, False)),
                     ("constant", Runtime(seed=3)), ("random-unit", Runtime(seed=3))]


def test_build_describer_hands_each_constructor_what_it_names():
    from baselines.registry import Runtime, build_describer, create_describer, recorded_args

    run = Runtime(device="cpu", seed=9, progress=False)
    assert build_describer("random-unit", runtime=run).seed == 9  # takes a seed, no device or progress
    assert build_describer("random-unit", {"seed": 2}, run).seed == 2  # explicit args win
    assert build_describer("constant", {"text": "a dog"}, run).text == "a dog"  # takes none of them
    assert create_describer("random-unit").seed == 0  # no runtime: the constructor's defaults
    assert recorded_args("random-unit", {}, run) == {}  # the seed is the run's, not an arg
    floor = ConstantDescriber(text="x")
    assert build_describer(floor, runtime=run) is floor  # an instance is checked and used as it is
    with pytest.raises(MilanError, match="only used with a describer name"):
        build_describer(floor, {"text": "y"})
    with pytest.raises(MilanError, match="has no 'meta'"):
        build_describer(object())


# --------------------------------------------------------------------------- torchrun-style sharding

def _dist_worker(rank: int, world: int, init_file: str, root: str, out_dir: str) -> None:
    """One rank: describe its shard (a clean run, then one where rank 1 fails); record what came back."""
    import torch.distributed as dist

    from eval import harness, metrics

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    # scoring is tested elsewhere; here what rank 0 receives is the point
    harness._score_and_write = lambda data, scorer_obj, truth_scorer, **kw: {"ids": data[0].test_ids,
                                                               "texts": data[0].descriptions[0]}
    metrics.Scorer = lambda **kw: None  # no BERTScore model is needed to check the sharding
    record = {}
    try:
        for fail_rank in (-1, 1):
            seen: list[str] = []

            class Rec(PixelReader):
                meta = DescriberMeta(name="rec")

                def describe(self, units):
                    seen.extend(u.unit_id for u in units)
                    if rank == fail_rank:
                        raise RuntimeError(f"rank {rank} broke")
                    return [f"{u.unit_id} by rank {rank}" for u in units]

            try:
                outcome = {"ok": harness.evaluate(Rec(), root=root, configs=[CONFIG], progress=False,
                                                  batch_size=2)}
            except MilanError as e:
                outcome = {"error": str(e)}
            record[str(fail_rank)] = {"seen": seen, **outcome}
    finally:
        dist.destroy_process_group()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(record))


@pytest.mark.timeout(180)
def test_units_are_sharded_by_rank_and_gathered_on_rank_zero(corpus, tmp_path):
    import torch.multiprocessing as mp

    mp.spawn(_dist_worker, args=(2, str(tmp_path / "init"), str(corpus), str(tmp_path)), nprocs=2, join=True)
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    test_ids = list(load(CONFIG, split="test", root=corpus)["unit_id"])
    clean = [g["-1"] for g in got]
    assert clean[0]["seen"] == test_ids[0::2] and clean[1]["seen"] == test_ids[1::2]
    for g in clean:  # every rank returns the same, complete result, in unit order
        assert g["ok"]["ids"] == test_ids
        assert g["ok"]["texts"] == [f"{u} by rank {i % 2}" for i, u in enumerate(test_ids)]
    for g in got:  # one failing rank stops both with the same message instead of leaving rank 0 waiting
        err = g["1"]["error"]
        assert "rank 1 broke" in err and "'rec'" in err and test_ids[1] in err
