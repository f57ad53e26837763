"""The composition root: builds every part of the bot, registers every handler, and starts and stops the parts
in one order.

Reading the bot starts here. `build_application` makes the catalog of bundles, the generation service, the
limiters, the subscriptions' scheduler and store, and lists every handler, in the order python-telegram-bot
tries them; each handler reaches those parts through its typed context (`BotContext`: `context.catalog`,
`context.generator`, ...; bot/context.py). `on_startup` and `on_stop` start and stop the parts, in that order and reversed.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import secrets
import signal
import threading
from concurrent.futures import Executor
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

import httpx
from telegram import BotCommand, Update
from telegram.error import TelegramError
from telegram.ext import (
    Application, CallbackContext, CallbackQueryHandler, ChatMemberHandler, CommandHandler, ContextTypes, ExtBot,
    InlineQueryHandler, MessageHandler, filters,
)
from telegram.request import BaseRequest, HTTPXRequest

from . import handlers, health, presses, texts
from .catalog import Catalog
from .context import BotContext, Parts
from .errors import StartupError
from .generation import GenerationService
from .journal import CURRENT_UPDATE, REDELIVERED, Journal, JournalError, WireMarks
from .limits import TelegramLimiter, UserRateLimiter
from .logs import REDACTOR
from .polling import PollingBot, read_update
from .settings import BotSettings
from .subscriptions import handlers as daily
from .subscriptions import texts as daily_texts
from .subscriptions.db import database_url
from .subscriptions.scheduler import Scheduler
from .subscriptions.store import prepare
from .subscriptions.timing import utcnow
from .votes import Votes

log = logging.getLogger(__name__)

# new messages only: an edited "/sufi" should not earn a second proverb
NEW_MESSAGES = filters.UpdateType.MESSAGE
# the update types the handlers below answer (getUpdates / setWebhook ask Telegram for these only)
ALLOWED_UPDATES = ["message", "inline_query", "callback_query", "my_chat_member"]


class ProverbApplication(Application):
    """python-telegram-bot's Application, holding the bot's parts; it tells the update journal (when there is
    one) which update a handler serves and when it is done."""

    def __init__(self, *, parts: Parts, **kwargs):
        super().__init__(**kwargs)
        self.parts = parts
        self.stop_signals: tuple[int, ...] = ()  # set by run(): the signals a real process stops on

    async def process_update(self, update: object) -> None:
        journal = self.parts.journal
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


def command_handlers() -> list[CommandHandler]:
    """The bot's own commands (the cultures' come from the catalog), as build_application registers them."""
    return [
        CommandHandler("start", handlers.start, filters=NEW_MESSAGES),
        CommandHandler("help", handlers.help_command, filters=NEW_MESSAGES),
        CommandHandler("random", handlers.random_culture, filters=NEW_MESSAGES),
        CommandHandler("about", handlers.about, filters=NEW_MESSAGES),
        CommandHandler("subscribe", daily.guarded(daily.subscribe), filters=NEW_MESSAGES),
        CommandHandler("unsubscribe", daily.guarded(daily.unsubscribe), filters=NEW_MESSAGES),
        CommandHandler("subscriptions", daily.guarded(daily.subscriptions), filters=NEW_MESSAGES),
        CommandHandler("timezone", daily.guarded(daily.timezone), filters=NEW_MESSAGES),
    ]


def reserved_commands() -> frozenset[str]:
    """The bot's own command names, which no bundle may take: read off the handlers that answer them."""
    return frozenset(c for h in command_handlers() for c in h.commands)


@dataclass
class MenuEntry:
    """One line of the bot's command menu (set_my_commands), per language."""

    command: str
    descriptions: dict[str, str]  # language ("ru", "en") -> text


def menu(catalog: Catalog) -> list[MenuEntry]:
    """The command menu: the cultures, then the bot's own commands."""
    entries = [MenuEntry(name, {lang: texts.text("menu_culture", lang, title=catalog.bundles[name].title)
                                for lang in ("ru", "en")}) for name in catalog.names]
    for command in ("random", "about", "help", "start"):
        entries.append(MenuEntry(command, {lang: texts.text(f"menu_{command}", lang) for lang in ("ru", "en")}))
    for command in ("subscribe", "subscriptions", "unsubscribe", "timezone"):
        entries.append(MenuEntry(command, {lang: daily_texts.text(f"menu_{command}", lang) for lang in ("ru", "en")}))
    return entries


