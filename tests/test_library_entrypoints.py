"""Library bodies of two commands, callable from a notebook: the Hub checks and the board seeding."""
from __future__ import annotations

import pytest

from milannotations.errors import MilanError


def test_hub_checks_are_library_code_the_command_only_reexports(tmp_path):
    from milannotations import hub
    from milannotations.commands import push as command

    assert command.push is hub.push and command.check_built_folder is hub.check_built_folder
    (tmp_path / "README.md").write_text("no yaml header")
    with pytest.raises(MilanError, match="not a built corpus"):
        hub.check_built_folder(tmp_path)
    with pytest.raises(MilanError, match="NAMESPACE/NAME"):
        hub.push(tmp_path, "no-namespace", api=object())  # the repo id is checked before anything is sent


def test_seed_board_runs_every_command_then_validates_and_renders_only_on_success():
    from leaderboard.seeding import BOARD, seed_board

    constant = [e for e in BOARD if e.describer == "constant"]
    ran: list[list[str]] = []
    lines: list[str] = []

    def runner(rc_validate: int):
        def run(cmd: list[str]) -> int:
            ran.append(cmd)
            return rc_validate if "validate" in cmd else 0
        return run

    ok = seed_board(constant, ["within-network", "across-domain"], run=runner(0), log=lines.append)
    assert ok.ok and ok.failed == [] and (ok.validate_rc, ok.render_rc) == (0, 0)
    assert [c[c.index("--protocol") + 1] for c in ok.commands] == ["within-network", "across-domain"]
    assert [c[-1] for c in ran[2:]] == ["validate", "render"] and len(ran) == 4
    assert sum(line.startswith("$ ") for line in lines) == 4
    ran.clear()
    bad = seed_board(constant, ["within-network"], run=runner(1), log=lines.append)
    assert not bad.ok and bad.validate_rc == 1 and bad.render_rc is None and ran[-1][-1] == "validate"
    ran.clear()
    dry = seed_board(constant, ["within-network"], dry_run=True, run=runner(0), log=lines.append)
    assert ran == [] and len(dry.commands) == 1 and dry.validate_rc is None and dry.ok
