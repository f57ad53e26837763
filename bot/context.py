"""What every handler reaches the bot's parts through: `Parts` (built once by bot.app) and `BotContext`.

In a module of its own so that the handlers (bot.handlers, bot.presses, bot.subscriptions.handlers) import it
without importing bot.app, the composition root that imports them (no import circle; a test checks)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from telegram.ext import CallbackContext, ExtBot

if TYPE_CHECKING:
    from .catalog import Catalog
    from .generation import GenerationService
    from .health import Status
    from .journal import Journal, WireMarks
    from .limits import UserRateLimiter
    from .settings import BotSettings
    from .subscriptions.scheduler import Scheduler
    from .votes import Votes


@dataclass
class Parts:
    """What the root builds, once: handlers reach it through BotContext, startup and shutdown through the app."""

    settings: BotSettings
    catalog: Catalog
    generator: GenerationService
    users: UserRateLimiter  # the per-user limit on requests
    subscriptions: Scheduler  # daily deliveries; owns the database (its store) while it is open
    status: Status
    wire: WireMarks  # replies mark their update in the journal, once run() opens one
    votes: Votes | None = None  # readers' votes: set while the database is open (None: not collected)
    journal: Journal | None = None  # the update journal (long polling; opened by run())


class BotContext(CallbackContext[ExtBot, dict, dict, dict]):
    """The context every handler and job gets: python-telegram-bot's, plus the bot's parts by name."""

    @property
    def parts(self) -> Parts:
        return self.application.parts

    @property
    def settings(self) -> BotSettings:
        return self.parts.settings

    @property
    def catalog(self) -> Catalog:
        return self.parts.catalog

    @property
    def generator(self) -> GenerationService:
        return self.parts.generator

    @property
    def users(self) -> UserRateLimiter:
        return self.parts.users

    @property
    def subscriptions(self) -> Scheduler:
        return self.parts.subscriptions

    @property
    def votes(self) -> Votes | None:
        return self.parts.votes
