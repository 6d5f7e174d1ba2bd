"""`load()` reads the built parquet directly (`milannotations.table.UnitTable`), issue 18.

The rows are those `datasets` gives (`as_dataset=True`), the first unit costs one row-group read
and no `datasets` cache, images are decoded only when read, and a damaged page names its file.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import milannotations as mn
from milannotations.errors import MilanError
from milannotations.table import UnitTable, UnitTableDict, concatenate
from milannotations.units import UnitSet, to_exemplars

CONFIG = "synth-shallow-plain"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """30 units (22 train, 8 test) of random pixels, 3 exemplars of 12 x 10 px: several row groups per split."""
    from milannotations.writer import ConfigMeta, UnitRow, write_config

    rng = np.random.default_rng(0)
    rows, split_of = [], {}
    for u in range(30):
        layer = f"layer{u % 3}"
        rows.append(UnitRow(layer=layer, unit=u, images=rng.integers(0, 256, (3, 3, 12, 10), dtype=np.uint8),
                            masks=rng.random((3, 1, 12, 10)) > 0.5, image_ids=[u, u + 1, u + 2],
                            annotations=[f"unit {u} a", f"unit {u} b", f"unit {u} c"],
                            truth=json.dumps({"unit": u})))
        split_of[f"{CONFIG}/{layer}/{u}"] = "test" if u % 4 == 0 else "train"
    out = tmp_path_factory.mktemp("reader") / "corpus"
    write_config(out, ConfigMeta(CONFIG, "synth-shallow", "synth-plain", synthetic=True), rows, split_of)
    return out


def _same_exemplars(a, b) -> None:
    assert (a.unit_id, a.layer, a.unit, a.image_ids) == (b.unit_id, b.layer, b.unit, b.image_ids)
    assert np.array_equal(a.masks.numpy(), b.masks.numpy()) and a.masks.dtype == b.masks.dtype
    assert np.array_equal(a.images.numpy(), b.images.numpy()) and a.images.dtype == b.images.dtype


def test_rows_and_units_are_those_of_datasets(corpus):
    ours = mn.load(CONFIG, root=corpus)
    theirs = mn.load(CONFIG, root=corpus, as_dataset=True)
    assert isinstance(ours, UnitTableDict) and type(theirs).__name__ == "DatasetDict"
    assert list(ours) == list(theirs) == ["train", "test"]
    for split in ours:
        a, b = ours[split], theirs[split]
        assert isinstance(a, UnitTable) and len(a) == len(b) == (22 if split == "train" else 8)
        assert a.column_names == b.column_names
        for col in ("unit_id", "layer", "unit", "image_ids", "annotations", "truth", "config"):
            assert a[col] == b[col]
        for ra, rb in zip(a, b):
            assert ra.keys() == rb.keys()
            assert [np.asarray(i).tolist() for i in ra["images"]] == [np.asarray(i).tolist() for i in rb["images"]]
            _same_exemplars(to_exemplars(ra, annotated=True), to_exemplars(rb, annotated=True))
        for ua, ub in zip(UnitSet(a, annotated=True), UnitSet(b, annotated=True)):
            _same_exemplars(ua, ub)
            assert ua.annotations == ub.annotations
        ua, ub = UnitSet(a)[-1], UnitSet(b)[-1]  # random access, negative index
        _same_exemplars(ua, ub)
        assert a.features == b.features
        assert ours[split].to_dataset()["unit_id"] == b["unit_id"]


def test_first_unit_reads_one_row_group_and_no_datasets_cache(corpus, tmp_path):
    code = f"""
