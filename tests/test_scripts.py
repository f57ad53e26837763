"""scripts/test.sh installs the project only when pyproject.toml changed since its last install, and
without setuptools' banner: run here on a copy whose .venv/bin/python records what it is asked to do."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/bin/sh
echo "$* PYTHONWARNINGS=${PYTHONWARNINGS:-}" >> "$(dirname "$0")/../calls"
"""


def project(tmp_path: Path) -> Path:
    """A copy of scripts/test.sh and pyproject.toml with a .venv whose python only logs its arguments."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(ROOT / "scripts" / "test.sh", tmp_path / "scripts" / "test.sh")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bin_dir = tmp_path / ".venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(FAKE_PYTHON)
    (bin_dir / "python").chmod(0o755)
    return tmp_path


def run(root: Path) -> list[str]:
    """Run scripts/test.sh -q; -> the python calls it made (and forget them)."""
    subprocess.run(["bash", str(root / "scripts" / "test.sh"), "-q"], check=True, timeout=60, capture_output=True)
    calls = root / ".venv" / "calls"
    lines = calls.read_text().splitlines()
    calls.unlink()
    return lines


def test_a_second_run_does_not_reinstall_an_unchanged_project(tmp_path):
    root = project(tmp_path)
    first = run(root)
    assert any("pip install -q -e .[train,dev]" in c for c in first), first
    # no "Editable installation" banner: setuptools' BuildBackendWarning is a Python warning, silenced for pip
    assert all(c.endswith("PYTHONWARNINGS=ignore") for c in first if " pip " in f" {c} "), first
    assert first[-1].startswith("-m pytest -q") and first[-1].endswith("PYTHONWARNINGS="), first

    assert run(root) == ["-m pytest -q PYTHONWARNINGS="]  # nothing but the tests

    with (root / "pyproject.toml").open("a") as f:
        f.write("\n# a change\n")
    assert any("pip install -q -e .[train,dev]" in c for c in run(root))
