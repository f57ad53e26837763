"""Static checks of Dockerfile, .dockerignore and compose.yaml (no container engine needed)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    out, buf = [], ""
    for line in path.read_text(encoding="utf-8").splitlines():
        if not buf and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if buf and line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.rstrip().endswith("\\"):
            buf += line.rstrip()[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages() -> dict[str, list[tuple[str, str]]]:
    """Stage name -> its instructions (FROM first), in file order."""
    out: dict[str, list[tuple[str, str]]] = {}
    current = None
    for ins, args in instructions():
        if ins == "FROM":
            m = re.fullmatch(r"(\S+)\s+AS\s+(\S+)", args, re.I)
            assert m, f"every stage is named: FROM {args}"
            current = m.group(2).lower()
            out[current] = []
        if current is not None:
            out[current].append((ins, args))
    return out


def closure(name: str, all_stages: dict) -> list[str]:
    """The stage and every stage it builds on or copies from."""
    seen, todo = [], [name]
    while todo:
        s = todo.pop()
        if s in seen or s not in all_stages:
            continue
        seen.append(s)
        for ins, args in all_stages[s]:
            if ins == "FROM":
                todo.append(args.split()[0].lower())
            m = re.search(r"--from=(\S+)", args) if ins == "COPY" else None
            if m:
                todo.append(m.group(1).lower())
    return seen


def exec_form(args: str) -> list[str]:
    """A JSON-array CMD/HEALTHCHECK argument, parsed (shell form fails the test)."""
    assert args.startswith("["), f"not exec form: {args}"
    return json.loads(args)


def test_base_image_is_a_build_argument():
    ins = instructions()
    assert ins[0] == ("ARG", "PYTHON_IMAGE=python:3.11-slim")
    names = set(stages())
    for word, args in ins:
        if word == "FROM":
            image = args.split()[0]
            assert image == "${PYTHON_IMAGE}" or image.lower() in names, f"FROM {args}"


def test_the_default_stage_is_the_bot():
    all_stages = stages()
    name, body = list(all_stages.items())[-1]
    assert name == "bot"
    cmd = [a for i, a in body if i == "CMD"]
    assert exec_form(cmd[-1]) == ["python", "-m", "bot"]  # exec form: python gets docker stop's SIGTERM
    assert ("STOPSIGNAL", "SIGTERM") in body
    health = [a for i, a in body if i == "HEALTHCHECK"][-1]
    assert exec_form(health[health.index("CMD") + 3:].strip())[:4] == ["python", "-m", "bot", "health"]


@pytest.mark.parametrize("stage", ["bot", "train"])
def test_stages_run_as_a_non_root_user(stage):
    user = [a for i, a in stages()[stage] if i == "USER"]
    assert user, f"{stage} has no USER"
    uid = user[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, f"USER {user[-1]}: use a numeric non-root uid"


def test_python_does_not_buffer_or_write_bytecode():
    env = " ".join(a for stage in closure("bot", stages()) for i, a in stages()[stage] if i == "ENV")
    assert "PYTHONDONTWRITEBYTECODE=1" in env and "PYTHONUNBUFFERED=1" in env


def test_the_bot_image_carries_no_tensorflow():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["dependencies"]
    assert not [d for d in deps if re.match(r"(tensorflow|keras|tf-keras)\b", d, re.I)], deps
    all_stages = stages()
    lineage = closure("bot", all_stages)
    assert "train" not in lineage and "train-deps" not in lineage, lineage
    for stage in lineage:
        for ins, args in all_stages[stage]:
            for install in re.findall(r"pip install[^&;|]*", args) if ins == "RUN" else []:
                assert "train" not in install and "tensorflow" not in install.lower(), install
    copied = {a.split()[0] for i, a in all_stages["bot"] if i == "COPY" and "--from" not in a}
    assert copied == {"charlm/", "bot/", "models/"}


def test_the_build_context_is_what_the_dockerfile_copies():
    ignore = [l.strip() for l in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
              if l.strip() and not l.startswith("#")]
    assert ignore[0] == "*", "a whitelist: .venv, .env, corpora and checkpoints never reach the build"
    allowed = {l[1:].rstrip("/") for l in ignore if l.startswith("!")}
    copied = set()
    for ins, args in instructions():
        if ins == "COPY" and "--from" not in args:
            copied.update(p.rstrip("/") for p in args.split()[:-1] if not p.startswith("--"))
    assert copied == allowed
    for path in allowed:
        if path != "models":  # the shipped bundles; a fresh clone may not have them yet
            assert (ROOT / path).exists(), path


def test_image_settings_are_bot_settings():
    from bot.settings import BotSettings

    env = {}
    for ins, args in stages()["bot"]:
        if ins == "ENV":
            env.update(dict(kv.split("=", 1) for kv in args.split()))
    fields = {f.upper() for f in BotSettings.model_fields}
    # DATA_DIR is for the subscriptions database; every other name must be a setting the bot reads
    unknown = set(env) - fields - {"DATA_DIR"}
    assert not unknown, f"the bot reads no such setting: {sorted(unknown)}"
    assert env["MODELS_DIR"] == "/app/models"


def test_healthcheck_command_tells_fresh_from_stale(tmp_path):
    health = [a for i, a in stages()["bot"] if i == "HEALTHCHECK"][-1]
    argv = exec_form(health[health.index("CMD") + 3:].strip())
    argv[0] = sys.executable
    beat = tmp_path / "heartbeat"
    env = {**os.environ, "HEARTBEAT_FILE": str(beat), "HEARTBEAT_INTERVAL": "15"}

    def status() -> int:
        return subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, timeout=60).returncode

    assert status() == 1  # no bot has written the heartbeat yet
    beat.write_text(f"{time.time()}\n")
    assert status() == 0
    old = time.time() - 3600
    os.utime(beat, (old, old))
    assert status() == 1  # a stuck bot stops refreshing it


def test_compose_runs_the_bot_and_offers_training_as_a_profile():
    text = (ROOT / "compose.yaml").read_text(encoding="utf-8")
    bot = text[text.index("\n  bot:"):text.index("\n  train:")]
    train = text[text.index("\n  train:"):]
    # a plain list: docker-compose 1.x and Compose v2 before 2.24 reject `{path: .env, required: false}`
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    assert re.search(r"env_file:\n\s+- \.env\n", bot) and "required:" not in code
    assert "restart: unless-stopped" in bot and "./models:/app/models" in bot and "bot-data:/data" in bot
    assert 'profiles: ["train"]' in train and "target: train" in train
    # training works in the clone itself: no folder for Docker to create (as root) on a fresh clone
    assert "- .:/project" in train and "working_dir: /project" in train
    assert not re.findall(r"- \./\w+:", train), "a bind mount of a folder a fresh clone may lack"


def test_trained_bundles_are_readable_by_the_images_user(tiny_models):
    umask = os.umask(0o022)
    os.umask(umask)
    if umask & 0o005:
        pytest.skip(f"umask {umask:03o} keeps files from other users on purpose")
    for bundle in (tiny_models / "alpha", tiny_models / "beta"):
        # the bot image runs as uid 10001: a mounted models folder must be readable by other users
        assert bundle.stat().st_mode & 0o005 == 0o005, f"{bundle} is {bundle.stat().st_mode & 0o777:03o}"
        for f in bundle.iterdir():
            assert f.stat().st_mode & 0o004, f"{f} is {f.stat().st_mode & 0o777:03o}"
