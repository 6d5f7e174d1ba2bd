"""Faithfulness in runs (issue 15): a user's random-weight ResNet-18 folder scored by probe-set and exemplar
faithfulness, and exemplar faithfulness beside agreement and truth on synthetic splits."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from eval.cli import main as eval_main
from milannotations.cli import main as cli_main

SIZE = 40


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """`milannotations exemplars --record-activations` of a random-weight ResNet-18 on 24 images."""
    tmp = tmp_path_factory.mktemp("faith")
    images = tmp / "imgs"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(24):
        low = rng.integers(0, 256, (5, 5, 3), dtype=np.uint8)
        Image.fromarray(low).resize((SIZE, SIZE), Image.BILINEAR).save(images / f"im{i:02d}.png")
    out = tmp / "ex"
    assert cli_main(["exemplars", "--model", "torchvision:resnet18", "--weights", "none", "--images", str(images),
                     "--layers", "layer4", "--name", "rn", "--output", str(out), "--k", "3", "--resize", str(SIZE),
                     "--crop", str(SIZE), "--no-progress", "--record-activations"]) == 0
    return out


def test_netdissect_on_a_user_folder_prints_probe_faithfulness(folder, tmp_path, capsys, monkeypatch):
    import baselines.clip.models as clip_models
    from baselines.clip.synth_clip import load_synth_clip

    small = load_synth_clip(cache_dir=tmp_path / "clip", steps=4, pool_scenes=12, batch_size=16)
    real = clip_models.load_clip
    # a 4-step synthetic CLIP stands in for the full one (minutes to train in a fresh cache)
    monkeypatch.setattr(clip_models, "load_clip", lambda model="synth", *a, **k: small if model == "synth"
                        else real(model, *a, **k))
    out = tmp_path / "run"
    assert eval_main(["--describer", "netdissect", "--describer-args", "segmenter=synth", "--benchmark", str(folder),
                      "--labeller", "clip", "--labeller-args", "model=synth", "--limit", "12", "--no-progress",
                      "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for name in ("probe_pearson", "probe_auprc", "probe_iou", "exemplar_px_iou", "probe_cosy_auc"):
        assert name in printed
    results = json.loads((out / "results.json").read_text())
    assert results["benchmark"] == "folder" and results["labeller"]["name"] == "clip"
    split = results["splits"][0]
    assert split["n_units"] == 12
    for section in ("metrics", "floor", "ceiling", "normalized"):
        assert "probe_pearson" in split[section]
    m = split["metrics"]["probe_pearson"]
    assert m["ci95"][0] <= m["value"] <= m["ci95"][1]
    assert "labeller:clip(synth-clip" in m["signature"] and "alpha:0.005(fixed" in m["signature"]
    # the constant floor says the same for every unit: identification exactly at chance
    assert split["floors"]["constant"]["probe_ident_top1"]["value"] == pytest.approx(1 / 12)
    assert split["floors"]["constant"]["exemplar_ident_top1"]["value"] == pytest.approx(1 / 12)
    assert len((out / "descriptions.csv").read_text().splitlines()) == 13


def test_a_describer_scored_by_its_own_model_is_marked(folder, capsys):
    assert eval_main(["--describer", "netdissect", "--describer-args", "segmenter=synth", "--benchmark", str(folder),
                      "--labeller", "segmenter", "--labeller-args", "segmenter=synth,embed=false", "--limit", "4",
                      "--no-progress"]) == 0
    assert "relies on the same model (segmenter:synth)" in capsys.readouterr().out.replace("\n", " ")


def test_a_folder_needs_a_labeller(folder, capsys):
    assert eval_main(["--describer", "constant", "--benchmark", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "--labeller" in err and "Traceback" not in err


@pytest.fixture(scope="module")
def original_build(tmp_path_factory) -> Path:
    """An original-format MILANNOTATIONS zip (with images) converted by `milannotations build`."""
    from tests.original_format import LayerSpec, make_original_zip

    tmp = tmp_path_factory.mktemp("faith-orig")
    make_original_zip(tmp / "zips" / "alexnet-imagenet.zip",
                      [LayerSpec("conv1", 12, k=3, height=16, width=16), LayerSpec("conv2", 12, k=3, height=16, width=16)],
                      seed=3)
    out = tmp / "corpus-faith"
    assert cli_main(["build", "--zip-dir", str(tmp / "zips"), "--output", str(out), "--no-progress"]) == 0
    return out


DESCRIBER_ARGS = {
    "milan": dict(backbone="resnet18-random", epochs=1, hidden=16, embedding=8, batch_size=8, progress=False),
    "netdissect": {"segmenter": "synth"}, "compexp": {"segmenter": "synth"}, "clip-dissect": {"model": "synth"},
}


@pytest.mark.parametrize("name", ["constant", "random-unit", "netdissect", "compexp", "clip-dissect", "milan"])
def test_exemplar_faithfulness_on_an_original_format_build(original_build, name, tmp_path):
    from baselines.registry import available_describers
    from eval import evaluate

    assert name in available_describers()
    args = dict(DESCRIBER_ARGS.get(name, {}))
    if name == "milan":
        args["cache"] = str(tmp_path / "milan-cache")
    results = evaluate(name, benchmark="milannotations", protocol="within-network", configs=["alexnet-imagenet"],
                       root=original_build, describer_args=args, progress=False, labeller="segmenter",
                       labeller_args={"segmenter": "synth", "embed": False})
    split = results["splits"][0]
    for section in ("metrics", "ceiling", "humans", "floor"):
        assert {"exemplar_px_iou", "exemplar_ident_top1"} <= set(split[section]), section
    assert "positives-only" in split["metrics"]["exemplar_px_iou"]["signature"]
    assert "humans:annotators" in split["ceiling"]["exemplar_px_iou"]["signature"]  # no truth: the annotators
    assert split["floors"]["constant"]["exemplar_ident_top1"]["value"] == pytest.approx(1 / split["n_units"])
    same = results["labeller"]["same_model"]
    assert same == (["segmenter:synth"] if name in ("netdissect", "compexp") else [])


def test_a_labelled_run_validates_and_a_raised_faithfulness_number_is_refused(tmp_path):
    """The leaderboard rebuilds the run's labeller (results.json `labeller`: name and args) and recomputes
    every faithfulness number from the descriptions."""
    import json as _json

    from eval import evaluate
    from leaderboard.submission import write_submission
    from leaderboard.validate import validate_submission
    from tests.eval_corpus import write_eval_corpus

    corpus = write_eval_corpus(tmp_path / "corpus", n_units=12, n_test=5)
    evaluate("constant", root=corpus, output=tmp_path / "run", progress=False,
             labeller="segmenter", labeller_args={"segmenter": "synth", "embed": False})
    sub = write_submission(tmp_path / "run", root=tmp_path / "subs", authors=["T"], link="https://example.org")
    results = _json.loads((sub / "results.json").read_text())
    assert results["labeller"]["args"] == {"segmenter": "synth", "embed": False}
    assert validate_submission(sub, corpus_root=corpus).ok
    results["splits"][0]["metrics"]["exemplar_px_iou"]["value"] += 0.05
    (sub / "results.json").write_text(_json.dumps(results))
    rep = validate_submission(sub, corpus_root=corpus)
    assert not rep.ok and any("exemplar_px_iou" in str(p) for p in rep.problems)
