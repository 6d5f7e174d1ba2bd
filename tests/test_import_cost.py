"""`import milannotations` costs only what is used (issue 18): no torch, datasets, transformers,
open_clip, torchvision or pyarrow.parquet until a name that needs them is touched."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "datasets", "transformers", "open_clip", "torchvision", "pyarrow.parquet")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_import_loads_no_heavy_library():
    loaded = _run(f"import milannotations, sys; print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert loaded == "[]"


def test_light_names_stay_light_and_heavy_names_still_import():
    """The catalogue, `load` and `resolve_configs` need nothing heavy; every public name still resolves
    (`from milannotations import ...` and attribute access), and `build` stays the function even when
    the `milannotations.build` module was imported first (as the `build` command does)."""
    code = f"""
import json, sys
import milannotations as mn
from milannotations import REAL_CONFIGS, load, resolve_configs, default_root, prepare, download, MilanError
light = sorted(m for m in {HEAVY!r} if m in sys.modules)
assert resolve_configs("base")[0] == "alexnet-imagenet"
import milannotations.build
from milannotations import build, UnitSet, UnitTable, Exemplars, FEATURES, concatenate, join_folder
names = {{n: callable(getattr(mn, n)) for n in mn.__all__}}
print(json.dumps({{"light": light, "build": [type(mn.build).__name__, build is mn.build],
                  "features": list(FEATURES)[:2], "names": names, "dir": "UnitSet" in dir(mn)}}))
"""
    got = json.loads(_run(code))
    assert got["light"] == []
    assert got["build"] == ["function", True]
    assert got["features"] == ["unit_id", "config"]
    assert got["dir"] is True
    not_callable = {n for n, ok in got["names"].items() if not ok}
    assert not_callable == {"FEATURES", "REAL_CONFIGS", "REAL_GROUPINGS"}
