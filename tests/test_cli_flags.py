"""Common flags (issue 17 item 7) and loud failures of the project's own modules (item 8)."""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from milannotations.cli import COMMON_FLAGS, DEPRECATED_ALIASES

ROOT = Path(__file__).resolve().parents[1]


def _parsers():
    """(name, parser) of every console script and subcommand, and of `python -m leaderboard.seed`."""
    from eval.cli import build_describe_parser, build_eval_parser
    from leaderboard.cli import build_parser as leaderboard_parser
    from leaderboard.seed import build_parser as seed_parser
    from milannotations.cli import build_parser as corpus_parser

    out = []
    for top in (corpus_parser(), leaderboard_parser(), build_eval_parser(), build_describe_parser(), seed_parser()):
        subs = [a for a in top._actions if isinstance(a, argparse._SubParsersAction)]
        out.append((top.prog, top))
        for sub in subs:
            out.extend((p.prog, p) for p in sub.choices.values())
    return out


PARSERS = _parsers()


def test_every_console_script_is_covered():
    progs = {name for name, _ in PARSERS}
    for sub in ("download", "build", "join", "push", "info", "exemplars", "synth"):
        assert f"milannotations {sub}" in progs
    assert {"milan-eval", "milan-describe", "milan-leaderboard render", "milan-leaderboard validate"} <= progs


@pytest.mark.parametrize("name,parser", PARSERS, ids=[n for n, _ in PARSERS])
def test_common_flags_have_the_common_names(name, parser):
    for action in parser._actions:
        if not action.option_strings:
            continue
        visible = action.help is not argparse.SUPPRESS
        if action.dest in COMMON_FLAGS:
            flag = COMMON_FLAGS[action.dest]
            if visible:
                assert action.option_strings == [flag], f"{name}: {action.option_strings} should be {flag}"
            else:  # a hidden old spelling that must not override the real flag's default
                assert set(action.option_strings) <= set(DEPRECATED_ALIASES), f"{name}: {action.option_strings}"
                assert action.default is argparse.SUPPRESS
        for opt in action.option_strings:
            if opt in DEPRECATED_ALIASES:
                assert not visible, f"{name}: old spelling {opt} shown in --help"
                assert action.default is argparse.SUPPRESS
            # a name that means one of the common flags but is spelled otherwise
            assert opt not in ("--outdir", "--output-dir", "--progress", "--cuda", "--max-units"), f"{name}: {opt}"
        if action.dest in ("out", "folder", "quiet"):
            pytest.fail(f"{name}: {action.option_strings} sets args.{action.dest}, not the common attribute")


@pytest.mark.parametrize("argv,dest,value", [
    (["build", "--zip-dir", "z", "--out", "o"], "output", "o"),
    (["join", "--out", "o"], "output", "o"),
    (["download", "--out", "o"], "output", "o"),
    (["synth", "--out", "o", "--quiet"], "output", Path("o")),
    (["synth", "--quiet"], "no_progress", True),
    (["exemplars", "--model", "m", "--images", "i", "--layers", "l", "--name", "n", "--out", "o"], "output", Path("o")),
    (["exemplars", "--model", "m", "--images", "i", "--layers", "l", "--name", "n", "--output", "o"], "output", Path("o")),
    (["push", "--repo-id", "a/b", "--folder", "f"], "root", "f"),
    (["push", "--repo-id", "a/b", "--root", "f"], "root", "f"),
    (["build", "--zip-dir", "z"], "output", None),
    (["synth"], "no_progress", False),
])
def test_old_spellings_still_work(argv, dest, value):
    from milannotations.cli import build_parser

    assert getattr(build_parser().parse_args(argv), dest) == value


def test_render_keeps_out():
    from leaderboard.cli import build_parser

    assert build_parser().parse_args(["render", "--out", "x"]).output == "x"
    assert build_parser().parse_args(["render"]).output is None


def test_exemplars_still_requires_an_output(capsys):
    from milannotations.cli import main

    with pytest.raises(SystemExit) as e:
        main(["exemplars", "--model", "m", "--images", "i", "--layers", "l", "--name", "n"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "--output" in err and len(err.strip().splitlines()) == 1


# item 8: the project's own modules fail loudly


def test_a_missing_command_module_is_raised(monkeypatch):
    import milannotations.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", (*cli.COMMANDS, "no_such_command"))
    with pytest.raises(ModuleNotFoundError, match="no_such_command"):
        cli.build_parser()


def test_a_missing_builtin_describer_module_is_raised(monkeypatch):
    from baselines import registry

    monkeypatch.setattr(registry, "_BUILTIN_MODULES", (*registry._BUILTIN_MODULES, "baselines.no_such_module"))
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        registry.available_describers()


def test_an_import_error_while_loading_a_split_is_not_disguised(monkeypatch):
    from eval import splits

    def broken(*a, **k):
        raise ImportError("a packaging bug")

    monkeypatch.setattr(splits, "load", broken)
    with pytest.raises(ImportError, match="a packaging bug"):
        splits._load_configs(["synth-deep-plain"], "test", root="somewhere")


def test_the_synthetic_backbone_import_is_not_disguised(monkeypatch):
    from baselines.milan import backbones

    monkeypatch.setitem(sys.modules, "milannotations.synth.backbone", None)
    with pytest.raises(ImportError):
        backbones._synth("cpu")


def test_importing_the_writer_starts_no_thread():
    code = ("import threading; before = threading.active_count(); import milannotations.writer as w; "
            "assert threading.active_count() == before, (before, threading.active_count()); "
            "assert w._POOL is None; print('ok')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr
