"""The command line: generate, check, chat (the same handlers in a terminal), and the no-token fallback."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import re
import shutil
import subprocess

from .conftest import PYTHON, bot_env


# generous: on a shared 2-core machine under load one start of `python -m bot` has taken 90 s
TIMEOUT = 300


def cli(args: list[str], env: dict, cwd, stdin: str | None = None, timeout: float = TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "bot", *args], env=env, cwd=cwd, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def test_generate_is_deterministic_with_seeds_s_plus_i(tiny_models, tmp_path):
    env = bot_env(None, tiny_models, tmp_path)
    a = cli(["generate", "alpha", "-n", "3", "--seed", "1"], env, tmp_path)
    assert a.returncode == 0, a.stderr
    b = cli(["generate", "al", "-n", "3", "--seed", "1"], env, tmp_path)  # an alias, another process
    assert a.stdout == b.stdout
    blocks = a.stdout.strip().split("\n\n")
    assert [blk.splitlines()[0] for blk in blocks] == ["seed=1", "seed=2", "seed=3"]
    j = cli(["generate", "alpha", "-n", "3", "--seed", "1", "--json"], env, tmp_path)
    rows = json.loads(j.stdout)
    assert [r["seed"] for r in rows] == [1, 2, 3]
    assert [r["text"] for r in rows] == ["\n".join(blk.splitlines()[1:]) for blk in blocks]
    # request i with seed S+i is the same as asking for seed S+i alone
    single = json.loads(cli(["generate", "alpha", "--seed", "2", "--json"], env, tmp_path).stdout)
    assert single[0]["text"] == rows[1]["text"]
    p = json.loads(cli(["generate", "beta", "--seed", "5", "--prefix", "Однажды", "-t", "0.3", "--json"], env, tmp_path).stdout)
    assert p[0]["text"].startswith("Однажды") and p[0]["temperature"] == 0.3


def test_generate_errors_are_one_line(tiny_models, tmp_path):
    env = bot_env(None, tiny_models, tmp_path)
    r = cli(["generate", "nope"], env, tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "alpha, beta" in r.stderr
    r = cli(["generate", "alpha", "--prefix", "Hello"], env, tmp_path)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'H'" in r.stderr


def test_check_passes_and_catches_a_broken_bundle(tiny_models, tmp_path):
    env = bot_env(None, tiny_models, tmp_path)
    r = cli(["check"], env, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.splitlines() == [l for l in r.stdout.splitlines() if l.startswith("ok")] and len(r.stdout.splitlines()) == 2
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    manifest = json.loads((models / "beta" / "manifest.json").read_text())
    manifest["golden"][0]["text"] = "не то"
    (models / "beta" / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False))
    r = cli(["check"], bot_env(None, models, tmp_path), tmp_path)
    assert r.returncode == 1
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ok   alpha") and lines[1].startswith("FAIL beta") and "seed=1" in lines[1]
    r = cli(["check"], bot_env(None, tmp_path / "nothing", tmp_path), tmp_path)
    assert r.returncode == 1 and "no bundles" in r.stderr


def test_chat_uses_the_same_handlers(tiny_models, tmp_path):
    env = bot_env(None, tiny_models, tmp_path)
    lines = "/start\n/alpha seed=7\n/al seed=7\n/nonsense\nпривет\n/alpha Hello\n@bot beta\n"
    r = cli(["chat"], env, tmp_path, stdin=lines)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Здравствуйте" in out and "/alpha, /al" in out
    assert out.count("/alpha seed=7") == 2
    blocks = out.split("\n\n")
    i = blocks.index("/alpha seed=7")
    j = blocks.index("/alpha seed=7", i + 1)
    assert blocks[i - 1] == blocks[j - 1]  # the same seed gives the same proverb
    assert "Не знаю команды /nonsense" in out and "Я отвечаю на команды" in out and "«H»" in out
    assert "[1] Beta" in out and "[3] Beta" in out
    # the same proverb as `generate`
    g = cli(["generate", "alpha", "--seed", "7"], env, tmp_path)
    assert g.stdout.strip().split("\n", 1)[1] == blocks[i - 1]
    en = cli(["chat", "--lang", "en"], env, tmp_path, stdin="/help\n")
    assert "Pick one" in en.stdout
    # the help's words for the buttons say what [🔄] does: a new parable, not "the same one again"
    assert "🔄 новая притча из того же сборника" in out and "такая же" not in out
    assert "🔄 a new parable from the same collection" in en.stdout
    assert "@bot alpha" in out and "proverbs_bot" not in out  # typed here, it works; no real bot is named


def test_no_token_on_a_terminal_falls_back_to_the_chat(tiny_models, tmp_path):
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen([PYTHON, "-m", "bot"], env=bot_env(None, tiny_models, tmp_path), cwd=tmp_path,
                                stdin=slave, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        os.write(master, "/alpha seed=3\n".encode())
        os.write(master, b"\x04")  # Ctrl-D: end of input
        out, err = proc.communicate(timeout=TIMEOUT)
    finally:
        os.close(master)
        os.close(slave)
    assert proc.returncode == 0, err
    assert "BOT_TOKEN is not set" in err and err.count("\n") == 1
    assert "/alpha seed=3" in out


def test_chat_presses_buttons_by_number_has_no_rate_limit_and_quits(tiny_models, tmp_path):
    import asyncio
    import sqlite3

    from bot.subscriptions.db import database_url
    from bot.subscriptions.store import Store

    data = tmp_path / "data"
    data.mkdir()

    async def make_bot_database() -> None:  # as the Telegram bot's first start leaves it
        await (await Store.open(database_url(data))).close()

    asyncio.run(make_bot_database())
    env = bot_env(None, tiny_models, tmp_path, DATA_DIR=str(data), USER_RATE_LIMIT="3")
    many = "".join(f"/alpha seed={i}\n" for i in range(12))  # four times the per-user limit
    lines = many + "2\n2\n3\n1\n4\n9\n/about alpha\n/subscribe alpha 08:30\n/exit\n/beta seed=1\n"
    r = cli(["chat"], env, tmp_path, stdin=lines)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert all(f"/alpha seed={i}\n" in out for i in range(12)), "a command got no reply"
    assert "Не так быстро" not in out
    assert "[1 🔄 Ещё]  [2 👍]  [3 👎]  [4 ↗ Поделиться]" in out
    assert "(👍 Спасибо, учтено)" in out and "(Вы уже поставили 👍)" in out and "(Оценка изменена на 👎)" in out
    assert out.count("/alpha seed=") >= 13  # 12 commands and the proverb [🔄] gave
    # [↗] shows what a reader would paste: the replay command of the proverb under it, no made-up bot name
    before, shared, _ = out.partition("↗ /")
    assert shared, "no replay command after [↗]"
    last = re.findall(r"\n(/alpha seed=\d+)\n\n\[1 🔄 Ещё\]", before)[-1]  # the replay line of the proverb [🔄] gave
    assert f"↗ {last}\n(по этой команде бот пришлёт ту же притчу" in out
    assert "proverbs_bot" not in out
    assert "(кнопки: от 1 до 4)" in out
    assert "Оценки читателей: 1, понравилось 0%" in out  # the console keeps its own votes...
    assert "Готово: притча из сборника «Alpha» (/alpha) каждый день в 08:30" in out
    assert "/beta seed=1" not in out, "/exit did not leave"
    assert "Не знаю команды" not in out
    # ...apart from the bot's database: `stats` reports Telegram readers only, and the bot has no daily
    # proverb to send to the console's made-up chat
    stats = cli(["stats"], env, tmp_path)
    assert stats.returncode == 0 and stats.stdout.strip() == "no votes yet", stats.stdout + stats.stderr
    with contextlib.closing(sqlite3.connect(data / "bot.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM subscriptions").fetchone() == (0,)
    with contextlib.closing(sqlite3.connect(data / "console.sqlite3")) as db:
        assert db.execute("SELECT count(*) FROM votes").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM subscriptions").fetchone() == (1,)


def test_english_help_gives_an_example_the_model_accepts(tiny_models, tmp_path):
    env = bot_env(None, tiny_models, tmp_path)
    help_text = cli(["chat", "--lang", "en"], env, tmp_path, stdin="/help\n").stdout
    example = next(line for line in help_text.splitlines() if line.startswith("Start the parable"))
    command = example.split(": ", 1)[1].split(" (")[0]
    assert command == "/alpha Однажды" and "models write Russian" in example
    r = cli(["chat", "--lang", "en"], env, tmp_path, stdin=command + "\n")
    assert "does not know" not in r.stdout and "\n\n/alpha Однажды seed=" in r.stdout


def _expect(master: int, proc, want: bytes, count: int, seen: bytearray, timeout: float = TIMEOUT) -> None:
    """Read the terminal into `seen` until `want` has appeared `count` times."""
    import select
    import time

    deadline = time.monotonic() + timeout
    while seen.count(want) < count:
        assert time.monotonic() < deadline and proc.poll() is None, f"no {want!r} in {bytes(seen)[-500:]!r}"
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            seen.extend(os.read(master, 65536))


def test_chat_on_a_terminal_has_line_editing_and_history(tiny_models, tmp_path):
    master, slave = pty.openpty()
    env = bot_env(None, tiny_models, tmp_path, HOME=str(tmp_path), TERM="xterm")
    seen = bytearray()
    try:
        proc = subprocess.Popen([PYTHON, "-m", "bot", "chat"], env=env, cwd=tmp_path, stdin=slave, stdout=slave,
                                stderr=subprocess.PIPE)
        _expect(master, proc, b"/quit", 1, seen)  # the banner
        _expect(master, proc, b"> ", 1, seen)  # each line is typed at the prompt, as a person would
        os.write(master, b"/alpha seed=3\r")
        _expect(master, proc, b"\r\n/alpha seed=3\r\n", 1, seen)
        _expect(master, proc, b"> ", 2, seen)
        os.write(master, b"\x1b[A\r")  # Up arrow: the last line again
        _expect(master, proc, b"\r\n/alpha seed=3\r\n", 2, seen)
        _expect(master, proc, b"> ", 3, seen)
        os.write(master, b"/quit\r")
        proc.wait(TIMEOUT)
    finally:
        os.close(master)
        os.close(slave)
    out = bytes(seen).decode("utf-8", "replace")
    assert proc.returncode == 0, proc.stderr.read()
    assert "Не знаю команды" not in out and "^[[A" not in out
    assert "/alpha seed=3" in (tmp_path / ".proverb_bot_history").read_text()


def _edit(folder, **fields):
    m = json.loads((folder / "manifest.json").read_text())
    m.update(fields)
    (folder / "manifest.json").write_text(json.dumps(m, ensure_ascii=False))


SCENARIOS = {
    "reserved name": (lambda d: _edit(d / "beta", name="help"), "/help"),
    "two bundles of one name": (lambda d: shutil.copytree(d / "beta", d / "beta2"), "two bundles are named 'beta'"),
    "aliases null": (lambda d: _edit(d / "beta", aliases=None), "aliases"),
    "temperature 99": (lambda d: _edit(d / "beta", generation={"temperature": 99}), "generation"),
    "no manifest": (lambda d: (d / "beta" / "manifest.json").unlink(), "manifest.json"),
}


def test_check_and_startup_refuse_the_same_bundles(tiny_models, tmp_path):
    from bot.app import reserved_commands
    from bot.catalog import Catalog
    from bot.errors import StartupError

    import pytest

    for i, (scenario, (spoil, said)) in enumerate(SCENARIOS.items()):
        models = tmp_path / f"models{i}"
        shutil.copytree(tiny_models, models)
        spoil(models)
        r = cli(["check"], bot_env(None, models, tmp_path), tmp_path)
        assert r.returncode == 1, (scenario, r.stdout, r.stderr)
        fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL")]
        assert fails and said in fails[0] and "Traceback" not in r.stderr, (scenario, r.stdout, r.stderr)
        with pytest.raises(StartupError) as e:
            Catalog.load(models, reserved_commands())  # as startup loads them
        assert said in str(e.value), (scenario, str(e.value))


def test_check_finds_a_listed_word_in_the_proverbs_a_bundle_serves(tiny_models, tmp_path):
    from tests.conftest import make_bundle

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    # a model that knows almost nothing but «водка» (a listed word): every fresh candidate says it too
    make_bundle(models, "drinker", text="водка водка водка. водка водка.\n" * 120)
    r = cli(["check", "--proverbs", "40"], bot_env(None, models, tmp_path), tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    fails = [l for l in r.stdout.splitlines() if l.startswith("FAIL")]
    assert len(fails) == 1 and fails[0].startswith("FAIL drinker") and "of 40 proverbs say a listed word" in fails[0]
    assert "«водка" in fails[0]
    assert "none of 40 proverbs says a listed word" in r.stdout  # alpha and beta
    r = cli(["check", "--proverbs", "0"], bot_env(None, models, tmp_path), tmp_path)
    assert r.returncode == 0 and "listed word" not in r.stdout
