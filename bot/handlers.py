"""Telegram handlers: one command per culture (and its aliases), /start /help /random /about, inline mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re

from telegram import (
    InlineKeyboardMarkup, InlineQueryResultArticle, InputTextMessageContent, Message, ReplyParameters, Update,
)
from telegram.constants import ChatAction, ChatType
from telegram.error import RetryAfter, TelegramError
from telegram.ext import (
    Application, CallbackQueryHandler, CommandHandler, ContextTypes, InlineQueryHandler, MessageHandler, filters,
)

from charlm.text import normalize_prefix

from . import buttons, replies
from .limits import delivery_unknown
from .commands import ArgError, ProverbArgs, command_of, parse_args, replay_command
from .services import MenuEntry, Services, get_services
from .texts import lang_of, text

log = logging.getLogger(__name__)

# new messages only: an edited "/sufi" should not earn a second proverb
NEW_MESSAGES = filters.UpdateType.MESSAGE
TYPING_REPEAT = 4.5  # seconds; Telegram shows "typing…" for about 5 s per chat action


def user_lang(update: object) -> str:
    """The language of our texts for the user behind `update`."""
    user = update.effective_user if isinstance(update, Update) else None
    return lang_of(user.language_code if user else None)


async def send(update: Update, context: ContextTypes.DEFAULT_TYPE, body: str,
               reply_markup: InlineKeyboardMarkup | None = None, **kwargs) -> Message:
    """Answer the message in `update`: plain text; in groups as a reply to it, in topics in the topic."""
    msg = update.effective_message
    chat = update.effective_chat
    if reply_markup is not None:
        kwargs["reply_markup"] = reply_markup
    if chat.type != ChatType.PRIVATE:
        kwargs["reply_parameters"] = ReplyParameters(msg.message_id, allow_sending_without_reply=True)
    if msg.is_topic_message and msg.message_thread_id:
        kwargs["message_thread_id"] = msg.message_thread_id
    return await context.bot.send_message(chat.id, replies.fit(body), **kwargs)


@contextlib.asynccontextmanager
async def typing(context: ContextTypes.DEFAULT_TYPE, chat_id: int, delay: float):
    """Show "typing…" in `chat_id` while the body runs, once it has run `delay` seconds."""

    async def keep_typing() -> None:
        if delay > 0:
            await asyncio.sleep(delay)
        while True:
            try:
                await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
            except TelegramError as e:  # a missing indicator is not worth an error reply
                log.debug("chat action failed: %s", e)
            await asyncio.sleep(TYPING_REPEAT)

    if delay <= 0:  # show it before the work starts, so it is never later than the reply
        with contextlib.suppress(TelegramError):
            await context.bot.send_chat_action(chat_id, ChatAction.TYPING)
        delay = TYPING_REPEAT
    task = asyncio.create_task(keep_typing())
    try:
        yield
    finally:
        task.cancel()


def allowed(services: Services, update: Update) -> tuple[bool, float]:
    """Per-user rate limit: (allowed, seconds to wait)."""
    user = update.effective_user
    wait = services.users.check(user.id) if user else 0.0
    return wait == 0.0, wait


async def reply_proverb(update: Update, context: ContextTypes.DEFAULT_TYPE, name: str, rest: str) -> None:
    """Parse `rest` (prefix, t=, seed=), generate one proverb from bundle `name`, and send it."""
    services = get_services(context)
    lang = user_lang(update)
    ok, wait = allowed(services, update)
    if not ok:
        if services.users.should_warn(update.effective_user.id):
            await send(update, context, text("rate_limited", lang, seconds=max(1, round(wait))))
        return
    try:
        args = parse_args(rest, services.settings.max_user_temperature)
    except ArgError as e:
        await send(update, context, text(e.key, lang, **e.fields))
        return
    bundle = services.bundles[name]
    prefix = normalize_prefix(args.prefix)
    if len(prefix) > services.settings.max_prefix_length:
        await send(update, context, text("prefix_too_long", lang, length=len(prefix), limit=services.settings.max_prefix_length))
        return
    unknown = bundle.charset.unknown(prefix)
    if unknown:
        shown = ", ".join(f"«{c}»" if c.isprintable() and not c.isspace() else f"U+{ord(c):04X}" for c in unknown[:10])
        await send(update, context, text("bad_chars", lang, title=bundle.title, chars=shown))
        return
    request = services.request(name, args.seed, prefix, args.temperature)
    async with typing(context, update.effective_chat.id, services.settings.typing_delay):
        result = await services.proverbs(name, [request])
    replay = replay_command(name, ProverbArgs(args.prefix, args.temperature), request.seed)
    await send(update, context, replies.proverb_reply(result[0], replay),
               proverb_buttons(services, name, request.seed, args.temperature, prefix, lang))


def proverb_buttons(services: Services, name: str, seed: int, temperature: float | None, prefix: str, lang: str,
                    inline: bool = False) -> InlineKeyboardMarkup:
    """[🔄 Another] [👍] [👎] [↗ Share] for the proverb of bundle `name` with that seed, t= and prefix."""
    return buttons.keyboard(name, services.digest(name), seed, temperature, prefix, lang, inline)


# -- handlers -------------------------------------------------------------------------------------


async def culture(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply with a new proverb from the bundle the command (or alias) names."""
    services = get_services(context)
    cmd = command_of(update.effective_message)
    await reply_proverb(update, context, services.commands[cmd.name], cmd.rest)


