"""Presses of the buttons under a proverb (bot.buttons): [🔄 Another] sends a new one, [👍]/[👎] record a vote.

Every press is answered (answerCallbackQuery), with a toast where there is something to say; data this bot
would not have written, or a bundle that is gone, gets a polite toast and nothing else.
"""

from __future__ import annotations

import logging

from telegram import Message, Update
from telegram.ext import ContextTypes

from charlm.text import normalize_prefix

from . import buttons, replies
from .commands import ProverbArgs, replay_command
from .handlers import allowed, proverb_buttons, typing, user_lang
from .services import Services, get_services
from .texts import text
from .votes import Ballot

log = logging.getLogger(__name__)

EMOJI = {1: "👍", -1: "👎"}


async def on_press(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Answer a press of a proverb's button: another proverb, or a vote; a polite toast for stale data."""
    query = update.callback_query
    services = get_services(context)
    lang = user_lang(update)
    ok, wait = allowed(services, update)
    if not ok:
        await query.answer(text("press_rate_limited", lang, seconds=max(1, round(wait))))
        return
    press = buttons.decode(query.data, services.settings.max_user_temperature)
    if press is None:
        log.debug("refused callback data %r", (query.data or "")[:80])
        await query.answer(text("press_stale", lang))
        return
    if press.name not in services.bundles:
        await query.answer(text("press_gone", lang, commands=replies.command_list(services)))
        return
    message = query.message if isinstance(query.message, Message) else None
    prefix = press.prefix
    if prefix is None:  # too long for the data: the message's replay line has it
        prefix = buttons.prefix_from_replay(message.text if message else None, press, services.settings.max_user_temperature)
    if prefix is None or not valid_prefix(services, press.name, prefix):
        await query.answer(text("press_stale", lang))
        return
    if press.action == "more":
        await another(update, context, press, prefix, lang)
    else:
        await vote(update, context, press, prefix, lang)


def valid_prefix(services: Services, name: str, prefix: str) -> bool:
    """A prefix this bot could have put in a button: normalized, not too long, every character known to the model."""
    return (normalize_prefix(prefix) == prefix and len(prefix) <= services.settings.max_prefix_length
            and not services.bundles[name].charset.unknown(prefix))


async def another(update: Update, context: ContextTypes.DEFAULT_TYPE, press: buttons.Press, prefix: str, lang: str) -> None:
    """A new proverb from the same bundle with the same settings and a new seed, with its own buttons.

    Under a message in a chat it is sent to that chat; under an inline-mode message (no chat is known) it
    replaces the text of that message.
    """
    services = get_services(context)
    query = update.callback_query
    await query.answer()  # stops the button's spinner now; the proverb follows
    request = services.request(press.name, None, prefix, press.temperature)
    chat = query.message.chat if query.message is not None else None
    if chat is not None:
        async with typing(context, chat.id, services.settings.typing_delay):
            result = (await services.proverbs(press.name, [request]))[0]
    else:
        result = (await services.proverbs(press.name, [request]))[0]
    body = replies.proverb_reply(result, replay_command(press.name, ProverbArgs(prefix, press.temperature), request.seed))
    markup = proverb_buttons(services, press.name, request.seed, press.temperature, prefix, lang, inline=chat is None)
    if chat is not None:
        msg = query.message
        thread = msg.message_thread_id if isinstance(msg, Message) and msg.is_topic_message else None
        await context.bot.send_message(chat.id, body, reply_markup=markup, message_thread_id=thread)
    elif query.inline_message_id:
        await context.bot.edit_message_text(body, inline_message_id=query.inline_message_id, reply_markup=markup)


async def vote(update: Update, context: ContextTypes.DEFAULT_TYPE, press: buttons.Press, prefix: str, lang: str) -> None:
    """Record the reader's 👍/👎 on the proverb (one per reader and proverb, changeable); a toast says what happened."""
    services = get_services(context)
    query = update.callback_query
    if services.votes is None:
        await query.answer(text("press_no_votes", lang))
        return
    digest = services.digest(press.name)
    if not digest.startswith(press.tag):
        await query.answer(text("press_retrained", lang))
        return
    # the text is regenerated, not read from the message: inline-mode messages have none, and this way the
    # recorded hash always belongs to the recorded bundle, seed, prefix and settings
    request = services.request(press.name, press.seed, prefix, press.temperature)
    try:
        result = (await services.proverbs(press.name, [request]))[0]
        old = await services.votes.cast(Ballot(
            user_id=update.effective_user.id, bundle=press.name, bundle_sha256=digest, seed=press.seed, prefix=prefix,
            temperature=press.temperature, settings=request.settings, text=result.text, value=press.vote))
    except Exception:  # noqa: BLE001 - the database is down: the reader hears so, the log has the traceback
        log.exception("could not record a vote on %s seed=%s", press.name, press.seed)
        await query.answer(text("press_failed", lang))
        return
    mark = EMOJI[press.vote]
    key = "press_voted" if old == 0 else "press_same" if old == press.vote else "press_changed"
    await query.answer(text(key, lang, vote=mark))
