"""Telegram handlers: one command per culture (and its aliases), /start /help /random /about, inline mode."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
from typing import TYPE_CHECKING

from telegram import InlineKeyboardMarkup, InlineQueryResultArticle, InputTextMessageContent, Message, ReplyParameters, Update
from telegram.constants import ChatAction, ChatType
from telegram.error import RetryAfter, TelegramError

from charlm.text import normalize_prefix

from . import buttons, replies
from .catalog import Catalog
from .commands import ArgError, ProverbArgs, command_of, parse_args, replay_command
from .limits import UserRateLimiter, delivery_unknown
from .texts import lang_of, text

if TYPE_CHECKING:
    from .context import BotContext

log = logging.getLogger(__name__)

TYPING_REPEAT = 4.5  # seconds; Telegram shows "typing…" for about 5 s per chat action


def user_lang(update: object) -> str:
    """The language of our texts for the user behind `update`."""
    user = update.effective_user if isinstance(update, Update) else None
    return lang_of(user.language_code if user else None)


async def send(update: Update, body: str, reply_markup: InlineKeyboardMarkup | None = None) -> Message:
    """Answer the message in `update` with plain text cut to Telegram's limit (reply_text: in groups as a
    reply to it, in a forum topic in that topic)."""
    return await update.effective_message.reply_text(replies.fit(body), reply_markup=reply_markup,
                                                     allow_sending_without_reply=True)


@contextlib.asynccontextmanager
async def typing(context: BotContext, chat_id: int, delay: float):
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


def allowed(users: UserRateLimiter, update: Update) -> tuple[bool, float]:
    """Per-user rate limit: (allowed, seconds to wait)."""
    user = update.effective_user
    wait = users.check(user.id) if user else 0.0
    return wait == 0.0, wait


async def reply_proverb(update: Update, context: BotContext, name: str, rest: str) -> None:
    """Parse `rest` (prefix, t=, seed=), generate one proverb from bundle `name`, and send it."""
    settings, catalog = context.settings, context.catalog
    lang = user_lang(update)
    ok, wait = allowed(context.users, update)
    if not ok:
        if context.users.should_warn(update.effective_user.id):
            await send(update, text("rate_limited", lang, seconds=max(1, round(wait))))
        return
    try:
        args = parse_args(rest, settings.max_user_temperature)
    except ArgError as e:
        await send(update, text(e.key, lang, **e.fields))
        return
    bundle = catalog.bundles[name]
    prefix = normalize_prefix(args.prefix)
    if len(prefix) > settings.max_prefix_length:
        await send(update, text("prefix_too_long", lang, length=len(prefix), limit=settings.max_prefix_length))
        return
    unknown = bundle.charset.unknown(prefix)
    if unknown:
        shown = ", ".join(f"«{c}»" if c.isprintable() and not c.isspace() else f"U+{ord(c):04X}" for c in unknown[:10])
        await send(update, text("bad_chars", lang, title=bundle.title, chars=shown))
        return
    request = catalog.request(name, args.seed, prefix, args.temperature)
    async with typing(context, update.effective_chat.id, settings.typing_delay):
        [result] = await context.generator.generate([(name, request)])
    # the prefix as normalized, here as in the buttons: read back, it must be the same (issue 24: a decomposed
    # letter in a long prefix, read from the replay line as typed, made every button "expired")
    replay = replay_command(name, ProverbArgs(prefix, args.temperature), request.seed)
    await send(update, replies.proverb_reply(result, replay),
               proverb_buttons(catalog, name, request.seed, args.temperature, prefix, lang))


def proverb_buttons(catalog: Catalog, name: str, seed: int, temperature: float | None, prefix: str, lang: str,
                    inline: bool = False) -> InlineKeyboardMarkup:
    """[🔄 Another] [👍] [👎] [↗ Share] for the proverb of bundle `name` with that seed, t= and prefix."""
    return buttons.keyboard(name, catalog.version(name, temperature), seed, temperature, prefix, lang, inline)


# -- handlers -------------------------------------------------------------------------------------


async def culture(update: Update, context: BotContext) -> None:
    """Reply with a new proverb from the bundle the command (or alias) names."""
    cmd = command_of(update.effective_message)
    await reply_proverb(update, context, context.catalog.commands[cmd.name], cmd.rest)


async def random_culture(update: Update, context: BotContext) -> None:
    """Reply with a new proverb from a culture picked at random."""
    cmd = command_of(update.effective_message)
    await reply_proverb(update, context, random.choice(context.catalog.names), cmd.rest if cmd else "")


async def start(update: Update, context: BotContext) -> None:
    """Greet and list the loaded cultures and how to ask."""
    await send(update, replies.help_reply(context.catalog, user_lang(update), context.bot.username, hello=True))


async def help_command(update: Update, context: BotContext) -> None:
    """List the loaded cultures and how to ask."""
    await send(update, replies.help_reply(context.catalog, user_lang(update), context.bot.username, hello=False))


async def about(update: Update, context: BotContext) -> None:
    """Describe one model: corpus size, validation bits per character, training date."""
    catalog = context.catalog
    lang = user_lang(update)
    first = re.match(r"/?(\w+)", context.args[0]) if context.args else None
    name = first.group(1).lower() if first else ""
    if not name:
        await send(update, text("about_usage", lang, example=catalog.names[0]))
    elif name not in catalog.commands:
        await send(update, text("about_unknown", lang, name=name[:40], commands=replies.command_list(catalog)))
    else:
        bundle = catalog.commands[name]
        tally = None
        if context.votes is not None:
            try:
                tally = await context.votes.tally(bundle, catalog.digest(bundle))
            except Exception as e:  # noqa: BLE001 - the database is down: /about still answers, without votes
                log.warning("could not count the votes for %s: %s", bundle, e)
        await send(update, replies.about_reply(catalog.bundles[bundle], lang, tally))


async def unknown_command(update: Update, context: BotContext) -> None:
    """Say that the command is unknown and which ones there are."""
    cmd = command_of(update.effective_message)
    ours = (cmd.mention or "").lower() == (context.bot.username or "").lower()
    if cmd.mention and not ours:
        return  # another bot's, in any chat (issue 24: in a private chat /sufi@OtherBot got «Не знаю команды /sufi»)
    if update.effective_chat.type != ChatType.PRIVATE and not ours:
        return  # in a group, a command without our name may be another bot's
    await send(update, text("unknown_command", user_lang(update), command=cmd.name[:40],
                            commands=replies.command_list(context.catalog)))


async def plain_text(update: Update, context: BotContext) -> None:
    """Explain, in a private chat, that the bot answers commands."""
    catalog = context.catalog
    example = catalog.names[0]
    await send(update, text("plain_text", user_lang(update), commands=replies.command_list(catalog),
                            example=example, prefix=replies.example_prefix(catalog, example)))


async def inline_query(update: Update, context: BotContext) -> None:
    """`@bot sufi [prefix]`: a few fresh proverbs to pick from (any culture when none is named)."""
    settings, catalog = context.settings, context.catalog
    query = update.inline_query
    n = settings.inline_results
    ok, _ = allowed(context.users, update)
    if not ok:
        await query.answer([], cache_time=0, is_personal=True)
        return
    words = query.query.split(maxsplit=1)
    first = words[0].lstrip("/").lower() if words else ""
    named = first in catalog.commands
    rest = (words[1] if len(words) > 1 else "") if named else query.query
    # `sufi Однажды t=0.6 seed=42` (a shared replay command) gives that very proverb; a bad option is left out
    # (issue 24: `sufi seed=garbage` became the prefix «seeaae», the letters the model knows)
    args = parse_args(rest, settings.max_user_temperature, lenient=True)
    if named:
        names = [catalog.commands[first]] * (1 if args.seed is not None else n)
    else:  # no culture named: the whole query is the start, from cultures picked at random
        names = [random.choice(catalog.names) for _ in range(n)]
    prefix = normalize_prefix(args.prefix)[: settings.max_prefix_length]
    # inline mode has no room to explain: characters the model lacks are dropped
    requests = [catalog.request(name, args.seed if named else None, catalog.bundles[name].charset.filter(prefix),
                                args.temperature) for name in names]
    results = await context.generator.generate(list(zip(names, requests)))
    articles = []
    lang = user_lang(update)
    for i, (name, req, res) in enumerate(zip(names, requests, results)):
        body = replies.proverb_reply(res, replay_command(name, ProverbArgs(req.prefix, args.temperature), req.seed))
        articles.append(InlineQueryResultArticle(
            id=f"{name}-{req.seed}-{i}",
            title=catalog.bundles[name].title,
            description=(res.text or "…")[:120],
            input_message_content=InputTextMessageContent(body),
            reply_markup=proverb_buttons(catalog, name, req.seed, args.temperature, req.prefix, lang, inline=True),
        ))
    await query.answer(articles, cache_time=0, is_personal=True)


async def on_error(update: object, context: BotContext) -> None:
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
    log.error("error while handling update %s", uid, exc_info=error)
    msg = update.effective_message if isinstance(update, Update) else None
    if msg is None or update.effective_chat is None:
        return
    try:
        # as send() (reply_text), but with one retry at most, which reply_text cannot ask the rate limiter
        # for: the chat may be what is failing
        retries = {"rate_limit_args": 1} if getattr(context.bot, "rate_limiter", None) else {}
        quote = ReplyParameters(msg.message_id, allow_sending_without_reply=True) if msg.chat.type != ChatType.PRIVATE else None
        await context.bot.send_message(msg.chat_id, text("error", user_lang(update)), reply_parameters=quote,
                                       message_thread_id=msg.message_thread_id if msg.is_topic_message else None,
                                       **retries)
    except Exception as e:  # noqa: BLE001 - the chat may be unreachable; the error is logged above
        log.warning("could not tell chat %s about the error: %s", update.effective_chat.id, e)
