"""Commands: /subscribe [NAME|random] [HH:MM], /unsubscribe [NAME|random|all], /subscriptions, /timezone [TZ]."""

from __future__ import annotations

import functools
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from telegram import Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import TelegramError

from ..catalog import Catalog
from ..handlers import send, user_lang
from ..replies import command_list
from .scheduler import database_error
from .store import RANDOM, Subscription
from .texts import text
from .timing import find_zone, format_time, parse_time, zone

if TYPE_CHECKING:
    from ..context import BotContext

log = logging.getLogger(__name__)

RANDOM_WORDS = {RANDOM, "any", "случайно", "любая", "любой"}
ALL_WORDS = {"all", "все", "всё"}
ADMINS = {ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER}
# the bot's own membership after which a chat's subscriptions go: it was blocked, banned, or removed
REMOVED = {ChatMemberStatus.BANNED, ChatMemberStatus.LEFT}


async def may_change(update: Update, context: BotContext) -> bool:
    """Private chats: yes. Groups: only the chat's administrators (asked of Telegram: getChatMember)."""
    chat = update.effective_chat
    if chat.type == ChatType.PRIVATE:
        return True
    msg = update.effective_message
    if msg.sender_chat is not None and msg.sender_chat.id == chat.id:
        return True  # an anonymous administrator writes as the group itself
    user = update.effective_user
    if user is None:
        return False
    try:
        member = await context.bot.get_chat_member(chat.id, user.id)
    except TelegramError as e:
        log.warning("could not check whether user %s administers chat %s: %s", user.id, chat.id, e)
        return False
    return member.status in ADMINS


def what(catalog: Catalog, culture: str, lang: str) -> str:
    """How a subscription's culture reads: "a parable from a random culture", "a parable from “Sufi parables” (/sufi)"."""
    if culture == RANDOM:
        return text("what_random", lang)
    bundle = catalog.bundles.get(culture)
    if bundle is None:
        return text("what_gone", lang, name=culture)
    return text("what_culture", lang, title=bundle.title, name=culture)


def when(sub: Subscription, now: datetime, lang: str) -> str:
    """The next delivery in the chat's own terms: "today at 09:00", "tomorrow at 09:00", "on 2024-05-03 at 09:00"."""
    today = now.astimezone(zone(sub.timezone)).date()
    t = format_time(sub.at)
    if sub.due_date == today:
        return text("today", lang, time=t)
    if sub.due_date == today + timedelta(days=1):
        return text("tomorrow", lang, time=t)
    return text("on_date", lang, date=sub.due_date.isoformat(), time=t)


def lines(catalog: Catalog, subs: list[Subscription], now: datetime, lang: str) -> str:
    return "\n".join(text("line", lang, what=what(catalog, s.culture, lang), time=format_time(s.at), when=when(s, now, lang))
                     for s in subs)


def local_now(tz: str, now: datetime) -> str:
    return now.astimezone(zone(tz)).strftime("%H:%M")


# -- handlers -------------------------------------------------------------------------------------


async def subscribe(update: Update, context: BotContext) -> None:
    """Subscribe the chat to a daily proverb: a culture (or a random one each day) at a local time."""
    catalog, scheduler = context.catalog, context.subscriptions
    lang = user_lang(update)
    if not await may_change(update, context):
        await send(update, text("admins_only", lang))
        return
    default_at = parse_time(context.settings.subscription_default_time)
    culture, at = None, None
    for arg in context.args:
        word = arg.lower().lstrip("/")
        t = parse_time(arg)
        if t is not None and at is None:
            at = t
        elif culture is None and word in catalog.commands:
            culture = catalog.commands[word]
        elif culture is None and word in RANDOM_WORDS:
            culture = RANDOM
        else:
            await send(update, text("subscribe_usage", lang, arg=arg[:40], default=format_time(default_at),
                                    example=catalog.names[0], commands=command_list(catalog)))
            return
    now = scheduler.clock()
    sub, created = await scheduler.store.subscribe(update.effective_chat.id, culture or RANDOM, at or default_at, now)
    scheduler.wake()
    await send(update, text("created" if created else "changed", lang, what=what(catalog, sub.culture, lang),
                            time=format_time(sub.at), tz=sub.timezone, when=when(sub, now, lang)))


