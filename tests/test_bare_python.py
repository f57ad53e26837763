"""The commands run with a Python that lacks the project's dependencies (a newcomer's `python3 -m bot check`
before any script set up an environment) say in one line which script sets one up, not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def bare(*args: str) -> subprocess.CompletedProcess:
    """Run `python -S ...` from the project root: -S leaves out site-packages, so none of the dependencies
    (numpy, h5py, telegram, TensorFlow) can be imported, as with a fresh system Python."""
    return subprocess.run([sys.executable, "-S", *args], cwd=ROOT, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("command", [["-m", "bot", "check"], ["-m", "bot", "chat"], ["-m", "bot", "stats"]])
def test_the_bot_without_its_dependencies_names_the_script_that_sets_them_up(command):
    r = bare(*command)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "lacks the bot's dependencies" in lines[0] and "./scripts/run.sh" in lines[0] and ".venv-bot" in lines[0]


@pytest.mark.parametrize("command", [["-m", "training", "--culture", "sufi"], ["-m", "training.train", "--culture", "sufi"]])
def test_training_without_its_dependencies_names_the_script_that_sets_them_up(command):
    r = bare(*command)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert "lacks training's dependencies" in lines[0] and "./scripts/test.sh" in lines[0] and ".venv" in lines[0]


def test_the_console_commands_are_declared_for_both_environments():
    """`proverbs` (the bot) and `proverbs-train` (training) are installed by pip into .venv-bot and .venv."""
    import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["scripts"]
    assert scripts == {"proverbs": "bot.__main__:command", "proverbs-train": "training.__main__:command"}
    import bot.__main__
    import training.__main__  # (imported, not run: its name is not "__main__")

    assert callable(bot.__main__.command) and callable(training.__main__.command)
