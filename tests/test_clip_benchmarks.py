"""The CLIP-based describers through milan-eval on both benchmarks, at fixture scale.

The human benchmark is built from zips in the exact original release format;
the CLIP models are random-weight open_clip (no weights can be fetched here).
"""
from __future__ import annotations

import csv
import json

import pytest

from tests.original_format import LayerSpec, make_original_zip


@pytest.fixture(scope="module")
def real_corpus(tmp_path_factory):
    from milannotations.build import build

    zips = tmp_path_factory.mktemp("zips")
    layers = [LayerSpec("conv1", 12, k=3, height=32, width=32), LayerSpec("conv2", 12, k=3, height=32, width=32)]
    make_original_zip(zips / "alexnet-places365.zip", layers, seed=1)
    out = tmp_path_factory.mktemp("built") / "milannotations"
    build(zips, out, ["alexnet-places365"], progress=False)
    return out


def _run(args, tmp_path, name):
    from eval.cli import main

    out = tmp_path / name
    assert main([*args, "--output", str(out), "--no-progress"]) == 0
    return json.loads((out / "results.json").read_text()), (out / "descriptions.csv").read_text().splitlines()


def test_clip_dissect_and_milan_clip_on_the_human_benchmark_format(real_corpus, tmp_path, monkeypatch):
    common = ["--benchmark", "milannotations", "--root", str(real_corpus), "--configs", "alexnet-places365"]
    res, rows = _run(["--describer", "clip-dissect", "--describer-args",
                      "model=ViT-S-32,pretrained=none,concepts=broden", *common], tmp_path, "cd")
    (split,) = res["splits"]
    assert split["name"] == "alexnet-places365" and split["n_units"] == len(rows) - 1 > 0
    assert res["describer"]["name"] == "clip-dissect"
    from baselines.clip.concepts import broden_like

    assert all(r.split(",")[3] in broden_like() for r in rows[1:])
    # MILAN+CLIP: spy on the CLIP choice (looked up in baselines.milan.clip_rerank when describing)
    import baselines.milan.clip_rerank as clip_rerank

    calls = []
    real_choose = clip_rerank.choose_by_clip

    def spy(clip, units, candidates, *args, **kwargs):
        best = real_choose(clip, units, candidates, *args, **kwargs)
        calls.append(([u.unit_id for u in units], [list(c) for c in candidates], best))
        return best

    monkeypatch.setattr(clip_rerank, "choose_by_clip", spy)
    res, rows = _run(["--describer", "milan", "--describer-args",
                      "rerank=clip,clip_model=ViT-S-32,clip_pretrained=none,backbone=resnet18-random,"
                      "epochs=2,hidden=32,embedding=16,beam=3,cache=false", *common], tmp_path, "mc")
    assert res["describer"]["name"] == "milan" and len(rows) - 1 == res["splits"][0]["n_units"]
    assert set(res["splits"][0]["metrics"]) >= {"bertscore_f1", "bleu", "retrieval_top1"}
    written = {r["unit_id"]: r["description"] for r in csv.DictReader(rows)}
    chosen = {}
    for unit_ids, candidates, best in calls:
        assert len(unit_ids) == len(candidates) == len(best)
        for uid, texts, i in zip(unit_ids, candidates, best):
            assert 0 <= i < len(texts) and len(texts) > 1  # a real choice among the beam's candidates
            chosen[uid] = texts[i]
    assert calls and chosen == written  # CLIP chose the description of every test unit, and only those
