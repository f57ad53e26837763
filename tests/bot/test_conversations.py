"""Scripted conversations with the real bot (bot.app.run in a thread) through the fake Bot API."""

from __future__ import annotations

import time

import pytest

from charlm import load_bundle

from .fakeapi import message


def ask(api, chat_id: int, text: str, lang: str = "ru", timeout: float = 20.0) -> str:
    """Send `text` from a private chat and return the next message the bot sends there."""
    before = len(api.sent(chat_id))
    api.send_text(chat_id, text, lang=lang)
    return api.wait_sent(chat_id, before + 1, timeout)[before]


def proverb_and_footer(reply: str) -> tuple[str, str]:
    body, _, footer = reply.rpartition("\n\n")
    return body, footer


def test_start_lists_cultures_and_sets_the_menu(api, start_bot):
    start_bot()
    reply = ask(api, 1, "/start")
    assert "Здравствуйте" in reply and "/alpha, /al" in reply and "/beta, /be" in reply
    english = ask(api, 1, "/help", lang="en")
    assert "Pick one" in english and "/alpha" in english
    menus = {m.params.get("language_code"): m.params["commands"] for m in api.calls_of("setMyCommands")}
    assert set(menus) == {None, "ru", "en"}
    commands = [c["command"] for c in menus[None]]
    assert {"alpha", "beta", "start", "help", "random", "about"} <= set(commands)
    assert menus["ru"] == menus[None]
    described = {lang: {c["command"]: c["description"] for c in menus[lang]} for lang in ("ru", "en")}
    assert described["ru"]["random"] == "притча наугад" and described["en"]["random"] == "a parable from a random culture"


def test_each_culture_and_alias_answers_with_a_replayable_seed(api, start_bot):
    start_bot()
    for chat, command, name in [(2, "/alpha", "alpha"), (3, "/beta", "beta"), (4, "/al", "alpha"), (5, "/be", "beta")]:
        body, footer = proverb_and_footer(ask(api, chat, command))
        assert body.strip(), f"{command} gave an empty proverb"
        assert footer.startswith(f"/{name} seed="), footer
        # the footer replays it: the same command and seed give the same text
        again, footer2 = proverb_and_footer(ask(api, chat, footer))
        assert (again, footer2) == (body, footer)


def test_prefix_temperature_and_seed(api, start_bot, tiny_models):
    bot = start_bot()
    a = ask(api, 6, "/alpha Однажды t=0.5 seed=42")
    b = ask(api, 7, "/alpha seed=42 t=0,5 Однажды")  # options anywhere, comma decimals
    assert a == b
    body, footer = proverb_and_footer(a)
    assert body.startswith("Однажды")
    assert footer == "/alpha Однажды t=0.5 seed=42"
    # the same text as the library gives for that bundle, seed, prefix and settings (any process)
    bundle = load_bundle(tiny_models / "alpha")
    expected = bundle.generate([bot.parts.catalog.request("alpha", 42, "Однажды", 0.5)])[0].text
    assert body == expected
    other = proverb_and_footer(ask(api, 6, "/alpha Однажды t=0.5 seed=43"))[0]
    assert other != body
    assert "Температура" in ask(api, 6, "/alpha t=9")
    assert "Зерно" in ask(api, 6, "/alpha seed=abc")


def test_unknown_command_and_plain_text(api, start_bot):
    start_bot()
    reply = ask(api, 8, "/nonsense")
    assert "/nonsense" in reply and "/alpha" in reply and "/help" in reply
    reply = ask(api, 8, "расскажи притчу")
    assert "/alpha" in reply and "/help" in reply
    assert "Try" in ask(api, 8, "/nonsense", lang="en")


def test_foreign_characters_and_long_prefix_are_explained(api, start_bot):
    start_bot(max_prefix_length=30)
    reply = ask(api, 9, "/alpha Hello мудрец")
    assert "«H»" in reply and "«l»" in reply and "не знает" in reply
    reply = ask(api, 9, "/alpha " + "мудрец " * 10)
    assert "слишком длинное" in reply and "30" in reply
    # a prefix within limits works
    assert proverb_and_footer(ask(api, 9, "/alpha мудрец seed=1"))[0].startswith("мудрец")


def test_about(api, start_bot):
    start_bot()
    reply = ask(api, 10, "/about al")
    assert "Alpha" in reply and "3.000" in reply and "5 " in reply
    assert "/about alpha" in ask(api, 10, "/about")
    assert "zzz" in ask(api, 10, "/about zzz")


def test_random(api, start_bot):
    start_bot()
    body, footer = proverb_and_footer(ask(api, 11, "/random"))
    assert body and (footer.startswith("/alpha seed=") or footer.startswith("/beta seed="))