import json, sys
import milannotations as mn
from milannotations import table
reads = []
orig = table._Shards.group
table._Shards.group = lambda self, g, cols: (reads.append([g, "images" in cols]), orig(self, g, cols))[1] if (g, cols) not in self._groups else orig(self, g, cols)
unit = mn.UnitSet(mn.load({CONFIG!r}, split="train", root=sys.argv[1]), annotated=True)[0]
before = list(reads)
shape = list(unit.images.shape)
print(json.dumps({{"before": before, "reads": reads, "shape": shape, "datasets": "datasets" in sys.modules}}))
"""
    hf = tmp_path / "hf"
    env = {**os.environ, "HF_HOME": str(hf), "HF_DATASETS_CACHE": str(hf / "datasets")}
    out = subprocess.run([sys.executable, "-c", code, str(corpus)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    # the unit's text and masks from row group 0; its images from the same row group when first read
    assert got == {"before": [[0, False]], "reads": [[0, False], [0, True]], "shape": [3, 3, 12, 10],
                   "datasets": False}
    assert not hf.exists() or not any(hf.rglob("*.arrow"))


def test_images_are_decoded_only_when_read(corpus):
    units = UnitSet(mn.load(CONFIG, split="test", root=corpus))
    u = units[2]
    assert "images" not in vars(u) and u.k == 3 and u.masks.shape == (3, 1, 12, 10)
    assert not hasattr(u, "annotations")  # a unit under description has none
    again = pickle.loads(pickle.dumps(u))  # still lazy, and still decodes after a round trip
    assert "images" not in vars(again)
    images = u.images
    assert "images" in vars(u) and u.images is images and images.is_contiguous()
    assert np.array_equal(again.images.numpy(), images.numpy())
    assert type(u) is mn.Exemplars and type(UnitSet(units.dataset, annotated=True)[0]) is mn.AnnotatedExemplars


def _decode_in_child(conn, cells) -> None:
    from milannotations.units import decode_images

    conn.send(decode_images(cells).shape[0])


def test_image_pool_works_in_a_forked_child(corpus):
    """The decoding thread pool of the parent has no threads in a forked child: the child starts its own."""
    if "fork" not in multiprocessing.get_all_start_methods():
        pytest.skip("no fork on this platform")
    table = mn.load(CONFIG, split="train", root=corpus)
    cells = table.raw_row(0, ["images"])["images"]
    from milannotations import units as units_mod

    assert units_mod.decode_images(cells).shape[0] == 3  # the parent's pool has started
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_decode_in_child, args=(child, cells))
    p.start()
    assert parent.poll(60), "decoding in a forked child hung"
    assert parent.recv() == 3
    p.join(10)


def test_views_select_remove_add_concatenate(corpus):
    both = mn.load(CONFIG, root=corpus)
    train, test = both["train"], both["test"]
    ids = train["unit_id"]
    picked = train.select([5, 0, 5])
    assert picked["unit_id"] == [ids[5], ids[0], ids[5]] and picked[1]["unit_id"] == ids[0]
    assert train[2:4]["unit_id"] == ids[2:4] and train[-1]["unit_id"] == ids[-1]
    with pytest.raises(IndexError):
        train.select([22])
    with pytest.raises(IndexError):
        train[22]
    slim = train.remove_columns(["truth", "annotations"])
    assert "truth" not in slim.column_names and "truth" in train.column_names
    assert set(slim[0]) == set(slim.column_names)
    with pytest.raises(ValueError):
        slim.remove_columns("truth")
    tagged = train.add_column("_split", ["train"] * len(train))
    with pytest.raises(ValueError):
        train.add_column("_split", ["x"])
    assert tagged.select([3])["_split"] == ["train"] and tagged[3]["_split"] == "train"
    joined = concatenate([tagged, test.add_column("_split", ["test"] * len(test))])
    assert len(joined) == 30 and joined["unit_id"] == ids + test["unit_id"]
    assert joined["_split"] == ["train"] * 22 + ["test"] * 8
    sub = concatenate([train.select([1]), test.select([0])])
    assert sub["unit_id"] == [ids[1], test["unit_id"][0]]
    assert [u.unit_id for u in UnitSet(sub)] == sub["unit_id"]
    mixed = concatenate([train, test.to_dataset()])  # any datasets.Dataset: a datasets.Dataset
    assert type(mixed).__name__ == "Dataset" and mixed["unit_id"] == ids + test["unit_id"]
    assert UnitSet(pickle.loads(pickle.dumps(picked)))[1].unit_id == ids[0]
    with pytest.raises(AttributeError, match="to_dataset"):
        train.map(lambda r: r)


def test_unknown_split_and_damaged_page_name_the_problem(corpus, tmp_path):
    import shutil

    with pytest.raises(MilanError, match="no 'validation' split"):
        mn.load(CONFIG, split="validation", root=corpus)
    bad = tmp_path / "bad"
    shutil.copytree(corpus, bad)
    shard = next((bad / "data" / CONFIG).glob("train-*.parquet"))
    data = bytearray(shard.read_bytes())
    data[200:2200] = bytes(range(250)) * 8  # pages of the first row group; the footer stays readable
    shard.write_bytes(bytes(data))
    table = mn.load(CONFIG, split="train", root=bad)  # footers and counts are fine
    with pytest.raises(MilanError, match=f"{shard.name}: damaged parquet file"):
        for _ in UnitSet(table):
            pass