def build_application(
    settings: BotSettings,
    request: BaseRequest | None = None,
    token: str | None = None,
    clock: Callable[[], datetime] = utcnow,
    pool: Executor | None = None,
) -> ProverbApplication:
    """The bot: its parts (StartupError, one line, when one cannot be made) and every handler.

    `request` replaces the HTTP transport (the console chat uses it); `token` then stands in for BOT_TOKEN.
    `clock` (-> an aware datetime) is the time the subscriptions go by (tests set it). `pool`: generation
    workers already started (bot.workers.start_workers), which the generation service then takes.
    """
    token = token or settings.token
    if not token:
        raise StartupError("BOT_TOKEN is not set: put the token from @BotFather in the environment or .env "
                           "(or talk to the bot in the terminal: python -m bot chat)")
    # With generation workers (the default), the workers load the models and this process keeps only the
    # bundles' metadata: bench/startup.py, six 2 x 384 bundles: bot process peak RSS 168 -> 121 MB.
    catalog = Catalog.load(settings.models_dir, reserved_commands(), settings.temperature, settings.max_length,
                           models=settings.workers == 0)
    generator = GenerationService(catalog.bundles, settings.batch_size, settings.workers, settings.batch_wait_ms / 1000,
                                  pool=pool)
    status = health.Status()
    url = database_url(settings.data_dir, settings.database_url)
    scheduler = Scheduler(url, catalog, generator, status, clock, poll_interval=settings.subscription_poll_interval,
                          concurrency=settings.subscription_concurrency, chunk=settings.batch_size,
                          delivery=settings.subscription_delivery)
    try:
        prepare(url)  # create and migrate the database now, before the bot talks to Telegram
    except StartupError as e:  # a corrupt, full or read-only database: proverbs still flow
        scheduler.degrade(str(e))
    wire = WireMarks()
    parts = Parts(settings, catalog, generator, UserRateLimiter(settings.user_rate_limit, settings.user_rate_period),
                  scheduler, status, wire)

    bot = make_bot(settings, token, request, wire)
    app = (
        Application.builder()
        .application_class(ProverbApplication, kwargs={"parts": parts})
        .context_types(ContextTypes(context=BotContext))
        .bot(bot)
        .concurrent_updates(settings.concurrent_updates)
        .post_init(on_startup)
        .post_stop(on_stop)
        .build()
    )
    if app.job_queue is None:
        raise StartupError("daily subscriptions need python-telegram-bot's JobQueue: "
                           "pip install 'python-telegram-bot[job-queue]'")
    bot._on_fatal = lambda why: fail_for_good(app, why)

    # Every handler, in the order they are tried (all in group 0: the first that matches answers).
    app.add_handlers(command_handlers())
    app.add_handler(CommandHandler(sorted(catalog.commands), handlers.culture, filters=NEW_MESSAGES))
    app.add_handler(InlineQueryHandler(handlers.inline_query))
    app.add_handler(CallbackQueryHandler(presses.on_press))
    app.add_handler(ChatMemberHandler(daily.guarded(daily.my_chat_member), ChatMemberHandler.MY_CHAT_MEMBER))
    # what no handler above took: unknown commands, plain text in private chats
    app.add_handler(MessageHandler(NEW_MESSAGES & filters.COMMAND, handlers.unknown_command))
    app.add_handler(MessageHandler(NEW_MESSAGES & filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE,
                                   handlers.plain_text))
    app.add_error_handler(handlers.on_error)
    return app


