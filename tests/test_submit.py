"""Submitting goes where the user says, never replaces a submission silently, and eval/ never imports
leaderboard/; `--no-progress` silences the libraries' bars in every console script; the documented
`--describer` resolves."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from eval.cli import main as eval_main
from leaderboard.cli import main as board_main

ROOT = Path(__file__).resolve().parents[1]
CONFIG = "synth-shallow-plain"

ECHO = '''
from milannotations import DescriberMeta


class Echo:
    def __init__(self):
        self.meta = DescriberMeta(name="echo", version="0.1")

    def fit(self, train):
        pass

    def describe(self, units):
        return ["red circles" for _ in units]
'''


def test_eval_never_imports_the_leaderboard():
    """The direction is milannotations <- baselines <- eval <- leaderboard: no module of eval/ imports it."""
    offenders = []
    for path in sorted((ROOT / "eval").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] == "leaderboard"]
    assert offenders == []


def _package_submissions() -> set[str]:
    from leaderboard.submission import SUBMISSIONS_ROOT

    return {str(p) for p in SUBMISSIONS_ROOT.glob("*/*")}


def test_submit_without_a_submissions_folder_is_refused_before_the_run(corpus, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no leaderboard/submissions here
    before = _package_submissions()
    rc = eval_main(["--describer", "constant", "--root", str(corpus), "--configs", CONFIG,
                    "--output", str(tmp_path / "out"), "--no-progress", "--submit"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1 and "pass --submissions DIR" in err
    assert not (tmp_path / "out").exists() and _package_submissions() == before
    assert board_main(["submit", str(tmp_path / "out")]) == 2
    assert "no results.json" in capsys.readouterr().err


def test_submit_goes_to_the_current_checkout_and_never_replaces_silently(corpus, tmp_path, monkeypatch, capsys):
    (tmp_path / "my_describer.py").write_text(ECHO)
    subs = tmp_path / "leaderboard" / "submissions"
    dest = subs / "echo" / "synth-within-network"
    dest.mkdir(parents=True)
    (dest / "meta.json").write_text(json.dumps({"authors": ["Ada"], "link": "https://example.org/echo"}))
    monkeypatch.chdir(tmp_path)
    before = _package_submissions()

    # an existing submission: refused in one line, and the run is kept where it was written
    rc = eval_main(["--describer", "my_describer.py:Echo", "--root", str(corpus), "--configs", CONFIG,
                    "--no-progress", "--submit"])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and len(err.splitlines()) == 1
    assert f"submission {dest} already exists; pass --overwrite" in err
    kept = Path(re.search(r"the run is kept in (\S+)", err).group(1))
    assert (kept / "results.json").is_file() and (kept / "descriptions.csv").is_file()
    assert sorted(p.name for p in dest.iterdir()) == ["meta.json"]  # untouched

    # the leaderboard command: refused again without --overwrite, replaced with it, authors and link kept
    assert board_main(["submit", str(kept)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert board_main(["submit", str(kept), "--overwrite"]) == 0
    assert f"submitted to {dest}" in capsys.readouterr().out
    meta = json.loads((dest / "meta.json").read_text())
    assert meta["authors"] == ["Ada"] and meta["link"] == "https://example.org/echo" and meta["name"] == "echo"
    assert (dest / "results.json").read_bytes() == (kept / "results.json").read_bytes()
    assert board_main(["submit", str(kept), "--overwrite", "--author", "Bo"]) == 0
    assert json.loads((dest / "meta.json").read_text())["authors"] == ["Bo"]
    # elsewhere with --submissions; never into the installed package's folder
    other = tmp_path / "elsewhere"
    assert board_main(["submit", str(kept), "--submissions", str(other)]) == 0
    assert (other / "echo" / "synth-within-network" / "results.json").is_file()
    assert _package_submissions() == before
    assert eval_main(["--describer", "constant", "--overwrite"]) == 2  # only with --submit
    assert "only go with --submit" in capsys.readouterr().err


def test_documented_describer_resolves(tmp_path, monkeypatch):
    """docs/leaderboard.md's submitting commands name a describer the registry resolves."""
    from baselines.registry import resolve_describer

    text = (ROOT / "docs" / "leaderboard.md").read_text()
    block = re.search(r"## Submitting\s+```bash\n(.*?)```", text, re.S).group(1)
    names = re.findall(r"--describer (\S+)", block)
    assert names
    for name in names:
        file, _, attr = name.partition(":")
        (tmp_path / file).write_text(ECHO.replace("class Echo", f"class {attr}"))
    monkeypatch.chdir(tmp_path)
    for name in names:
        assert resolve_describer(name).__name__ == name.partition(":")[2]
    assert "leaderboard submit" in block


@pytest.fixture
def bars(monkeypatch):
    """(reset, probe): `reset` turns the libraries' bars on; `probe`, standing in for a command's work,
    records whether they are off and stops the command."""
    import datasets
    import huggingface_hub.utils

    seen: list[bool] = []

    def reset():
        for var in ("HF_HUB_DISABLE_PROGRESS_BARS", "HF_DATASETS_DISABLE_PROGRESS_BARS"):
            monkeypatch.delenv(var, raising=False)
        datasets.enable_progress_bars()
        huggingface_hub.utils.enable_progress_bars()

    def probe(*_a, **_k):
        from milannotations.errors import MilanError

        seen.append(not datasets.is_progress_bar_enabled() and huggingface_hub.utils.are_progress_bars_disabled())
        raise MilanError("stop here")

    yield seen, reset, probe
    reset()


def test_no_progress_silences_library_bars_in_every_command(bars, tmp_path, monkeypatch):
    import importlib

    import leaderboard.validate
    from milannotations.cli import main as mn_main

    seen, reset, probe = bars
    # the package loads its modules lazily: import them, so the patches land where the commands look
    monkeypatch.setattr(importlib.import_module("milannotations.build"), "build", probe)
    monkeypatch.setattr(importlib.import_module("milannotations.synth.build"), "build_synth", probe)
    import milannotations.imagejoin as imagejoin

    monkeypatch.setattr(imagejoin, "open_sources", probe)
    import milannotations.exemplars.images as exemplar_images  # where run_exemplars takes it from

    monkeypatch.setattr(exemplar_images, "ImageFolderDataset", probe)
    monkeypatch.setattr(leaderboard.validate, "validate_paths", probe)
    (tmp_path / "imgs").mkdir()
    runs = [
        lambda: mn_main(["build", "--zip-dir", str(tmp_path), "--out", str(tmp_path / "b"), "--no-progress"]),
        lambda: mn_main(["synth", "--out", str(tmp_path / "s"), "--no-progress"]),
        lambda: mn_main(["join", "--imagenet", str(tmp_path), "--out", str(tmp_path / "j"), "--no-progress"]),
        lambda: mn_main(["exemplars", "--model", "resnet18", "--weights", "none", "--images", str(tmp_path / "imgs"),
                         "--layers", "layer4", "--name", "x", "--out", str(tmp_path / "e"), "--no-progress"]),
        lambda: board_main(["validate", str(tmp_path), "--no-progress"]),
    ]
    for i, go in enumerate(runs):
        reset()
        assert go() == 2 and seen[i:] == [True], i
