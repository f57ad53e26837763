"""The services handlers use, built once at startup and handed over through `application.bot_data`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Awaitable, Callable

import charlm
from charlm import Bundle, Request, Result
from charlm.bundle import sha256_file

from .commands import MAX_SEED
from .generation import GenerationService, command_table, load_bundles
from .limits import UserRateLimiter
from .settings import Settings

if TYPE_CHECKING:
    from telegram.ext import Application, CallbackContext

    from .votes import Votes

Hook = Callable[["Application"], Awaitable[None]]


@dataclass
class MenuEntry:
    """One line of the bot's command menu (set_my_commands), per language."""

    command: str
    descriptions: dict[str, str]  # language ("ru", "en") -> text


@dataclass
class Services:
    """Everything loaded at startup: bundles, the generation service, limits, hooks for extensions.

    Extensions (a `plugin(app, services)` passed to `build_application`) may append to `menu`,
    `on_startup`, `on_shutdown` and `allowed_updates`.
    """

    settings: Settings
    bundles: dict[str, Bundle]
    commands: dict[str, str]  # command or alias -> bundle name
    generator: GenerationService
    users: UserRateLimiter
    menu: list[MenuEntry] = field(default_factory=list)
    on_startup: list[Hook] = field(default_factory=list)  # awaited in post_init, after the core's own start
    on_shutdown: list[Hook] = field(default_factory=list)  # awaited in post_stop, before the generator stops
    allowed_updates: list[str] = field(default_factory=lambda: ["message", "inline_query", "callback_query", "my_chat_member"])
    votes: "Votes | None" = None  # readers' votes (bot.votes.plugin); None: not collected
    digests: dict[str, str] = field(default_factory=dict)  # bundle name -> sha256 of its manifest.json
    failure: str | None = None  # why the bot is ending for good (set once; the process exits non-zero)
    degraded: dict[str, str] = field(default_factory=dict)  # part ("subscriptions") -> why it is down

    def digest(self, name: str) -> str:
        """The bundle's sha256: of its manifest.json, which holds the sha256 of every other file of it."""
        d = self.digests.get(name)
        if d is None:
            d = self.digests[name] = sha256_file(self.bundles[name].path / "manifest.json")
        return d

    @property
    def health(self) -> str | None:
        """The heartbeat's state line: `failed: …`, `degraded: …`, or None when all is well."""
        if self.failure:
            return f"failed: {self.failure}"
        if self.degraded:
            return "degraded: " + "; ".join(f"{k} unavailable ({v})" for k, v in sorted(self.degraded.items()))
        return None

    @property
    def names(self) -> list[str]:
        """Bundle names, sorted."""
        return sorted(self.bundles)

    def settings_for(self, name: str, temperature: float | None = None) -> charlm.Settings:
        """Decoding settings: the bundle's tuned defaults, then the bot's overrides, then the user's t=."""
        s = self.bundles[name].defaults.with_(temperature=self.settings.temperature)
        if self.settings.max_length is not None:
            s = s.with_(max_length=self.settings.max_length, min_length=min(s.min_length, self.settings.max_length))
        return s.with_(temperature=temperature)

    def request(self, name: str, seed: int | None = None, prefix: str = "", temperature: float | None = None) -> Request:
        """A generation request for bundle `name`; a fresh random seed unless one is given."""
        return Request(new_seed() if seed is None else seed, prefix, self.settings_for(name, temperature))

    async def proverbs(self, name: str, requests: list[Request]) -> list[Result]:
        """Generate, batched with whatever else is asked at the same time (never on the event loop)."""
        return await self.generator.generate(name, requests)


def new_seed() -> int:
    """A fresh seed, short enough to read and type back."""
    return secrets.randbelow(min(MAX_SEED, 999_999) + 1)


def build_services(settings: Settings) -> Services:
    """Load every bundle in settings.models_dir (StartupError if none or one is broken) and make the services."""
    bundles = load_bundles(settings.models_dir)
    services = Services(
        settings=settings,
        bundles=bundles,
        commands=command_table(bundles),
        generator=GenerationService(bundles, settings.batch_size, settings.workers, settings.batch_wait_ms / 1000),
        users=UserRateLimiter(settings.user_rate_limit, settings.user_rate_period),
    )
    for name in services.names:
        services.digest(name)  # now, not on the event loop at the first button
    return services


def get_services(context: "CallbackContext") -> Services:
    """The services of the application a handler runs in."""
    return context.application.bot_data["services"]