async def random_culture(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Reply with a new proverb from a culture picked at random."""
    services = get_services(context)
    cmd = command_of(update.effective_message)
    await reply_proverb(update, context, random.choice(services.names), cmd.rest if cmd else "")


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Greet and list the loaded cultures and how to ask."""
    await send(update, context, replies.help_reply(get_services(context), user_lang(update), context.bot.username, hello=True))


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """List the loaded cultures and how to ask."""
    await send(update, context, replies.help_reply(get_services(context), user_lang(update), context.bot.username, hello=False))


async def about(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Describe one model: corpus size, validation bits per character, training date."""
    services = get_services(context)
    lang = user_lang(update)
    cmd = command_of(update.effective_message)
    first = re.match(r"/?(\w+)", cmd.rest) if cmd else None
    name = first.group(1).lower() if first else ""
    if not name:
        await send(update, context, text("about_usage", lang, example=services.names[0]))
    elif name not in services.commands:
        await send(update, context, text("about_unknown", lang, name=name[:40], commands=replies.command_list(services)))
    else:
        bundle = services.commands[name]
        tally = None
        if services.votes is not None:
            try:
                tally = await services.votes.tally(bundle, services.digest(bundle))
            except Exception as e:  # noqa: BLE001 - the database is down: /about still answers, without votes
                log.warning("could not count the votes for %s: %s", bundle, e)
        await send(update, context, replies.about_reply(services.bundles[bundle], lang, tally))


async def unknown_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Say that the command is unknown and which ones there are."""
    msg = update.effective_message
    cmd = command_of(msg)
    if update.effective_chat.type != ChatType.PRIVATE and (cmd.mention or "").lower() != (context.bot.username or "").lower():
        return  # in a group, a command without our name may be another bot's
    services = get_services(context)
    await send(update, context, text("unknown_command", user_lang(update), command=cmd.name[:40], commands=replies.command_list(services)))


async def plain_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Explain, in a private chat, that the bot answers commands."""
    services = get_services(context)
    example = services.names[0]
    await send(update, context, text("plain_text", user_lang(update), commands=replies.command_list(services),
                                     example=example, prefix=replies.example_prefix(services, example)))


async def inline_query(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """`@bot sufi [prefix]`: a few fresh proverbs to pick from (any culture when none is named)."""
    services = get_services(context)
    query = update.inline_query
    n = services.settings.inline_results
    ok, _ = allowed(services, update)
    if not ok:
        await query.answer([], cache_time=0, is_personal=True)
        return
    words = query.query.split(maxsplit=1)
    first = words[0].lstrip("/").lower() if words else ""
    named = first in services.commands
    rest = (words[1] if len(words) > 1 else "") if named else query.query
    try:  # `sufi Однажды t=0.6 seed=42` (a shared replay command) gives that very proverb
        args = parse_args(rest, services.settings.max_user_temperature)
    except ArgError:
        args = ProverbArgs(rest)
    if named:
        names = [services.commands[first]] * (1 if args.seed is not None else n)
    else:  # no culture named: the whole query is the start, from cultures picked at random
        names = [random.choice(services.names) for _ in range(n)]
    n = len(names)
    prefix = normalize_prefix(args.prefix)[: services.settings.max_prefix_length]
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    requests = [None] * n
    for name, rows in groups.items():
        # inline mode has no room to explain: characters the model lacks are dropped
        p = services.bundles[name].charset.filter(prefix)
        for i in rows:
            requests[i] = services.request(name, args.seed if named else None, p, args.temperature)
    outcomes = await asyncio.gather(*(services.proverbs(name, [requests[i] for i in rows]) for name, rows in groups.items()))
    results = [None] * n
    for (name, rows), res in zip(groups.items(), outcomes):
        for i, r in zip(rows, res):
            results[i] = r
    articles = []
    lang = user_lang(update)
    for i, (name, req, res) in enumerate(zip(names, requests, results)):
        body = replies.proverb_reply(res, replay_command(name, ProverbArgs(req.prefix, args.temperature), req.seed))
        articles.append(InlineQueryResultArticle(
            id=f"{name}-{req.seed}-{i}",
            title=services.bundles[name].title,
            description=(res.text or "…")[:120],
            input_message_content=InputTextMessageContent(body),
            reply_markup=proverb_buttons(services, name, req.seed, args.temperature, req.prefix, lang, inline=True),
        ))
    await query.answer(articles, cache_time=0, is_personal=True)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Log the error with its traceback and tell the user something went wrong."""
    error = context.error
    uid = getattr(update, "update_id", None)
    if update is None and isinstance(error, TelegramError):  # polling failed; it retries with backoff
        log.warning("polling: %s: %s", type(error).__name__, error)
        return
    if delivery_unknown(error):  # the reply may well have arrived: no second message, no error notice
        log.warning("update %s: the reply may not have arrived (%s: %s); not sent again", uid, type(error).__name__,
                    getattr(error, "message", error))
        return
    if isinstance(error, RetryAfter):  # the notice would meet the same flood limit
        log.warning("update %s: reply dropped after waiting out Telegram's flood limit (%s)", uid, error)
        return
    log.error("error while handling update %s", getattr(update, "update_id", None), exc_info=context.error)
    if not isinstance(update, Update) or update.effective_chat is None or update.effective_message is None:
        return
    try:
        # one retry at most: the chat may be what is failing
        retries = {"rate_limit_args": 1} if getattr(context.bot, "rate_limiter", None) else {}
        await send(update, context, text("error", user_lang(update)), **retries)  # (in the topic it came from)
    except Exception as e:  # noqa: BLE001 - the chat may be unreachable; the error is logged above
        log.warning("could not tell chat %s about the error: %s", update.effective_chat.id, e)


# -- registration ---------------------------------------------------------------------------------


def register(app: Application, services: Services) -> None:
    """Add the core handlers (group 0) and their command-menu entries."""
    from . import presses  # it uses this module's helpers

    app.add_handler(CommandHandler("start", start, filters=NEW_MESSAGES))
    app.add_handler(CommandHandler("help", help_command, filters=NEW_MESSAGES))
    app.add_handler(CommandHandler("random", random_culture, filters=NEW_MESSAGES))
    app.add_handler(CommandHandler("about", about, filters=NEW_MESSAGES))
    app.add_handler(CommandHandler(sorted(services.commands), culture, filters=NEW_MESSAGES))
    app.add_handler(InlineQueryHandler(inline_query))
    app.add_handler(CallbackQueryHandler(presses.on_press))
    for name in services.names:
        title = services.bundles[name].title
        services.menu.append(MenuEntry(name, {lang: text("menu_culture", lang, title=title) for lang in ("ru", "en")}))
    for command in ("random", "about", "help", "start"):
        services.menu.append(MenuEntry(command, {lang: text(f"menu_{command}", lang) for lang in ("ru", "en")}))


def register_fallbacks(app: Application, services: Services) -> None:
    """Add the replies to anything no other handler took: unknown commands, plain text in private chats."""
    app.add_handler(MessageHandler(NEW_MESSAGES & filters.COMMAND, unknown_command))
    app.add_handler(MessageHandler(NEW_MESSAGES & filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE, plain_text))
    app.add_error_handler(on_error)