async def unsubscribe(update: Update, context: BotContext) -> None:
    """Cancel the chat's subscription to one culture, or all of them."""
    catalog, scheduler = context.catalog, context.subscriptions
    lang = user_lang(update)
    if not await may_change(update, context):
        await send(update, text("admins_only", lang))
        return
    args = context.args
    word = args[0].lower().lstrip("/") if args else ""
    chat_id = update.effective_chat.id
    if not word or word in ALL_WORDS:
        n = await scheduler.store.unsubscribe(chat_id)
        await send(update, text("unsubscribed_all", lang, n=n) if n else text("unsubscribed_none", lang))
        return
    culture = RANDOM if word in RANDOM_WORDS else catalog.commands.get(word, word)
    if await scheduler.store.unsubscribe(chat_id, culture):
        await send(update, text("unsubscribed_one", lang, what=what(catalog, culture, lang)))
    else:
        await send(update, text("not_subscribed", lang, name=args[0][:40]))


async def subscriptions(update: Update, context: BotContext) -> None:
    """Show the chat's subscriptions, their times and the next delivery."""
    catalog, scheduler = context.catalog, context.subscriptions
    lang = user_lang(update)
    chat_id = update.effective_chat.id
    subs = await scheduler.store.of_chat(chat_id)
    now = scheduler.clock()
    if not subs:
        tz = await scheduler.store.timezone(chat_id)
        await send(update, text("none", lang, default=context.settings.subscription_default_time, tz=tz,
                                example=catalog.names[0]))
        return
    await send(update, text("list", lang, tz=subs[0].timezone, lines=lines(catalog, subs, now, lang)))


async def timezone(update: Update, context: BotContext) -> None:
    """Show or set the chat's time zone (an IANA name, any case, or a city that names one)."""
    catalog, scheduler = context.catalog, context.subscriptions
    lang = user_lang(update)
    chat_id = update.effective_chat.id
    now = scheduler.clock()
    args = context.args
    if not args:
        tz = await scheduler.store.timezone(chat_id)
        await send(update, text("timezone_show", lang, tz=tz, local=local_now(tz, now)))
        return
    if not await may_change(update, context):
        await send(update, text("admins_only", lang))
        return
    name = " ".join(args)
    tz = find_zone(name)
    if tz is None:
        await send(update, text("timezone_unknown", lang, name=name[:64]))
        return
    subs = await scheduler.store.set_timezone(chat_id, tz, now)
    scheduler.wake()
    reply = text("timezone_set", lang, tz=tz, local=local_now(tz, now))
    if subs:
        reply += "\n" + text("timezone_moved", lang, lines=lines(catalog, subs, now, lang))
    await send(update, reply)


async def my_chat_member(update: Update, context: BotContext) -> None:
    """The bot was blocked, or removed from a group: its subscriptions there go too."""
    change = update.my_chat_member
    if change.new_chat_member.status in REMOVED:
        n = await context.subscriptions.store.forget_chat(change.chat.id)
        if n:
            log.info("chat %s: the bot is %s; removed its %d subscription(s)", change.chat.id,
                     change.new_chat_member.status, n)


def guarded(handler):
    """`handler`, but while the database is unavailable (or when it fails now) the user hears so, politely."""

    @functools.wraps(handler)
    async def run(update: Update, context: BotContext) -> None:
        scheduler = context.subscriptions
        if scheduler.store is not None:
            try:
                await handler(update, context)
            except Exception as e:  # noqa: BLE001 - the database's trouble only; the rest reaches the error handler
                if not (isinstance(e, OSError) or database_error(e)):
                    raise
                scheduler.database_failed(e, f"the subscriptions database failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
            else:
                scheduler.database_worked()
                return
        if update.effective_message is not None and update.effective_chat is not None:
            await send(update, text("unavailable", user_lang(update), commands=command_list(context.catalog)))

    return run

