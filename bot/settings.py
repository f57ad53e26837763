"""The bot's settings: one pydantic-settings object read from the environment or `.env`, built once."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

class BotSettings(BaseSettings):
    """Everything the bot can be told; field NAME is read from the environment variable NAME (any case)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # Telegram
    bot_token: SecretStr | None = None
    bot_api_base_url: str = "https://api.telegram.org/bot"
    models_dir: Path = Path("models")
    log_level: str = "INFO"

    # webhook mode: on when WEBHOOK_URL is set (the public https URL Telegram posts to)
    webhook_url: str | None = None
    webhook_listen: str = "0.0.0.0"
    webhook_port: int = 8443
    webhook_path: str = ""  # the local path the server answers on, e.g. "bot" behind a reverse proxy
    webhook_secret_token: SecretStr | None = None  # a random one is made at startup when unset

    # generation: None keeps the bundle's own tuned value
    temperature: float | None = Field(None, ge=0.0, le=5.0)
    max_length: int | None = Field(None, ge=20, le=3000)
    max_user_temperature: float = Field(2.0, ge=0.0, le=5.0)  # the largest t= a user may ask for
    max_prefix_length: int = Field(100, ge=1, le=1000)
    inline_results: int = Field(3, ge=1, le=20)
    batch_size: int = Field(64, ge=1, le=4096)  # most requests in one batched pass per bundle
    batch_wait_ms: float = Field(0.0, ge=0.0, le=1000.0)  # extra wait to gather a batch (0: whatever is queued)
    # worker processes, each with its own copy of the bundles (~50 MB); unset: one per CPU (at most 8);
    # 0: a thread of the bot's own process instead
    generation_processes: int | None = Field(None, ge=0, le=64)

    # limits
    user_rate_limit: int = Field(10, ge=0)  # requests per user per period; 0 turns the limit off
    user_rate_period: float = Field(60.0, gt=0)
    outgoing_rate_limit: bool = True  # keep under Telegram's flood limits (off only for benchmarks)
    overall_rate: float = Field(30.0, gt=0)  # messages per second, whole bot
    chat_rate: float = Field(1.0, gt=0)  # messages per second, one private chat
    group_rate: float = Field(20.0, gt=0)  # messages per minute, one group
    max_retries: int = Field(5, ge=0)  # per request, for network errors (5xx, resets, timeouts before sending)
    max_flood_wait: float = Field(120.0, ge=0)  # s a request may wait out Telegram's 429s before it is dropped
    concurrent_updates: int = Field(256, ge=1)
    typing_delay: float = Field(0.3, ge=0.0)  # show "typing…" when a reply takes longer than this (s)
    # seconds from a stop signal to the end of the process: replies in flight are finished within it, then
    # the process ends anyway (compose.yaml gives 30 s before its SIGKILL)
    stop_grace: float = Field(25.0, gt=0, le=3600)

    # network
    connect_timeout: float = Field(10.0, gt=0)
    read_timeout: float = Field(10.0, gt=0)
    write_timeout: float = Field(10.0, gt=0)
    pool_timeout: float = Field(5.0, gt=0)
    connection_pool_size: int = Field(8, ge=1, le=1024)  # HTTP connections to the Bot API; httpx scans them all per request, so more costs CPU
    poll_timeout: int = Field(10, ge=0, le=50)  # getUpdates long-poll seconds

    # liveness: the bot rewrites this file every HEARTBEAT_INTERVAL s; `python -m bot health` reads it
    heartbeat_file: Path | None = Path(tempfile.gettempdir()) / "proverb-bot.heartbeat"
    heartbeat_interval: float = Field(15.0, gt=0)

    # long polling: write fetched updates to DATA_DIR/updates.sqlite3 until answered, so a killed bot answers
    # them after its restart (bot.journal)
    update_journal: bool = True

    # daily subscriptions (bot.subscriptions): an SQLite file in DATA_DIR unless DATABASE_URL names another database
    data_dir: Path = Path("data")
    database_url: str | None = None  # SQLAlchemy async URL, e.g. sqlite+aiosqlite:////data/bot.sqlite3
    subscription_default_time: str = Field("09:00", pattern=r"^([01]?\d|2[0-3]):[0-5]\d$")  # local time, HH:MM
    subscription_poll_interval: float = Field(60.0, gt=0, le=3600)  # s; the job also wakes exactly when one is due
    subscription_concurrency: int = Field(16, ge=1, le=1024)  # daily messages in flight at once (the limiter paces them)
    # false in webhook replicas behind a proxy: one scheduler process delivers (docs/scaling.md); two that are
    # both on share the work safely: one holds the database's delivery lease, the other stands by
    subscription_delivery: bool = True

    @field_validator("bot_token", "webhook_secret_token", "webhook_url", "heartbeat_file", "database_url", mode="before")
    @classmethod
    def _blank_is_none(cls, v):
        """`NAME=` (empty, or blanks) in the environment or .env means unset."""
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("log_level")
    @classmethod
    def _level(cls, v: str) -> str:
        v = v.strip().upper()
        if v not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return v

    @property
    def workers(self) -> int:
        """GENERATION_PROCESSES, with unset resolved to the CPUs this process may use (at most 8)."""
        if self.generation_processes is not None:
            return self.generation_processes
        try:
            cpus = len(os.sched_getaffinity(0))
        except AttributeError:  # not on Linux
            cpus = os.cpu_count() or 1
        return max(1, min(8, cpus))

    @property
    def token(self) -> str | None:
        """The token as plain text, or None; never log it (see bot.logs)."""
        return self.bot_token.get_secret_value() if self.bot_token else None

    def secrets(self) -> list[str]:
        """Strings that must never reach a log line."""
        out = [s.get_secret_value() for s in (self.bot_token, self.webhook_secret_token) if s]
        return [s for s in out if s]


def load_settings(**overrides) -> BotSettings:
    """The bot's settings from the environment / `.env`, with keyword overrides (tests and CLI flags)."""
    return BotSettings(**overrides)


def describe_error(e: ValidationError) -> str:
    """A pydantic ValidationError -> one line naming each bad setting."""
    parts = []
    for err in e.errors():
        name = ".".join(str(x) for x in err.get("loc", ())).upper() or "settings"
        parts.append(f"{name}: {err.get('msg', 'invalid')}")
    return "bad settings: " + "; ".join(parts)
