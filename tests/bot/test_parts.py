"""The bot's pure parts: argument parsing, reply length, log scrubbing, texts (limits: test_limits.py)."""

from __future__ import annotations

import io
import logging

import pytest

from bot.commands import ArgError, ProverbArgs, command_entity_length, entity_command, parse_args, replay_command
from bot.logs import REDACTED, Redactor, RedactingFormatter
from bot.replies import TELEGRAM_LIMIT, fit, proverb_reply
from bot.texts import TEXTS, lang_of
from charlm import Result


def test_a_command_is_what_its_entity_marks_and_the_rest_is_everything_after():
    text = "/Sufi@ProverbsBot  Однажды\nмудрец"
    c = entity_command(text, command_entity_length(text))
    assert (c.name, c.mention, c.rest) == ("sufi", "ProverbsBot", "Однажды\nмудрец")
    # punctuation and invisible characters end the command (as Telegram marks it) and are not the prefix
    for text in ("/sufi", "/sufi,", "/sufi!", "/sufi…", "/sufi\u200b", "/sufi\u200f", "/sufi\u2060 "):
        c = entity_command(text, command_entity_length(text))
        assert (c.name, c.mention, c.rest) == ("sufi", None, ""), repr(text)
    assert entity_command("/sufi,Однажды мудрец", 5).rest == "Однажды мудрец"
    # the entity's length counts UTF-16 units, as Telegram's offsets do
    assert entity_command("/sufi 😀 мудрец", 5).rest == "😀 мудрец"
    assert command_entity_length("sufi") == 0 and command_entity_length("/") == 0


def test_parse_args_options_anywhere():
    assert parse_args("Однажды мудрец t=0.6 seed=42") == ProverbArgs("Однажды мудрец", 0.6, 42)
    assert parse_args("seed=7 Однажды TEMP=0,5") == ProverbArgs("Однажды", 0.5, 7)
    assert parse_args("") == ProverbArgs()
    assert parse_args("Одна\u200bжды\u200f seed=\u200b7") == ProverbArgs("Однажды", None, 7)  # invisible characters dropped
    for bad, key in [("t=abc", "bad_temperature"), ("t=3", "bad_temperature"), ("seed=-1", "bad_seed"),
                     ("seed=1e3", "bad_seed"), ("seed=9999999999", "bad_seed"), ("seed=²", "bad_seed")]:
        with pytest.raises(ArgError) as e:
            parse_args(bad, max_temperature=2.0)
        assert e.value.key == key
    assert replay_command("sufi", ProverbArgs("Однажды", 0.5), 42) == "/sufi Однажды t=0.5 seed=42"
    assert replay_command("sufi", ProverbArgs(), 7) == "/sufi seed=7"


def test_replies_fit_telegram():
    long = Result(text="слово " * 2000, seed=1, ended="length", attempts=1)
    reply = proverb_reply(long, "/sufi seed=1")
    assert len(reply) <= TELEGRAM_LIMIT and reply.endswith("…\n\n/sufi seed=1")
    assert fit("короткий текст") == "короткий текст"
    assert proverb_reply(Result("", 3, "line", 6), "/sufi seed=3") == "…\n\n/sufi seed=3"


def test_redaction_covers_messages_args_and_tracebacks():
    token = "123:ABC-secret_xyz"
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(RedactingFormatter(Redactor([token])))
    log = logging.getLogger("test.redaction")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("POST https://api.telegram.org/bot%s/getMe", token)
        log.warning("encoded %s", "123%3AABC-secret_xyz")
        try:
            raise RuntimeError(f"failed https://api.telegram.org/bot{token}/sendMessage")
        except RuntimeError:
            log.exception("boom")
    finally:
        log.removeHandler(handler)
    out = stream.getvalue()
    assert "ABC-secret_xyz" not in out and out.count(REDACTED) == 3
    assert "Traceback" in out and "RuntimeError: failed https://api.telegram.org/bot[REDACTED]/sendMessage" in out


def test_texts_have_both_languages():
    assert all(set(v) == {"ru", "en"} for v in TEXTS.values())
    assert lang_of("en-US") == "en" and lang_of("uk") == "ru" and lang_of(None) == "ru"


def _blas_threads() -> list[int]:
    from threadpoolctl import threadpool_info

    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_generation_workers_run_blas_on_one_thread():
    # N workers x one BLAS thread per core each spun on the cores: 8x the CPU per reply (bench/bot_load.py).
    # A real worker (its initializer runs before this module is imported there): a limit set before numpy
    # was loaded did not hold (2 threads on 2 CPUs).
    from bot.workers import process_pool

    with process_pool(1) as pool:
        threads = pool.submit(_blas_threads).result(timeout=120)
    assert threads and set(threads) == {1}