def test_inline_query_offers_fresh_proverbs(api, start_bot):
    start_bot(inline_results=3)
    api.send_inline(12, "alpha")
    call = api.wait_for(lambda: api.calls_of("answerInlineQuery"), what="answerInlineQuery")[0]
    results = call.params["results"]
    assert len(results) == 3
    texts = [r["input_message_content"]["message_text"] for r in results]
    assert all(t.rsplit("\n\n", 1)[1].startswith("/alpha seed=") for t in texts)
    assert len(set(texts)) == 3, "inline results should be different proverbs"
    assert all(r["title"] == "Alpha" for r in results)
    assert call.params.get("cache_time") == 0
    # a prefix; characters the model lacks are dropped (inline mode has no room to explain)
    api.send_inline(12, "be Однажды")
    call = api.wait_for(lambda: len(api.calls_of("answerInlineQuery")) > 1 and api.calls_of("answerInlineQuery")[1])
    assert all(r["input_message_content"]["message_text"].startswith("Однажды") for r in call.params["results"])


def test_inline_mode_counts_against_the_per_user_limit(api, start_bot):
    start_bot(user_rate_limit=1, user_rate_period=60)
    api.send_inline(17, "alpha")
    api.wait_for(lambda: api.calls_of("answerInlineQuery"), what="the first answer")
    api.send_inline(17, "beta")  # over the limit: answered, with nothing
    second = api.wait_for(lambda: api.calls_of("answerInlineQuery")[1:], what="the second answer")[0]
    assert len(api.calls_of("answerInlineQuery")[0].params["results"]) == 3 and second.params["results"] == []


def test_typing_indicator_before_the_reply(api, start_bot):
    start_bot(typing_delay=0)
    ask(api, 13, "/alpha")
    methods = [c.method for c in api.calls if c.method in ("sendChatAction", "sendMessage")]
    assert methods[:2] == ["sendChatAction", "sendMessage"]
    assert api.calls_of("sendChatAction")[0].params["action"] == "typing"


def test_per_user_rate_limit_is_polite_and_quiet(api, start_bot):
    start_bot(user_rate_limit=2, user_rate_period=60)
    replies = [ask(api, 14, "/alpha") for _ in range(3)]
    assert "seed=" in replies[0] and "seed=" in replies[1]
    assert "Не так быстро" in replies[2]
    api.send_text(14, "/alpha")  # still limited: no second warning, so the warning is no flood itself
    api.send_text(14, "/help", user_id=15)  # another user is not limited; their reply comes after that non-reply
    assert "Выберите" in api.wait_sent(14, 4)[3] and len(api.sent(14)) == 4


def test_groups(api, start_bot):
    start_bot()
    api.send_text(-100, "просто разговор", user_id=16, chat_type="group")
    api.send_text(-100, "/other_bots_command", user_id=16, chat_type="group")
    api.send_text(-100, "/alpha@fake_proverbs_bot seed=5", user_id=16, chat_type="group")
    reply = api.wait_sent(-100, 1)[0]
    assert reply.endswith("/alpha seed=5")
    call = api.calls_of("sendMessage")[-1]
    assert call.params["reply_parameters"]["allow_sending_without_reply"] is True
    api.send_text(-100, "/nonsense@fake_proverbs_bot", user_id=16, chat_type="group")
    assert "/nonsense" in api.wait_sent(-100, 2)[1]
    api.send_text(-100, "ещё разговор", user_id=16, chat_type="group")
    api.send_text(-100, "/help@fake_proverbs_bot", user_id=16, chat_type="group")
    # the plain text and the other bot's command got no answer: the next message is the answer to /help
    assert "Выберите" in api.wait_sent(-100, 3)[2] and len(api.sent(-100)) == 3


def test_requests_that_arrive_together_are_generated_together(api, start_bot):
    bot = start_bot(generation_processes=1)  # as in production: a worker process
    # queue a burst before the bot's next poll returns: many chats, both cultures
    ids = [api.push(message=message(100 + i, "/alpha" if i % 2 else "/be")) for i in range(24)]
    api.wait_for(lambda: sum(len(api.sent(100 + i)) for i in range(24)) == 24, 30, "24 replies")
    stats = bot.parts.generator.stats
    assert stats.requests >= 24
    assert stats.largest > 1 and stats.batches < stats.requests, f"no batching: {stats}"
    assert all(api.delivered.get(i) for i in ids)


def test_429_is_honoured_and_the_reply_still_arrives(api, start_bot):
    start_bot()
    api.fail("sendMessage", retry_after=1)
    t0 = time.monotonic()
    reply = ask(api, 20, "/alpha seed=3")
    assert reply.endswith("/alpha seed=3")
    sends = api.calls_of("sendMessage")
    assert [c.status for c in sends] == [429, 200]
    assert sends[1].t - sends[0].t >= 1.0
    assert time.monotonic() - t0 < 10


def test_500_and_timeout_are_retried_and_the_bot_survives(api, start_bot):
    start_bot(read_timeout=1.0, max_retries=2)
    # one 500: retried, the reply arrives
    api.fail("sendMessage", status=500)
    assert ask(api, 21, "/alpha seed=1").endswith("seed=1")
    # (a slow answer, past the read timeout, is not sent again: tests/bot/test_faults.py)
    # the server keeps failing: the reply is lost after the retries (and the error notice too),
    # but the bot lives on and answers the next update
    api.fail("sendMessage", status=500, times=5)
    api.send_text(23, "/alpha seed=3")
    api.wait_for(lambda: len([c for c in api.calls_of("sendMessage") if c.params["chat_id"] == 23]) >= 5, 20)
    assert ask(api, 24, "/alpha seed=4").endswith("seed=4")


