"""The checkout as a newcomer runs it: a single test file under bare `pytest`, from any folder."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bare_pytest_runs_one_test_file_from_another_folder(tmp_path):
    pytest_script = Path(sys.executable).with_name("pytest")
    cmd = [str(pytest_script)] if pytest_script.exists() else [sys.executable, "-m", "pytest"]
    env = {**os.environ, "PYTHONPATH": ""}
    out = subprocess.run([*cmd, "-q", "-p", "no:cacheprovider", str(ROOT / "tests" / "test_writer.py")],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert " passed" in out.stdout and "error" not in out.stdout.lower()