def make_bot(settings: BotSettings, token: str, request: BaseRequest | None, wire: WireMarks) -> PollingBot:
    """The Telegram client: HTTP transport with the settings' timeouts, and the outgoing flood limits."""
    if request is not None:
        return PollingBot(token, base_url=settings.bot_api_base_url, request=request, get_updates_request=request)
    # one TLS context (httpx's default: certifi's CAs, or SSL_CERT_FILE / SSL_CERT_DIR) for both clients, which
    # each made their own: loading the CA certificates took ~20 ms of the start, each time (cProfile)
    tls = httpx.create_ssl_context()
    return PollingBot(
        token,
        base_url=settings.bot_api_base_url,
        request=HTTPXRequest(
            connection_pool_size=settings.connection_pool_size,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,
            write_timeout=settings.write_timeout,
            pool_timeout=settings.pool_timeout,
            httpx_kwargs={"event_hooks": {"request": [wire.on_request]}, "verify": tls},
        ),
        get_updates_request=HTTPXRequest(
            connection_pool_size=1,
            connect_timeout=settings.connect_timeout,
            read_timeout=settings.read_timeout,  # get_updates adds the long-poll timeout to this
            write_timeout=settings.write_timeout,
            pool_timeout=settings.pool_timeout,
            httpx_kwargs={"verify": tls},
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


def open_journal(app: ProverbApplication) -> None:
    """Long polling: journal fetched updates until answered (bot.journal); a journal that cannot open degrades."""
    parts = app.parts
    try:
        journal = Journal(parts.settings.data_dir / "updates.sqlite3",
                          on_broken=lambda why: parts.status.degrade("update journal", why))
    except JournalError as e:
        log.error("%s; updates in flight are lost if the bot is killed", e)
        parts.status.degrade("update journal", str(e))
        return
    parts.journal = journal
    app.bot._on_fetched = journal.record
    parts.wire.journal = journal


async def on_startup(app: ProverbApplication) -> None:
    """post_init: generation, the command menu, the heartbeat, the database (subscriptions, then votes), signals."""
    parts = app.parts
    await parts.generator.start()
    await set_commands(app, menu(parts.catalog))
    hb = parts.settings.heartbeat_file
    if hb is not None:
        health.beat(hb, parts.status.line)
        parts.status.on_change = lambda: health.beat(hb, parts.status.line)
        app.job_queue.run_repeating(heartbeat, interval=parts.settings.heartbeat_interval,
                                    first=parts.settings.heartbeat_interval, name="heartbeat")
    await parts.subscriptions.start(app)  # opens the database; anything due while the bot was down goes out now
    store = parts.subscriptions.store
    parts.votes = Votes(store.engine) if store is not None else None  # (database unavailable: not collected)
    if parts.journal is not None:
        parts.journal.bind(app.bot.id)  # update ids are per bot (getMe answered in initialize)
        for body in parts.journal.unfinished():  # fetched before a kill, never answered
            await app.update_queue.put(read_update(body, app.bot))
    loop = asyncio.get_running_loop()
    for sig in app.stop_signals:  # replaces python-telegram-bot's own handlers
        with contextlib.suppress(NotImplementedError):  # (not on Windows' event loop)
            loop.add_signal_handler(sig, _on_stop_signal, parts.settings.stop_grace)
    # Everything loaded so far (modules, bundles, the application) lives as long as the process: move it
    # out of the garbage collector's sight, so a full collection scans only what was made since. Without
    # this, a full collection under load stalled the event loop ~50-85 ms (bench/bot_load.py). No full
    # collection first: it took 60-90 ms before ready and found ~1,100 unreachable objects (~0.2 MB, classes
    # and functions left over from imports), which now stay. `python -m bot` keeps the collector off
    # until here (cmd_run): during start-up it ran ~320 times for ~0.09 s and found next to nothing.
    gc.freeze()
    gc.enable()
    log.info("serving %s as @%s", ", ".join(f"/{n}" for n in parts.catalog.names), app.bot.username)


async def on_stop(app: ProverbApplication) -> None:
    """post_stop (after every update in flight was answered): startup in reverse: votes, subscriptions (their
    messages in flight finish), generation, the heartbeat."""
    parts = app.parts
    parts.votes = None
    await parts.subscriptions.stop()
    await parts.generator.stop(timeout=parts.settings.stop_grace / 2)
    hb = parts.settings.heartbeat_file
    if hb is not None:
        if parts.status.failure:  # leave the reason for `python -m bot health`
            health.beat(hb, parts.status.line)
        else:
            hb.unlink(missing_ok=True)
    if parts.journal is not None:
        parts.journal.close()
    stats = parts.generator.stats
    log.info("stopped; generated %d proverbs in %d batches (largest %d)", stats.requests, stats.batches, stats.largest)


async def heartbeat(context: BotContext) -> None:
    """Job: rewrite the heartbeat file; it goes stale when the event loop is stuck."""
    health.beat(context.settings.heartbeat_file, context.parts.status.line)


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


def fail_for_good(app: ProverbApplication, why: str) -> None:
    """Polling can never succeed again: say why (once), fail the health check now, and stop the bot."""
    parts = app.parts
    if parts.status.failure:
        return
    parts.status.failure = why
    log.critical("%s; stopping", why)
    if parts.settings.heartbeat_file is not None:
        health.beat(parts.settings.heartbeat_file, parts.status.line)
    if app.stop_signals:  # a real process: it ends, whatever hangs
        arm_watchdog(parts.settings.stop_grace)
    app.stop_running()


async def set_commands(app: Application, entries: list[MenuEntry]) -> None:
    """Register the command menu: Russian for everyone (the default) and for "ru" users, English for "en" users.

    A failure is logged, not fatal.
    """
    try:
        for code, lang in ((None, "ru"), ("ru", "ru"), ("en", "en")):
            commands = [BotCommand(e.command, e.descriptions.get(lang) or e.descriptions["ru"]) for e in entries][:100]
            await app.bot.set_my_commands(commands, language_code=code)
    except TelegramError as e:
        log.warning("could not set the command menu: %s", e)


def run(app: ProverbApplication, stop_signals=None, close_loop: bool = True) -> None:
    """Serve until a stop signal (default: SIGINT, SIGTERM, SIGABRT): long polling, or a webhook when WEBHOOK_URL is set.

    On a stop signal, updates already fetched are answered before the process exits.
    """
    settings = app.parts.settings
    kwargs = {} if stop_signals is None else {"stop_signals": stop_signals or None}
    app.stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGABRT) if stop_signals is None else tuple(stop_signals)
    if settings.webhook_url:
        secret = settings.webhook_secret_token.get_secret_value() if settings.webhook_secret_token else secrets.token_urlsafe(32)
        REDACTOR.add(secret)
        app.run_webhook(
            listen=settings.webhook_listen,
            port=settings.webhook_port,
            url_path=settings.webhook_path,
            webhook_url=settings.webhook_url,
            secret_token=secret,
            allowed_updates=ALLOWED_UPDATES,
            close_loop=close_loop,
            **kwargs,
        )
    else:
        if settings.update_journal:
            open_journal(app)
        app.run_polling(
            timeout=settings.poll_timeout,
            allowed_updates=ALLOWED_UPDATES,
            close_loop=close_loop,
            **kwargs,
        )
