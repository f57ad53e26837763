"""Building and running the Application: transport, limits, handlers, startup and shutdown hooks."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import threading
from typing import Callable, Sequence

from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes
from telegram.request import BaseRequest, HTTPXRequest

from . import handlers, health
from .errors import StartupError
from .limits import TelegramLimiter
from .logs import REDACTOR
from .journal import CURRENT_UPDATE, REDELIVERED, Journal, JournalError, WireMarks
from .polling import PollingBot, read_update
from .services import MenuEntry, Services
from .settings import Settings

log = logging.getLogger(__name__)

# An extension: adds its handlers (group 0, before the fallbacks), jobs and hooks to the application.
Plugin = Callable[[Application, Services], None]


def build_application(
    settings: Settings,
    services: Services,
    plugins: Sequence[Plugin] = (),
    request: BaseRequest | None = None,
    token: str | None = None,
) -> Application:
    """The Application for `services`: Telegram transport (or `request`), limits, handlers, hooks.

    Handlers are added in this order, all in group 0: the core's (bot.handlers.register), each
    plugin's, then the fallbacks for unknown commands and plain text, so a plugin's commands are
    never answered as unknown. `request` replaces the HTTP transport (the console chat uses it);
    `token` then stands in for BOT_TOKEN.
    """
    token = token or settings.token
    if not token:
        raise StartupError("BOT_TOKEN is not set: put the token from @BotFather in the environment or .env "
                           "(or talk to the bot in the terminal: python -m bot chat)")
    wire = WireMarks()  # replies mark their update in the journal, once run() opens one
    if request is None:
        bot = PollingBot(
            token,
            base_url=settings.bot_api_base_url,
            request=HTTPXRequest(
                connection_pool_size=settings.connection_pool_size,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,
                write_timeout=settings.write_timeout,
                pool_timeout=settings.pool_timeout,
                httpx_kwargs={"event_hooks": {"request": [wire.on_request]}},
            ),
            get_updates_request=HTTPXRequest(
                connection_pool_size=1,
                connect_timeout=settings.connect_timeout,
                read_timeout=settings.read_timeout,  # get_updates adds the long-poll timeout to this
                write_timeout=settings.write_timeout,
                pool_timeout=settings.pool_timeout,
            ),
            rate_limiter=TelegramLimiter(
                overall_rate=settings.overall_rate,
                chat_rate=settings.chat_rate,
                group_rate_per_minute=settings.group_rate,
                max_retries=settings.max_retries,
                throttle=settings.outgoing_rate_limit,
                max_flood_wait=settings.max_flood_wait,
            ),
        )
    else:
        bot = PollingBot(token, base_url=settings.bot_api_base_url, request=request, get_updates_request=request)
    app = (
        Application.builder()
        .application_class(JournaledApplication)
        .bot(bot)
        .concurrent_updates(settings.concurrent_updates)
        .post_init(on_startup)
        .post_stop(on_stop)
        .build()
    )
    app.bot_data["services"] = services
    app.bot_data["wire_marks"] = wire
    bot._on_fatal = lambda why: fail_for_good(app, why)
    handlers.register(app, services)
    for plugin in plugins:
        plugin(app, services)
    handlers.register_fallbacks(app, services)
    return app


class JournaledApplication(Application):
    """Application that tells the update journal (when there is one) which update a handler serves and when it is done."""

    async def process_update(self, update: object) -> None:
        journal: Journal | None = self.bot_data.get("journal")
        if journal is None or not isinstance(update, Update):
            await super().process_update(update)
            return
        if update.api_kwargs.get(REDELIVERED):
            return  # handled (or being handled) under the same id already: it only moves the offset on
        CURRENT_UPDATE.set(update.update_id)  # (this task's context only: one task per update)
        try:
            await super().process_update(update)
        finally:
            journal.done(update.update_id)


def open_journal(app: Application, settings: Settings) -> None:
    """Long polling: journal fetched updates until answered (bot.journal); a journal that cannot open degrades."""
    services: Services = app.bot_data["services"]
    try:
        journal = Journal(settings.data_dir / "updates.sqlite3")
    except JournalError as e:
        log.error("%s; updates in flight are lost if the bot is killed", e)
        services.degraded["update journal"] = str(e)
        return
    app.bot_data["journal"] = journal
    app.bot._on_fetched = journal.record
    app.bot_data["wire_marks"].journal = journal


async def on_startup(app: Application) -> None:
    """post_init: start generation, set the command menu, start the heartbeat, run the plugins' hooks."""
    services: Services = app.bot_data["services"]
    await services.generator.start()
    await set_commands(app, services.menu)
    hb = services.settings.heartbeat_file
    if hb is not None and app.job_queue is not None:
        health.beat(hb, services.health)
        app.job_queue.run_repeating(heartbeat, interval=services.settings.heartbeat_interval,
                                    first=services.settings.heartbeat_interval, name="heartbeat")
    for hook in services.on_startup:
        await hook(app)
    journal: Journal | None = app.bot_data.get("journal")
    if journal is not None:
        for body in journal.unfinished():  # fetched before a kill, never answered
            await app.update_queue.put(read_update(body, app.bot))
    loop = asyncio.get_running_loop()
    for sig in app.bot_data.get("stop_signals", ()):  # replaces python-telegram-bot's own handlers
        with contextlib.suppress(NotImplementedError):  # (not on Windows' event loop)
            loop.add_signal_handler(sig, _on_stop_signal, services.settings.stop_grace)
    # Everything loaded so far (modules, bundles, the application) lives as long as the process: move it
    # out of the garbage collector's sight, so a full collection scans only what was made since. Without
    # this, a full collection under load stalled the event loop ~50-85 ms (bench/bot_load.py).
    gc.collect()
    gc.freeze()
    log.info("serving %s as @%s", ", ".join(f"/{n}" for n in services.names), app.bot.username)


