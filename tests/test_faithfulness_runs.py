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


def test_netdissect_on_a_user_folder_prints_probe_faithfulness(folder, tmp_path, capsys):
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
