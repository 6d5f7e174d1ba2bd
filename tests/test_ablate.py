"""milan-ablate and applications.ablate: channel zeroing by hooks, accuracy with intervals, selection, CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from applications.ablate import (UnitRef, ablated, accuracy, labelled_folder, matches_words, parse_unit,
                                 random_order, read_units_file, select_by_words, wilson)
from milannotations.errors import MilanError

ROOT = Path(__file__).resolve().parents[1]

# A colour classifier whose every weight is chosen: channel 0 of layer "1" is the red mean, channel 1 the
# blue mean; the head compares them (a tiny bias breaks ties towards class 1, "b_blue").
FACTORY = textwrap.dedent('''
    import torch
    from torch import nn

    def tiny():
        conv = nn.Conv2d(3, 2, 1, bias=False)
        with torch.no_grad():
            conv.weight.zero_()
            conv.weight[0, 0] = 1.0
            conv.weight[1, 2] = 1.0
        head = nn.Linear(2, 2)
        with torch.no_grad():
            head.weight.copy_(torch.eye(2))
            head.bias.copy_(torch.tensor([0.0, 0.01]))
        return nn.Sequential(conv, nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), head)
''')


def _tiny():
    ns: dict = {}
    exec(FACTORY, ns)  # noqa: S102 - the test's own source
    return ns["tiny"]().eval()


@pytest.fixture
def folder(tmp_path: Path):
    """a_red: 2 red images and 1 blue one (mislabelled); b_blue: 3 blue images. 32 x 32 PNGs."""
    from PIL import Image

    root = tmp_path / "images"
    spec = {"a_red": [(230, 10, 10), (200, 40, 20), (20, 20, 220)], "b_blue": [(10, 10, 230)] * 3}
    for cls, colours in spec.items():
        (root / cls).mkdir(parents=True)
        for i, c in enumerate(colours):
            Image.new("RGB", (32, 32), c).save(root / cls / f"{i}.png")
    (tmp_path / "tinymodels.py").write_text(FACTORY)
    return root


def test_zeroing_a_channel_changes_the_output_and_the_hook_is_removed():
    model = _tiny()
    x = torch.zeros(1, 3, 4, 4)
    x[:, 0] = 1.0  # pure red
    before = model(x)
    relu = model.get_submodule("1")
    with ablated(model, [UnitRef("1", 0)]):
        during = model(x)
        assert len(relu._forward_hooks) == 1
    after = model(x)
    assert before.argmax(1).item() == 0 and during.argmax(1).item() == 1
    assert torch.allclose(during, torch.tensor([[0.0, 0.01]]))  # red channel gone: only the bias is left
    assert torch.equal(before, after) and len(relu._forward_hooks) == 0
    with pytest.raises(MilanError, match="unit 1/5 does not exist"):
        with ablated(model, [UnitRef("1", 5)]):
            model(x)
    assert len(relu._forward_hooks) == 0  # removed even when the forward pass failed
    with pytest.raises(MilanError, match="'nope' is not a submodule"):
        with ablated(model, [UnitRef("nope", 0)]):
            pass


def test_accuracy_on_a_folder_matches_a_direct_computation(folder):
    model = _tiny()
    x, y, classes = labelled_folder(folder, resize=32, crop=32)
    assert classes == ["a_red", "b_blue"] and y.tolist() == [0, 0, 0, 1, 1, 1]
    # direct: class 0 iff red mean > blue mean + 0.01
    red, blue = x[:, 0].mean(dim=(1, 2)).numpy(), x[:, 2].mean(dim=(1, 2)).numpy()
    direct = np.where(red > blue + 0.01, 0, 1) == y
    acc = accuracy(model, x, y)
    assert acc.correct == int(direct.sum()) == 5 and acc.n == 6
    assert acc.value == pytest.approx(5 / 6)
    ablated_acc = accuracy(model, x, y, [UnitRef("1", 0)])  # everything becomes class 1
    assert ablated_acc.correct == 3
    w = wilson(5, 6)
    assert (acc.low, acc.high) == (w.low, w.high) and w.low < 5 / 6 < w.high


def test_wilson_interval_values():
    w = wilson(0, 10)
    assert w.low == 0.0 and w.high == pytest.approx(0.2775, abs=1e-4)
    w = wilson(50, 100)
    assert (w.low, w.high) == (pytest.approx(0.4038, abs=1e-4), pytest.approx(0.5962, abs=1e-4))


def test_unit_names_selection_and_random_order(tmp_path):
    assert parse_unit("alexnet-imagenet/conv5/12") == UnitRef("conv5", 12)
    assert parse_unit("layer4/3") == UnitRef("layer4", 3)
    for bad in ("layer4", "a/b/c/d", "layer4/x", "layer4/-1"):
        with pytest.raises(MilanError):
            parse_unit(bad)
    f = tmp_path / "units.txt"
    f.write_text("# chosen\nnet/layer1/2\nlayer1/2\n\nlayer2/0  # again\n")
    assert read_units_file(f) == [UnitRef("layer1", 2), UnitRef("layer2", 0)]
    descriptions = {UnitRef("l", 0): "red stars", UnitRef("l", 1): "a start line", UnitRef("l", 2): "Star shapes",
                    UnitRef("l", 3): "blue circles"}
    assert select_by_words(descriptions, ["star", "stars"]) == [UnitRef("l", 0), UnitRef("l", 2)]
    assert select_by_words(descriptions, ["star"]) == [UnitRef("l", 2)]  # whole words, as milan-search
    assert matches_words("the top  edges of boxes", ["top edges"]) and not matches_words("outlines", ["lines"])
    units = [UnitRef("l", i) for i in range(20)]
    assert random_order(units, 3) == random_order(units, 3) != random_order(units, 4)
    assert sorted(random_order(units, 3)) == units


def _descriptions(tmp_path: Path) -> Path:
    p = tmp_path / "descriptions.csv"
    p.write_text("unit_id,layer,unit,description\ntiny/1/0,1,0,red things\ntiny/1/1,1,1,blue things\n")
    return p


def test_cli_in_process_words_and_curve(folder, tmp_path, monkeypatch):
    from applications.ablate_cli import main

    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "out"
    rc = main(["--model", "tinymodels:tiny", "--images", str(folder), "--resize", "32", "--crop", "32",
               "--words", "red", "--descriptions", str(_descriptions(tmp_path)), "--curve", "--steps", "1",
               "--output", str(out), "--seed", "1"])
    assert rc == 0
    r = json.loads((out / "results.json").read_text())
    assert r["units"] == ["1/0"] and r["accuracy"]["correct"] == 5 and r["ablated_accuracy"]["correct"] == 3
    assert r["change"]["value"] == pytest.approx(-2 / 6)
    assert (out / "units.txt").read_text() == "1/0\n"
    import csv

    rows = list(csv.DictReader((out / "curve.csv").open()))
    selected = [(row["removed"], row["correct"]) for row in rows if row["ordering"].startswith("selected")]
    assert selected == [("0", "5"), ("1", "3")]
    assert {row["ordering"] for row in rows} == {"selected, least cost first", "random", "all units, least cost first"}
    assert (out / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_from_the_command_line(folder, tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "MPLBACKEND": "Agg"}
    units = tmp_path / "units.txt"
    units.write_text("tiny/1/1\n")
    base = [sys.executable, "-m", "applications.ablate_cli", "--model", "tinymodels:tiny", "--images", str(folder),
            "--resize", "32", "--crop", "32"]
    ok = subprocess.run(base + ["--units-file", str(units), "--output", str(tmp_path / "o")], env=env,
                        capture_output=True, text=True, timeout=600)
    assert ok.returncode == 0, ok.stderr
    r = json.loads((tmp_path / "o" / "results.json").read_text())
    assert r["units"] == ["1/1"] and r["ablated_accuracy"]["correct"] == 3  # blue gone: all class 0
    bad = subprocess.run(base + ["--words", "red", "--output", str(tmp_path / "b")], env=env, capture_output=True,
                         text=True, timeout=600)
    assert bad.returncode == 2 and "--words needs --descriptions" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()


def test_cli_bad_input_is_one_line_and_writes_nothing(folder, tmp_path, monkeypatch, capsys):
    from applications.ablate_cli import main

    monkeypatch.syspath_prepend(str(tmp_path))
    units = tmp_path / "units.txt"
    units.write_text("tiny/1/1\n")
    base = ["--model", "tinymodels:tiny", "--images", str(folder), "--resize", "32", "--crop", "32",
            "--output", str(tmp_path / "b")]
    seven = tmp_path / "seven.txt"
    seven.write_text("tiny/1/7\n")
    cases = ((["--units-file", str(tmp_path / "missing.txt")], "missing.txt does not exist"),
             (["--units-file", str(units), "--model", "tinymodels:nope"], "cannot import 'nope'"),
             (["--units-file", str(seven)], "unit 1/7 does not exist"),
             (["--words", ",", "--descriptions", str(_descriptions(tmp_path))], "--words names no words"),
             (["--words", "green", "--descriptions", str(_descriptions(tmp_path))], "no unit was selected"),
             (["--units-file", str(units), "--images", str(tmp_path / "nowhere")], "does not exist"))
    for extra, needle in cases:
        assert main(base + extra) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert not (tmp_path / "b").exists()


def test_parser_uses_the_common_flag_names():
    import argparse

    from applications.ablate_cli import build_parser
    from milannotations.cli import COMMON_FLAGS

    seen = set()
    for action in build_parser()._actions:
        if action.dest in COMMON_FLAGS and action.help is not argparse.SUPPRESS:
            assert action.option_strings == [COMMON_FLAGS[action.dest]]
            seen.add(action.dest)
    assert seen == set(COMMON_FLAGS)
