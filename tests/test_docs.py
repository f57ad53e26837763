"""The README tells the truth: it stays short, its commands exist with the options it gives, its proverb is
what the shipped model writes, and its panel figures are docs/quality.md's."""

import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_readme_is_a_newcomers_page():
    assert len(README.splitlines()) <= 160


def commands() -> list[list[str]]:
    """Every `python -m MODULE ...` line of the README's sh blocks (continuation lines joined), as argv."""
    out = []
    for block in re.findall(r"```sh\n(.*?)```", README, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("  #")[0].strip()
            m = re.search(r"(?:^|\s)(?:\.venv(?:-bot)?/bin/)?python3? -m (\S.*)$", line)
            if m:
                out.append(shlex.split(m.group(1).split("&&")[0]))
    return out


def test_every_command_in_the_readme_exists_with_the_options_it_uses():
    cmds = commands()
    assert len(cmds) >= 8
    for argv in cmds:
        module, rest = argv[0], argv[1:]
        sub = [rest[0]] if rest and not rest[0].startswith("-") and module in ("bot", "training.corpora") else []
        p = subprocess.run([sys.executable, "-m", module, *sub, "--help"], cwd=ROOT, capture_output=True, text=True,
                           timeout=300, env={"PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3", "HOME": str(ROOT)})
        assert p.returncode == 0, (argv, p.stderr[-500:])
        for opt in (a.lstrip("[").split("=")[0] for a in rest if a.lstrip("[").startswith("--")):
            assert opt in p.stdout, (argv, opt)


def test_the_readmes_proverb_is_what_the_shipped_model_writes():
    m = re.search(r"\(`/sufi seed=(\d+)`\):\n\n((?:> .*\n)+)", README)
    assert m, "the README shows one proverb with its replay command"
    seed, quoted = int(m.group(1)), "\n".join(l[2:] for l in m.group(2).rstrip("\n").split("\n"))
    from charlm import Request, load_bundle

    sufi = load_bundle(ROOT / "models" / "sufi")
    text = sufi.generate([Request(seed, "", sufi.defaults)])[0].text
    assert quoted == text.replace("\u2029", "\n")


def test_the_readmes_panel_figures_are_those_of_docs_quality():
    m = re.search(r"grammar ([\d.]+),\s+sense ([\d.]+)\s+and\s+parable ([\d.]+)\s+out of 5", README)
    assert m, "the README gives the new models' panel figures"
    quality = (ROOT / "docs" / "quality.md").read_text(encoding="utf-8")
    row = re.search(r"^\s*new\s+all\s+\d+\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)", quality.split("## Round ")[1], flags=re.M)
    assert row and row.groups() == m.groups()
