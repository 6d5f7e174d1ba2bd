import json

import datasets
import numpy as np
import pytest

from milannotations.splits import assign_splits
from milannotations.units import UnitSet, to_exemplars
from milannotations.writer import ConfigMeta, write_config
from tests.rows import make_rows


def test_written_config_loads_with_load_dataset(tiny_corpus):
    out, rows = tiny_corpus
    ds = datasets.load_dataset(str(out), "tiny-net")
    assert set(ds) == {"train", "test"}
    assert len(ds["train"]) + len(ds["test"]) == len(rows)
    split = json.loads((out / "splits" / "tiny-net.json").read_text())
    assert sorted(ds["test"]["unit_id"]) == sorted(split["test"])
    by_id = {f"tiny-net/{r.layer}/{r.unit}": r for r in rows}
    row = ds["train"][0]
    src = by_id[row["unit_id"]]
    ex = to_exemplars(row)
    assert ex.layer == src.layer and isinstance(ex.layer, str)
    assert np.array_equal(ex.images.numpy(), src.images)
    assert np.array_equal(ex.masks.numpy(), src.masks)
    assert row["annotations"] == list(src.annotations)
    assert "tiny-net" in (out / "README.md").read_text()


def test_same_input_same_bytes(tmp_path):
    rows = make_rows()
    split_of = assign_splits(f"t/{r.layer}/{r.unit}" for r in rows)
    digests = []
    for name in ("a", "b"):
        write_config(tmp_path / name, ConfigMeta("t", "m", "d"), rows, split_of)
        digests.append(sorted(p.read_bytes() for p in (tmp_path / name / "data" / "t").glob("*.parquet")))
    assert digests[0] == digests[1]


def test_unitset_hides_truth_and_annotations(tiny_corpus):
    out, _ = tiny_corpus
    ds = datasets.load_dataset(str(out), "tiny-net", split="test")
    units = UnitSet(ds)
    assert not hasattr(units[0], "annotations")
    with pytest.raises(PermissionError):
        units.annotations()
    with pytest.raises(PermissionError):
        units.column("truth")
    assert len(UnitSet(ds, annotated=True)[0].annotations) == 3


def test_split_is_order_independent():
    ids = [f"c/l/{i}" for i in range(100)]
    a = assign_splits(ids)
    b = assign_splits(list(reversed(ids)))
    assert a == b and sum(v == "test" for v in a.values()) == 10
