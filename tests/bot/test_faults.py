"""The bot under faults (issue 16): bad updates, a revoked token, odd commands, dead workers, lost sends."""

from __future__ import annotations

import logging
import signal
import subprocess

from .conftest import PYTHON, bot_env
from .fakeapi import FakeBotAPI, message
from .test_process import run_bot

SECRET_WORDS = "тайное-слово-пользователя"


def test_an_update_the_library_cannot_read_is_skipped_once_without_its_contents(api, start_bot, caplog):
    caplog.set_level(logging.INFO)  # (at DEBUG, python-telegram-bot logs every request and answer in full)
    start_bot()
    # a poll as an older self-hosted Bot API server sends it: fields python-telegram-bot requires are missing
    api.push(poll={"id": "p1", "question": SECRET_WORDS, "options": [{"text": SECRET_WORDS, "voter_count": 1}]})
    api.send_text(11, "/start")
    reply = api.wait_sent(11)[0]
    assert "Здравствуйте" in reply
    skipped = [r for r in caplog.records if "cannot read" in r.getMessage()]
    assert len(skipped) == 1, [r.getMessage() for r in skipped]
    assert "poll" in skipped[0].getMessage()
    assert SECRET_WORDS not in caplog.text, "a user's words reached the log"
    # the bad update was confirmed with the rest: it is not fetched again and again
    assert len(api.calls_of("getUpdates")) < 10


def test_an_unreadable_getupdates_answer_is_retried_with_backoff(api, start_bot):
    start_bot()
    api.wait_for(lambda: api.calls_of("getUpdates"), 10, "the first poll")
    api.fail("getUpdates", body='{"ok": true, "result": {"not": "a list"}}', times=3)
    api.fail("getUpdates", body="<html>502 Bad Gateway</html>", times=1)
    first = len(api.calls_of("getUpdates"))  # the poll in flight now is answered normally; the next 4 are not
    polls = api.wait_for(lambda: len(api.calls_of("getUpdates")) >= first + 5 and api.calls_of("getUpdates"), 60,
                         "four unreadable answers and a good one")
    # each retry after an unreadable answer waits (1 s, 1.5 s, 2.25 s, ...), never at once
    gaps = [polls[i + 1].t - polls[i].t for i in range(first, first + 4)]
    assert all(g >= 0.9 for g in gaps), gaps
    api.send_text(12, "/help")
    assert "/alpha" in api.wait_sent(12, timeout=30)[0]


def _serve(api, models, tmp_path, **env):
    return subprocess.Popen([PYTHON, "-m", "bot"], env=bot_env(api, models, tmp_path, GENERATION_PROCESSES="0", **env),
                            cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def _health(api, models, tmp_path) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "bot", "health"], env=bot_env(api, models, tmp_path), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)


def _ends_for_good(tiny_models, tmp_path, status: int, description: str) -> tuple[subprocess.CompletedProcess, str]:
    with FakeBotAPI() as api:
        proc = _serve(api, tiny_models, tmp_path)
        try:
            api.wait_for(lambda: api.calls_of("getUpdates"), 60, "the bot to poll")
            assert _health(api, tiny_models, tmp_path).returncode == 0
            api.fail("getUpdates", status=status, description=description, times=1000)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        health = _health(api, tiny_models, tmp_path)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), health


def test_a_revoked_token_ends_the_process_and_fails_health(tiny_models, tmp_path):
    proc, health = _ends_for_good(tiny_models, tmp_path, 401, "Unauthorized")
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "rejected BOT_TOKEN" in last
    assert "Traceback" not in proc.stderr
    assert health.returncode == 1 and "rejected BOT_TOKEN" in health.stderr


def test_a_second_poller_ends_the_process_and_fails_health(tiny_models, tmp_path):
    proc, health = _ends_for_good(tiny_models, tmp_path, 409,
                                  "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running")
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "another process polls" in last
    assert health.returncode == 1


def test_a_command_followed_by_punctuation_or_an_invisible_character_is_answered(api, start_bot):
    start_bot()
    for i, text in enumerate(["/alpha,", "/alpha!", "/alpha…", "/alpha\u200b", "/alpha\u200f", "/al,Однажды",
                              "/alpha seed=²"]):
        chat = 100 + i
        api.send_text(chat, text)
        reply = api.wait_sent(chat)[0]
        assert "Что-то пошло не так" not in reply, (text, reply)
        if "seed" in text:
            assert "Зерно" in reply  # the polite usage line
        else:
            assert "\n\n/alpha " in reply, (text, reply)  # a proverb, with its replay footer
    assert api.sent(105)[0].split("\n\n")[-1].startswith("/alpha Однажды seed=")
