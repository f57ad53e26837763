"""Daily proverb subscriptions: SQLite (SQLAlchemy + Alembic) and python-telegram-bot's JobQueue.

`plugin` is the bot.app.Plugin that adds them; `with_clock(clock)` is the same with another clock (tests).
Importing this package is cheap: SQLAlchemy and Alembic load when the plugin is applied.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from telegram.ext import Application

    from ..services import Services


def plugin(app: "Application", services: "Services", clock: Callable[[], datetime] | None = None) -> None:
    """Add /subscribe, /unsubscribe, /subscriptions, /timezone and the daily delivery job to `app`."""
    from .wiring import register

    register(app, services, clock)


def with_clock(clock: Callable[[], datetime]) -> Callable[["Application", "Services"], None]:
    """The plugin, reading the time from `clock` (-> an aware datetime) instead of the system clock."""

    def plugin_with_clock(app: "Application", services: "Services") -> None:
        plugin(app, services, clock)

    return plugin_with_clock
