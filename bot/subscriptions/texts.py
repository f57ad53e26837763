"""What the subscription commands say: Russian by default, English for English-speaking users (as bot.texts)."""

from __future__ import annotations

from ..texts import DEFAULT_LANG, lookup

TEXTS: dict[str, dict[str, str]] = {
    "unavailable": {
        "ru": "Подписки сейчас недоступны: не открывается база данных. Притчи — как обычно: {commands}",
        "en": "Subscriptions are unavailable right now: the database cannot be opened. Parables work as usual: {commands}",
    },
    "created": {
        "ru": "Готово: {what} каждый день в {time} ({tz}). Первая — {when}.",
        "en": "Done: {what} every day at {time} ({tz}). The first one: {when}.",
    },
    "changed": {
        "ru": "Изменил: {what} каждый день в {time} ({tz}). Следующая — {when}.",
        "en": "Changed: {what} every day at {time} ({tz}). The next one: {when}.",
    },
    "what_random": {"ru": "притча из случайного сборника", "en": "a parable from a random culture"},
    # «притча «Суфийские притчи»» read badly (issue 25): the title is the collection's, so "from"
    "what_culture": {"ru": "притча из сборника «{title}» (/{name})", "en": "a parable from “{title}” (/{name})"},
    "what_gone": {"ru": "притча /{name} (этой модели сейчас нет: пришлю из случайного сборника)",
                  "en": "a /{name} parable (that model is gone for now: a random culture instead)"},
    "today": {"ru": "сегодня в {time}", "en": "today at {time}"},
    "tomorrow": {"ru": "завтра в {time}", "en": "tomorrow at {time}"},
    "on_date": {"ru": "{date} в {time}", "en": "on {date} at {time}"},
    "subscribe_usage": {
        "ru": "Не понял «{arg}». Так: /subscribe — притча из случайного сборника каждый день в {default}; "
              "/subscribe {example} 08:30 — из сборника /{example} в 08:30. Сборники: {commands}",
        "en": "I don't understand “{arg}”. Like this: /subscribe — a parable from a random culture every day at {default}; "
              "/subscribe {example} 08:30 — from /{example} at 08:30. Cultures: {commands}",
    },
    "none": {
        "ru": "Подписок нет. /subscribe — притча каждый день в {default} ({tz}); /subscribe {example} 08:30 — своя.",
        "en": "No subscriptions. /subscribe — a parable every day at {default} ({tz}); /subscribe {example} 08:30 — your own.",
    },
    "list": {
        "ru": "Подписки (часовой пояс {tz}):\n{lines}\n\n/unsubscribe — отменить, /timezone — сменить часовой пояс.",
        "en": "Subscriptions (time zone {tz}):\n{lines}\n\n/unsubscribe — cancel, /timezone — change the time zone.",
    },
    "line": {"ru": "• {what} — в {time}, следующая {when}", "en": "• {what} — at {time}, next {when}"},
    "unsubscribed_one": {"ru": "Отменил: {what}.", "en": "Cancelled: {what}."},
    "unsubscribed_all": {"ru": "Отменил все подписки ({n}).", "en": "Cancelled all subscriptions ({n})."},
    "unsubscribed_none": {"ru": "Подписок и так нет.", "en": "There are no subscriptions."},
    "not_subscribed": {"ru": "Подписки «{name}» нет. Какие есть: /subscriptions",
                       "en": "There is no “{name}” subscription. See /subscriptions"},
    "timezone_show": {
        "ru": "Часовой пояс: {tz} (там сейчас {local}). Сменить: /timezone Europe/Moscow — имя из базы IANA или город.",
        "en": "Time zone: {tz} (it is {local} there now). Change it: /timezone Europe/London — an IANA name or a city.",
    },
    "timezone_set": {"ru": "Часовой пояс: {tz} (там сейчас {local}).", "en": "Time zone: {tz} (it is {local} there now)."},
    "timezone_moved": {"ru": "Подписки теперь по нему:\n{lines}", "en": "Subscriptions now follow it:\n{lines}"},
    "timezone_unknown": {
        "ru": "Не знаю часового пояса «{name}». Нужно имя из базы IANA или город: Europe/Moscow, Asia/Yerevan, Jerusalem, UTC.",
        "en": "I don't know the time zone “{name}”. Give an IANA name or a city: Europe/London, Asia/Yerevan, Jerusalem, UTC.",
    },
    "admins_only": {
        "ru": "В группе подписки и часовой пояс меняют только администраторы.",
        "en": "In a group, only administrators can change subscriptions and the time zone.",
    },
    "menu_subscribe": {"ru": "притча каждый день: /subscribe [имя] [ЧЧ:ММ]", "en": "a parable every day: /subscribe [name] [HH:MM]"},
    "menu_subscriptions": {"ru": "мои подписки", "en": "my subscriptions"},
    "menu_unsubscribe": {"ru": "отменить подписку", "en": "cancel a subscription"},
    "menu_timezone": {"ru": "часовой пояс подписок", "en": "the subscriptions' time zone"},
}


def text(key: str, lang: str = DEFAULT_LANG, **fields) -> str:
    """The subscriptions' text `key` in `lang` (Russian when missing), filled with `fields`."""
    return lookup(TEXTS, key, lang, **fields)