async def on_stop(app: Application) -> None:
    """post_stop (after every update in flight was answered): plugins' hooks, then generation stops."""
    services: Services = app.bot_data["services"]
    for hook in services.on_shutdown:
        await hook(app)
    await services.generator.stop(timeout=services.settings.stop_grace / 2)
    hb = services.settings.heartbeat_file
    if hb is not None and app.job_queue is not None:
        if services.failure:  # leave the reason for `python -m bot health`
            health.beat(hb, services.health)
        else:
            hb.unlink(missing_ok=True)
    if app.bot_data.get("journal") is not None:
        app.bot_data["journal"].close()
    log.info("stopped; generated %d proverbs in %d batches (largest %d)", services.generator.stats.requests,
             services.generator.stats.batches, services.generator.stats.largest)


async def heartbeat(context: ContextTypes.DEFAULT_TYPE) -> None:
    """Job: rewrite the heartbeat file; it goes stale when the event loop is stuck."""
    services: Services = context.application.bot_data["services"]
    health.beat(services.settings.heartbeat_file, services.health)


def _on_stop_signal(grace: float) -> None:
    """SIGTERM/SIGINT/SIGABRT: stop as python-telegram-bot does (SystemExit out of the loop, then a graceful
    stop), with a deadline: a reply or a worker that hangs cannot keep the process alive past `grace`."""
    arm_watchdog(grace)
    raise SystemExit


def arm_watchdog(grace: float) -> None:
    """End the process (status 1) if it is still here `grace` seconds from now."""
    def expire() -> None:
        log.critical("shutdown took longer than %g s (STOP_GRACE); exiting without finishing it", grace)
        for handler in logging.getLogger().handlers:
            handler.flush()
        os._exit(1)

    timer = threading.Timer(grace, expire)
    timer.daemon = True
    timer.start()


def fail_for_good(app: Application, why: str) -> None:
    """Polling can never succeed again: say why (once), fail the health check now, and stop the bot."""
    services: Services = app.bot_data["services"]
    if services.failure:
        return
    services.failure = why
    log.critical("%s; stopping", why)
    if services.settings.heartbeat_file is not None:
        health.beat(services.settings.heartbeat_file, services.health)
    if app.bot_data.get("stop_signals"):  # a real process: it ends, whatever hangs
        arm_watchdog(services.settings.stop_grace)
    app.stop_running()


async def set_commands(app: Application, menu: list[MenuEntry]) -> None:
    """Register the command menu: Russian for everyone (the default) and for "ru" users, English for "en" users.

    A failure is logged, not fatal.
    """
    try:
        for code, lang in ((None, "ru"), ("ru", "ru"), ("en", "en")):
            commands = [BotCommand(e.command, e.descriptions.get(lang) or e.descriptions["ru"]) for e in menu][:100]
            await app.bot.set_my_commands(commands, language_code=code)
    except TelegramError as e:
        log.warning("could not set the command menu: %s", e)


def run(app: Application, settings: Settings, stop_signals=None, close_loop: bool = True) -> None:
    """Serve until a stop signal (default: SIGINT, SIGTERM, SIGABRT): long polling, or a webhook when WEBHOOK_URL is set.

    On a stop signal, updates already fetched are answered before the process exits.
    """
    services: Services = app.bot_data["services"]
    kwargs = {} if stop_signals is None else {"stop_signals": stop_signals or None}
    app.bot_data["stop_signals"] = (signal.SIGINT, signal.SIGTERM, signal.SIGABRT) if stop_signals is None else tuple(stop_signals)
    if settings.webhook_url:
        secret = settings.webhook_secret_token.get_secret_value() if settings.webhook_secret_token else secrets.token_urlsafe(32)
        REDACTOR.add(secret)
        app.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=settings.webhook_path,
            webhook_url=settings.webhook_url,
            secret_token=secret,
            allowed_updates=services.allowed_updates,
            close_loop=close_loop,
            **kwargs,
        )
    else:
        if settings.update_journal:
            open_journal(app, settings)
        app.run_polling(
            timeout=settings.poll_timeout,
            allowed_updates=services.allowed_updates,
            close_loop=close_loop,
            **kwargs,
        )
