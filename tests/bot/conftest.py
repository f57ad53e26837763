"""Fixtures for the bot's end-to-end tests: the fake Bot API, and the real bot running against it."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
import uuid
from pathlib import Path

import pytest

from bot.app import build_application, run
from bot.settings import BotSettings
from bot.subscriptions.timing import utcnow

from . import postgres as pg
from .fakeapi import FakeBotAPI

TOKEN = "123456789:AAF-test-SECRET-token_value"
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def api():
    """A fake Bot API server on 127.0.0.1 (random port)."""
    with FakeBotAPI() as server:
        yield server


@pytest.fixture(scope="session")
def postgres():
    """One throwaway PostgreSQL server for the session (skipped, saying why, where PostgreSQL is not installed)."""
    why = pg.unavailable()
    if why:
        pytest.skip(why)
    server = pg.PostgresServer()
    yield server
    server.close()


@pytest.fixture
def database(request) -> str | None:
    """The bot's DATABASE_URL: None (the default, an SQLite file in DATA_DIR), or a fresh PostgreSQL database
    when a test is parametrized with BOTH_DATABASES."""
    if getattr(request, "param", "sqlite") == "sqlite":
        return None
    return request.getfixturevalue("postgres").create_database(f"t_{uuid.uuid4().hex[:12]}")


# the store and vote tests run on both: SQLite (the default) and a real PostgreSQL server
BOTH_DATABASES = pytest.mark.parametrize("database", ["sqlite", "postgresql"], indirect=True)


def launch(api, settings: BotSettings, clock=utcnow) -> "RunningBot":
    """Start a RunningBot on `settings` and wait for its first poll (or webhook) after this call."""
    ready = "setWebhook" if settings.webhook_url else "getUpdates"
    before = len(api.calls_of(ready))
    bot = RunningBot(settings, clock)
    bot.thread.start()
    api.wait_for(lambda: len(api.calls_of(ready)) > before or not bot.thread.is_alive(), 30, "the bot to start")
    assert bot.thread.is_alive(), f"the bot stopped at startup: {bot.error!r}"
    return bot


class RunningBot:
    """The real Application, built by bot.app and served by bot.app.run, in a thread of this process."""

    def __init__(self, settings: BotSettings, clock=utcnow):
        self.settings = settings
        self.app = build_application(settings, clock=clock)
        self.parts = self.app.parts
        self.loop = asyncio.new_event_loop()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._main, name="bot", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            run(self.app, stop_signals=(), close_loop=True)
        except BaseException as e:  # noqa: BLE001 - reported by stop()
            self.error = e

    def stop(self) -> None:
        """Stop as on SIGTERM: updates already fetched are answered first."""
        if self.thread.is_alive():
            try:
                self.loop.call_soon_threadsafe(self.app.stop_running)
            except RuntimeError:
                pass  # the loop is already closed
            self.thread.join(30)
        assert not self.thread.is_alive(), "the bot did not stop"
        if self.error:
            raise self.error


def bot_settings(api: FakeBotAPI, models_dir: Path, tmp_path: Path, **overrides) -> BotSettings:
    """BotSettings for a bot talking to `api`, quick to start and stop, no per-user limit unless asked."""
    values = dict(
        bot_token=TOKEN, bot_api_base_url=api.base_url, models_dir=models_dir, poll_timeout=2,
        heartbeat_file=tmp_path / "bot.heartbeat", user_rate_limit=0, typing_delay=5.0, max_retries=3,
        read_timeout=5.0, log_level="DEBUG", data_dir=tmp_path / "data",
        # generation in a thread: starts in no time; the worker processes of production are exercised by
        # test_process.py (the real `python -m bot`) and the batching test
        generation_processes=0,
    )
    values.update(overrides)
    return BotSettings(_env_file=None, **values)


def bot_starter(api, models_dir: Path, tmp_path: Path, clock=utcnow, **defaults):
    """A fixture's body: yields start(**settings) -> a RunningBot polling `api` (`defaults` under the settings
    given), and stops every bot it started when the test is over."""
    bots: list[RunningBot] = []

    def start(**overrides) -> RunningBot:
        values = {**defaults, **overrides}
        settings = bot_settings(api, values.pop("models_dir", models_dir), tmp_path, **values)
        bot = launch(api, settings, clock)
        bots.append(bot)
        return bot

    yield start
    for b in bots:
        b.stop()


@pytest.fixture
def start_bot(api, tiny_models, tmp_path):
    """start_bot(**settings) -> a RunningBot polling the fake API (stopped at the end of the test)."""
    yield from bot_starter(api, tiny_models, tmp_path)


def bot_env(api: FakeBotAPI | None, models_dir: Path, tmp_path: Path, **extra: str) -> dict:
    """Environment for `python -m bot` as a subprocess (no .env, no inherited bot settings)."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in BotSettings.model_fields}
    env.update({
        "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3", "MODELS_DIR": str(models_dir),
        "HEARTBEAT_FILE": str(tmp_path / "bot.heartbeat"), "POLL_TIMEOUT": "2", "PYTHONUNBUFFERED": "1",
    })
    if api is not None:
        env.update({"BOT_TOKEN": TOKEN, "BOT_API_BASE_URL": api.base_url})
    env.update(extra)
    return env


PYTHON = sys.executable
