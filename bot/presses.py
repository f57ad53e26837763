"""Presses of the buttons under a proverb (bot.buttons): [🔄 Another] sends a new one, [👍]/[👎] record a vote.

Every press is answered (answerCallbackQuery), with a toast where there is something to say; data this bot
would not have written, or a bundle that is gone, gets a polite toast and nothing else.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from telegram import Message, Update

from charlm.text import normalize_prefix

from . import buttons, replies
from .catalog import Catalog
from .commands import ProverbArgs, replay_command
from .handlers import allowed, proverb_buttons, typing, user_lang
from .texts import text
from .subscriptions.db import reason
from .subscriptions.scheduler import database_error
from .votes import Ballot

if TYPE_CHECKING:
    from .context import BotContext
    from .settings import BotSettings

log = logging.getLogger(__name__)

EMOJI = {1: "👍", -1: "👎"}


async def on_press(update: Update, context: BotContext) -> None:
    """Answer a press of a proverb's button: another proverb, or a vote; a polite toast for stale data."""
    query = update.callback_query
    settings, catalog = context.settings, context.catalog
    lang = user_lang(update)
    ok, wait = allowed(context.users, update)
    if not ok:
        await query.answer(text("press_rate_limited", lang, seconds=max(1, round(wait))))
        return
    press = buttons.decode(query.data, settings.max_user_temperature)
    if press is None:
        # repr first: data may be a number or an object (a forged press), which cannot be sliced (issue 24)
        log.debug("refused callback data %s", repr(query.data)[:80])
        await query.answer(text("press_stale", lang))
        return
    if press.name not in catalog.bundles:
        await query.answer(text("press_gone", lang, commands=replies.command_list(catalog)))
        return
    message = query.message if isinstance(query.message, Message) else None
    prefix = press.prefix
    if prefix is None:  # too long for the data: the message's replay line has it
        prefix = buttons.prefix_from_replay(message.text if message else None, press, settings.max_user_temperature)
    if prefix is None or not valid_prefix(catalog, settings, press.name, prefix):
        await query.answer(text("press_stale", lang))
        return
    if press.action == "more":
        await another(update, context, press, prefix, lang)
    else:
        await vote(update, context, press, prefix, lang)


def valid_prefix(catalog: Catalog, settings: BotSettings, name: str, prefix: str) -> bool:
    """A prefix this bot could have put in a button: normalized, not too long, every character known to the model."""
    return (normalize_prefix(prefix) == prefix and len(prefix) <= settings.max_prefix_length
            and not catalog.bundles[name].charset.unknown(prefix))


async def another(update: Update, context: BotContext, press: buttons.Press, prefix: str, lang: str) -> None:
    """A new proverb from the same bundle with the same settings and a new seed, with its own buttons.

    Under a message in a chat it is sent to that chat; under an inline-mode message (no chat is known) it
    replaces the text of that message.
    """
    catalog = context.catalog
    query = update.callback_query
    await query.answer()  # stops the button's spinner now; the proverb follows
    request = catalog.request(press.name, None, prefix, press.temperature)
    chat = query.message.chat if query.message is not None else None
    if chat is not None:
        async with typing(context, chat.id, context.settings.typing_delay):
            [result] = await context.generator.generate([(press.name, request)])
    else:
        [result] = await context.generator.generate([(press.name, request)])
    body = replies.proverb_reply(result, replay_command(press.name, ProverbArgs(prefix, press.temperature), request.seed))
    markup = proverb_buttons(catalog, press.name, request.seed, press.temperature, prefix, lang, inline=chat is None)
    if chat is not None:
        msg = query.message
        thread = msg.message_thread_id if isinstance(msg, Message) and msg.is_topic_message else None
        await context.bot.send_message(chat.id, body, reply_markup=markup, message_thread_id=thread)
    elif query.inline_message_id:
        await context.bot.edit_message_text(body, inline_message_id=query.inline_message_id, reply_markup=markup)


async def vote(update: Update, context: BotContext, press: buttons.Press, prefix: str, lang: str) -> None:
    """Record the reader's 👍/👎 on the proverb (one per reader and proverb, changeable); a toast says what happened."""
    catalog, votes = context.catalog, context.votes
    query = update.callback_query
    if votes is None:
        await query.answer(text("press_no_votes", lang))
        return
    digest = catalog.digest(press.name)
    if not catalog.version(press.name, press.temperature).startswith(press.tag):  # another model or settings
        await query.answer(text("press_retrained", lang))
        return
    # the text is regenerated, not read from the message: inline-mode messages have none, and this way the
    # recorded hash always belongs to the recorded bundle, seed, prefix and settings
    request = catalog.request(press.name, press.seed, prefix, press.temperature)
    try:
        [result] = await context.generator.generate([(press.name, request)])
        old = await votes.cast(Ballot(
            user_id=update.effective_user.id, bundle=press.name, bundle_sha256=digest, seed=press.seed, prefix=prefix,
            temperature=press.temperature, settings=request.settings, text=result.text, value=press.vote))
    except Exception as e:  # noqa: BLE001 - the reader hears the vote was not taken
        if isinstance(e, OSError) or database_error(e):  # one line (it was two tracebacks per vote)
            why = f"the database failed: {type(e).__name__}: {reason(e)[:200]}"
            log.error("could not record a vote on %s seed=%s: %s", press.name, press.seed, why)
            context.subscriptions.database_failed(e, why)  # health says so (it said "ok" while votes were lost)
        else:
            log.exception("could not record a vote on %s seed=%s", press.name, press.seed)
        await query.answer(text("press_failed", lang))
        return
    context.subscriptions.database_worked()
    mark = EMOJI[press.vote]
    key = "press_voted" if old == 0 else "press_same" if old == press.vote else "press_changed"
    await query.answer(text(key, lang, vote=mark))
