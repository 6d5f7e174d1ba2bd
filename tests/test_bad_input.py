"""Every console script refuses bad input the same way: one line on stderr naming the problem, exit 2,
no traceback, and nothing written or changed.

Each case runs in its own process. Starting a fresh interpreter costs ~4 s here (torch, datasets),
so one driver process imports the console scripts' entry points once and forks a child per case;
the child gets its own stdout/stderr files, argv and exit status, as a console script does. A few
cases also go through the installed console scripts themselves, to check the driver stands in for them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

DRIVER = r'''
import io, json, os, signal, sys, time, traceback
from importlib.metadata import entry_points

scripts = {ep.name: ep.load() for ep in entry_points(group="console_scripts")
           if ep.name in ("milannotations", "milan-eval", "milan-describe", "milan-leaderboard")}
# What the commands import lazily, imported once here (a warm interpreter; no threads are started).
import importlib
for name in ("torchvision", "milannotations.exemplars", "milannotations.exemplars.models", "eval.harness",
             "eval.metrics", "transformers"):
    importlib.import_module(name)
cases, out = json.load(open(sys.argv[1])), sys.argv[2]
results = []
for i, (script, argv) in enumerate(cases):
    err_path = os.path.join(out, f"{i}.err")
    t0 = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        signal.alarm(120)
        fd_out = os.open(os.devnull, os.O_WRONLY)
        fd_err = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(fd_out, 1); os.dup2(fd_err, 2)
        sys.stdout = io.TextIOWrapper(os.fdopen(1, "wb", closefd=False), write_through=True)
        sys.stderr = io.TextIOWrapper(os.fdopen(2, "wb", closefd=False), write_through=True)
        sys.argv = [script, *argv]
        try:
            rc = scripts[script](argv)
        except SystemExit as e:
            rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:
            traceback.print_exc()
            rc = 1
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(int(rc or 0))
    _, status = os.waitpid(pid, 0)
    results.append([os.waitstatus_to_exitcode(status), open(err_path, errors="replace").read(),
                    round(time.perf_counter() - t0, 2)])
print(json.dumps(results))
'''


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory) -> dict[str, Path]:
    """Tiny inputs, good and bad: corpora, a damaged shard, zips, images, describer files, a plain file."""
    from PIL import Image

    from tests.eval_corpus import write_eval_corpus
    from tests.original_format import LayerSpec, make_original_zip, rewrite_zip

    box = tmp_path_factory.mktemp("bad-input")
    p = {"box": box, "corpus": write_eval_corpus(box / "corpus", n_units=8, n_test=3, k=2, size=8)}
    shard = "data/synth-shallow-plain/train-00000-of-00001.parquet"
    p["footer"] = box / "bad-footer"
    shutil.copytree(p["corpus"], p["footer"])
    (p["footer"] / shard).write_bytes((p["footer"] / shard).read_bytes()[:300])  # truncated: no footer
    p["count"] = box / "bad-count"
    shutil.copytree(p["corpus"], p["count"])
    meta = p["count"] / "meta" / "synth-shallow-plain.json"
    m = json.loads(meta.read_text())
    m["counts"]["train"] += 1
    meta.write_text(json.dumps(m))
    good = make_original_zip(box / "src" / "alexnet-imagenet.zip", [LayerSpec("conv1", 2, k=2, height=8, width=8)])
    for name, replace in (("zips-csv", {"annotations.csv": b"\xff\xfe\x00garbage,\x00\n\x80\x81"}),
                          ("zips-npy", {"conv1/masks.npy": b"not an npy file"})):
        (box / name).mkdir()
        rewrite_zip(good.path, box / name / "alexnet-imagenet.zip", replace=replace)
    (box / "zips-junk").mkdir()
    (box / "zips-junk" / "alexnet-imagenet.zip").write_bytes(b"this is not a zip")
    p["images"] = box / "images"
    p["images"].mkdir()
    for i in range(3):
        Image.new("RGB", (8, 8), (40 * i, 0, 0)).save(p["images"] / f"{i}.png")
    p["syntax"], p["imports"] = box / "syntax_error.py", box / "import_error.py"
    p["syntax"].write_text("class Mine(:\n    pass\n")
    p["imports"].write_text("import no_such_module_for_milan\n")
    p["file"] = box / "a-file.txt"
    p["file"].write_text("not a folder\n")
    p["folder"] = box / "a-folder"
    p["folder"].mkdir()
    return p


def _cases(p: dict[str, Path]) -> list[tuple[str, list[str], str]]:
    """(console script, argv, what the one stderr line must name)."""
    box, missing, new = p["box"], str(p["box"] / "missing"), str(p["box"] / "new-output")
    bad_shard = "train-00000-of-00001.parquet"
    exemplars = ["exemplars", "--model", "torchvision:resnet18", "--images", str(p["images"]),
                 "--layers", "layer4", "--name", "x", "--no-progress"]
    ev = ["--describer", "constant", "--root", str(p["corpus"]), "--configs", "synth-shallow-plain", "--no-progress"]
    de = ["--describer", "netdissect", "--units", str(p["corpus"]), "--no-progress"]
    cases = [
        ("milannotations", ["info", "--root", str(p["footer"])], bad_shard),
        ("milannotations", ["info", "--root", str(p["count"])], "records"),
        ("milannotations", ["info", "--root", missing], missing),
        ("milannotations", ["info", "--bogus"], "--bogus"),
        ("milannotations", ["build", "--zip-dir", str(box / "zips-junk"), "--out", new], "alexnet-imagenet.zip"),
        ("milannotations", ["build", "--zip-dir", str(box / "zips-csv"), "--out", new], "annotations.csv"),
        ("milannotations", ["build", "--zip-dir", str(box / "zips-npy"), "--out", new], "masks.npy"),
        ("milannotations", ["build", "--zip-dir", missing, "--out", new], missing),
        ("milannotations", ["build", "--zip-dir", str(box / "zips-junk"), "--out", str(p["file"])], str(p["file"])),
        ("milannotations", ["build", "--zip-dir", str(box / "zips-junk"), "--out", str(box / "milannotations")],
         "milannotations"),
        ("milannotations", ["synth", "--out", "/proc/nope"], "/proc/nope"),
        ("milannotations", ["synth", "--out", new, "--units", "many"], "many"),
        ("milannotations", [*exemplars, "--out", new, "--k", "100"], "--k 100"),
        ("milannotations", [*exemplars, "--out", new, "--device", "tpu"], "tpu"),
        ("milannotations", [*exemplars, "--out", str(p["file"])], str(p["file"])),
        ("milannotations", [*exemplars[:4], missing, *exemplars[5:], "--out", new], missing),
        ("milan-eval", [*ev, "--device", "tpu"], "tpu"),
        ("milan-eval", [*ev, "--output", "/proc/nope"], "/proc/nope"),
        ("milan-eval", [*ev, "--output", str(p["file"])], str(p["file"])),
        ("milan-eval", [*ev, "--limit", "abc"], "abc"),
        ("milan-eval", [*ev, "--limit", "0"], "--limit"),
        ("milan-eval", [*ev, "--describer", f"{p['syntax']}:Mine"], str(p["syntax"])),
        ("milan-eval", [*ev, "--describer", f"{p['imports']}:Mine"], str(p["imports"])),
        ("milan-eval", [*ev, "--describer", f"{missing}.py:Mine"], missing),
        ("milan-eval", [*ev, "--describer-args", "text=a,text=b"], "'text'"),
        ("milan-eval", [*ev, "--root", str(p["footer"]), "--output", new], bad_shard),
        ("milan-eval", [*ev, "--root", missing, "--output", new], missing),
        ("milan-describe", [*de, "--units", missing], missing),
        ("milan-describe", [*de, "--units", str(p["file"])], str(p["file"])),
        ("milan-describe", [*de, "--units", str(p["footer"]), "--output", new], bad_shard),
        ("milan-describe", [*de, "--limit", "0", "--output", new], "--limit"),
        ("milan-describe", [*de, "--device", "tpu", "--output", new], "tpu"),
        ("milan-describe", [*de, "--output", str(p["folder"])], str(p["folder"])),
        ("milan-describe", [*de, "--output", "/proc/nope/d.csv"], "/proc/nope/d.csv"),
        ("milan-describe", [*de, "--describer", "constant", "--output", new], "constant"),
        ("milan-describe", [*de, "--describer", "milan", "--output", new], "checkpoint=PATH"),
        ("milan-describe", [*de, "--describer", f"{p['syntax']}:Mine", "--output", new], str(p["syntax"])),
        ("milan-leaderboard", ["validate", missing], missing),
        ("milan-leaderboard", ["validate", "--submissions", missing], missing),
        ("milan-leaderboard", ["rescore", "--device", "tpu", str(p["folder"])], "tpu"),
        ("milan-leaderboard", ["render", "--submissions", missing, "--out", new], missing),
        ("milan-leaderboard", ["render", "--out", "/proc/nope"], "/proc/nope"),
        ("milan-leaderboard", ["render", "--out", str(p["file"])], str(p["file"])),
        ("milan-leaderboard", ["submit", missing, "--submissions", new], missing),
        ("milan-leaderboard", ["validate", "--bogus"], "--bogus"),
    ]
    import torch

    if not torch.cuda.is_available():
        cases.append(("milan-eval", [*ev, "--device", "cuda"], "cuda"))
        cases.append(("milannotations", [*exemplars, "--out", new, "--device", "cuda"], "cuda"))
    return cases


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(f.relative_to(folder)): (f.stat().st_size, f.stat().st_mtime_ns)
            for f in folder.rglob("*") if f.is_file() or f.is_dir()}


def _env(p: dict[str, Path], tmp: Path) -> dict[str, str]:
    return {**os.environ, "XDG_CACHE_HOME": str(p["box"] / "empty-cache"), "HF_HOME": str(tmp / "hf"),
            "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "TORCH_HOME": str(tmp / "torch"), "MPLCONFIGDIR": str(tmp / "mpl")}


def _check(script: str, argv: list[str], names: str, rc: int, err: str) -> list[str]:
    lines = [x for x in err.splitlines() if x.strip()]
    problems = []
    if rc != 2:
        problems.append(f"exit {rc}")
    if "Traceback" in err:
        problems.append("traceback")
    if len(lines) != 1:
        problems.append(f"{len(lines)} stderr lines")
    elif names not in lines[0] or not lines[0].startswith(f"{script}"):
        problems.append(f"line does not name {names!r}")
    return [f"{script} {' '.join(argv)}: {', '.join(problems)}\n    {err.strip()[-600:]}"] if problems else []


def test_bad_inputs_are_refused_in_one_line(sandbox, tmp_path):
    cases = _cases(sandbox)
    (tmp_path / "cases.json").write_text(json.dumps([[s, a] for s, a, _ in cases]))
    (tmp_path / "err").mkdir()
    before = _snapshot(sandbox["box"])
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "cases.json"), str(tmp_path / "err")],
                          cwd=tmp_path, env=_env(sandbox, tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    failures = [f for (s, a, n), (rc, err, _s) in zip(cases, results) for f in _check(s, a, n, rc, err)]
    after = _snapshot(sandbox["box"])
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not failures, "\n".join(failures)
    assert not changed, f"files written or changed under the inputs' folder: {changed}"


@pytest.mark.parametrize("script,argv,names", [
    ("milannotations", ["info", "--root", "{footer}"], "train-00000-of-00001.parquet"),
    ("milan-eval", ["--describer", "constant", "--device", "tpu"], "tpu"),
    ("milan-describe", ["--describer", "netdissect", "--units", "{missing}"], "missing"),
])
def test_console_scripts_themselves(sandbox, tmp_path, script, argv, names):
    argv = [a.format(footer=sandbox["footer"], missing=sandbox["box"] / "missing") for a in argv]
    before = _snapshot(sandbox["box"])
    proc = subprocess.run([str(BIN / script), *argv], cwd=tmp_path, env=_env(sandbox, tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert not _check(script, argv, names, proc.returncode, proc.stderr)
    assert _snapshot(sandbox["box"]) == before


def test_help_is_for_users_and_docs_use_real_flags(capsys):
    from milannotations.cli import build_parser

    text = build_parser().format_help()
    assert "milannotations.commands" not in text and "subcommand lives" not in text
    eval_md = (ROOT / "docs" / "eval.md").read_text()
    assert "exemplars ... --output " in eval_md  # the common name (issue 17 item 7), which exemplars takes
    exemplars = build_parser()._subparsers._group_actions[0].choices["exemplars"]
    assert any(a.option_strings == ["--output"] for a in exemplars._actions)


def test_info_without_root_lists_the_synthetic_cache(sandbox, tmp_path, monkeypatch, capsys):
    from milannotations.cli import main

    synth = tmp_path / "milannotations" / "synth" / "v0-test"
    shutil.copytree(sandbox["corpus"], synth)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert str(synth) in out and "synth-shallow-plain" in out