def test_polling_survives_getupdates_errors(api, start_bot):
    start_bot()
    api.fail("getUpdates", status=502, times=2, description="Bad Gateway")
    assert ask(api, 25, "/alpha seed=1", timeout=30).endswith("seed=1")


def test_flood_limits_kept_without_429s(tiny_models, tmp_path, start_bot):
    # a bot under Telegram's limits: 1 message a second per chat, so 3 commands take 2+ seconds
    from .conftest import RunningBot, bot_settings
    from .fakeapi import FakeBotAPI

    with FakeBotAPI(flood_limits=True) as strict:
        settings = bot_settings(strict, tiny_models, tmp_path)
        bot = RunningBot(settings)
        bot.thread.start()
        try:
            strict.wait_for(lambda: strict.calls_of("getUpdates"), 30)
            t0 = time.monotonic()
            for i in range(3):
                for chat in (31, 32):
                    strict.send_text(chat, f"/alpha seed={i}")
            strict.wait_for(lambda: len(strict.sent(31)) == 3 and len(strict.sent(32)) == 3, 30, "6 replies")
            assert time.monotonic() - t0 >= 2.0
            assert strict.flood_429s == 0
        finally:
            bot.stop()


def test_heartbeat_and_health_command(api, start_bot, tmp_path, monkeypatch):
    from bot.__main__ import main

    bot = start_bot(heartbeat_interval=0.2)
    hb = bot.settings.heartbeat_file
    api.wait_for(lambda: hb.exists(), 10, "heartbeat file")
    first = hb.stat().st_mtime
    api.wait_for(lambda: hb.stat().st_mtime > first, 10, "a second heartbeat")
    monkeypatch.setenv("HEARTBEAT_FILE", str(hb))
    monkeypatch.chdir(tmp_path)
    assert main(["health", "--max-age", "5"]) == 0
    bot.stop()
    assert not hb.exists()
    assert main(["health", "--max-age", "5"]) == 1


def test_webhook_mode_checks_the_secret_token(api, start_bot):
    import socket

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    start_bot(webhook_url="https://bot.example.org/hook", webhook_listen="127.0.0.1", webhook_port=port,
              webhook_path="hook", webhook_secret_token="s3cret-Token")
    hook = api.calls_of("setWebhook")[0].params
    assert hook["url"] == "https://bot.example.org/hook" and hook["secret_token"] == "s3cret-Token"
    update = {"update_id": 1, "message": message(40, "/alpha seed=9")}
    url = f"http://127.0.0.1:{port}/hook"
    deadline = time.monotonic() + 10
    while True:  # the webhook server starts just after setWebhook
        try:
            bad = httpx.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "wrong"})
            break
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    assert bad.status_code == 403
    good = httpx.post(url, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": "s3cret-Token"})
    assert good.status_code == 200
    assert api.wait_sent(40, 1)[0].endswith("/alpha seed=9")
    assert len(api.sent(40)) == 1


@pytest.mark.parametrize("text", ["/alpha " + "а" * 5000])
def test_very_long_messages_are_refused_politely(api, start_bot, text):
    start_bot()
    reply = ask(api, 41, text)
    assert "слишком длинное" in reply and len(reply) < 4096


def test_words_another_bots_command_a_quoted_prefix_and_a_bad_inline_option(api, start_bot, tiny_models, tmp_path):
    from .conftest import ROOT

    models = tmp_path / "models"
    models.mkdir()
    (models / "alpha").symlink_to(tiny_models / "alpha")
    (models / "sufi").symlink_to(ROOT / "models" / "sufi")  # the tiny models know no «»
    start_bot(models_dir=models)
    # another bot's command, in a private chat too: not ours to answer (it got «Не знаю команды /sufi»)
    api.send_text(30, "/sufi@OtherBot seed=5")
    api.send_text(30, "/nonsense@OtherBot")
    assert "Выберите" in ask(api, 30, "/help") and len(api.sent(30)) == 1
    # quotes after a space are the reader's, both of them (it was the prefix «Однажды»»: the first one dropped)
    reply = ask(api, 31, "/sufi «Однажды» seed=5")
    assert reply.startswith("«Однажды»") and reply.endswith("/sufi «Однажды» seed=5"), reply
    assert ask(api, 31, "/sufi, Однажды seed=5").endswith("/sufi Однажды seed=5")  # stuck to the command: dropped
    # a bad option in inline mode is left out, not read as the prefix (it gave «seeaae»)
    api.send_inline(32, "sufi seed=garbage")
    call = api.wait_for(lambda: api.calls_of("answerInlineQuery"), what="answerInlineQuery")[0]
    texts = [r["input_message_content"]["message_text"] for r in call.params["results"]]
    assert texts and all(t.rpartition("\n\n")[2].startswith("/sufi seed=") for t in texts), texts
