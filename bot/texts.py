"""The bot's own words: Russian by default, English for users whose Telegram language is English."""

from __future__ import annotations

DEFAULT_LANG = "ru"

TEXTS: dict[str, dict[str, str]] = {
    "hello": {
        "ru": "Здравствуйте! Я сочиняю притчи: каждую — заново, нейросетью, обученной на сборнике притч одного народа.",
        "en": "Hello! I write parables: each one new, by a neural network trained on one culture's collection.",
    },
    "cultures": {"ru": "Выберите:", "en": "Pick one:"},
    # after the prefix example when it is Russian: why a Russian word in an English help
    "russian_prefix_note": {"ru": "", "en": " (“Once”: the models write Russian, so a start is in Russian too)"},
    "usage": {
        "ru": (
            "Можно задать начало притчи: /{example} {prefix}{note}\n"
            "Температура (смелость) и зерно: /{example} t=0.6 seed=42 — с тем же зерном притча повторится.\n"
            "/random — притча наугад, /about {example} — о модели.\n"
            "В любом чате: @{bot} {example} — несколько притч на выбор.\n"
            "Под каждой притчей: 🔄 новая притча из того же сборника, 👍/👎 ваша оценка, ↗ поделиться."
        ),
        "en": (
            "Start the parable your way: /{example} {prefix}{note}\n"
            "Temperature (boldness) and seed: /{example} t=0.6 seed=42 — the same seed gives the same parable.\n"
            "/random — a random culture, /about {example} — about the model.\n"
            "In any chat: @{bot} {example} — a few parables to choose from.\n"
            "Under each parable: 🔄 a new parable from the same collection, 👍/👎 your vote, ↗ share it."
        ),
    },
    "unknown_command": {
        "ru": "Не знаю команды /{command}. Есть: {commands}. Подробнее: /help",
        "en": "I don't know /{command}. Try: {commands}. More: /help",
    },
    "plain_text": {
        "ru": "Я отвечаю на команды: {commands}. Например: /{example} {prefix}\nПодробнее: /help",
        "en": "I answer commands: {commands}. For example: /{example} {prefix}\nMore: /help",
    },
    "bad_chars": {
        "ru": "Эти символы модель «{title}» не знает: {chars}. Уберите или замените их.",
        "en": "The “{title}” model does not know these characters: {chars}. Remove or replace them.",
    },
    "prefix_too_long": {
        "ru": "Начало слишком длинное: {length} символов, можно не больше {limit}.",
        "en": "The start is too long: {length} characters, at most {limit}.",
    },
    "bad_temperature": {
        "ru": "Температура — число от 0 до {max}, например t=0.6.",
        "en": "Temperature is a number from 0 to {max}, e.g. t=0.6.",
    },
    "bad_seed": {
        "ru": "Зерно — целое число от 0 до {max}, например seed=42.",
        "en": "The seed is a whole number from 0 to {max}, e.g. seed=42.",
    },
    "rate_limited": {
        "ru": "Не так быстро, пожалуйста: я сочиняю для многих. Попробуйте через {seconds} с.",
        "en": "Not so fast, please: I write for many people. Try again in {seconds} s.",
    },
    "error": {
        "ru": "Что-то пошло не так. Попробуйте ещё раз чуть позже.",
        "en": "Something went wrong. Please try again a little later.",
    },
    "about_usage": {"ru": "О какой модели? Например: /about {example}", "en": "Which model? For example: /about {example}"},
    "about_unknown": {"ru": "Нет модели «{name}». Есть: {commands}", "en": "There is no model “{name}”. Try: {commands}"},
    "about": {
        "ru": "{title} (/{name}{aliases})\n{description}\nКорпус: {corpus} символов\nБиты на символ (проверка): {bpc}\nОбучена: {created}, эпох: {epochs}",
        "en": "{title} (/{name}{aliases})\n{description}\nCorpus: {corpus} characters\nValidation bits/char: {bpc}\nTrained: {created}, epochs: {epochs}",
    },
    "about_sources": {"ru": "Училась на: {sources}", "en": "Learned from: {sources}"},
    "source_tinystories": {"ru": "простые детские рассказы TinyStories-ru (Apache-2.0, написаны моделью gemma-2-27b)",
                           "en": "simple children's stories of TinyStories-ru (Apache-2.0, written by gemma-2-27b)"},
    "source_written": {"ru": "простые притчи и изречения, написанные для проекта языковой моделью",
                       "en": "simple parables and sayings written for the project by a language model"},
    "source_neurobasnya": {"ru": "настоящие сборники притч (NeuroBasnya, MIT)",
                           "en": "real collections of parables (NeuroBasnya, MIT)"},
    "source_fortunes": {"ru": "изречения из fortunes-ru (Debian, GPL-2)", "en": "sayings of fortunes-ru (Debian, GPL-2)"},
    "about_votes": {"ru": "Оценки читателей: {votes}, понравилось {rate}", "en": "Readers' votes: {votes}, liked {rate}"},
    "about_no_votes": {"ru": "Оценок читателей пока нет", "en": "No readers' votes yet"},
    "unknown_value": {"ru": "—", "en": "—"},
    # the buttons under each proverb (bot.buttons) and the toasts that answer a press (bot.presses)
    "button_more": {"ru": "🔄 Ещё", "en": "🔄 Another"},
    "button_share": {"ru": "↗ Поделиться", "en": "↗ Share"},
    "press_voted": {"ru": "{vote} Спасибо, учтено", "en": "{vote} Thanks, counted"},
    "press_changed": {"ru": "Оценка изменена на {vote}", "en": "Your vote is now {vote}"},
    "press_same": {"ru": "Вы уже поставили {vote}", "en": "You already voted {vote}"},
    "press_no_votes": {"ru": "Оценки здесь не собираются", "en": "Votes are not collected here"},
    "press_retrained": {"ru": "Модель с тех пор переобучена или настроена иначе: эту притчу уже не оценить",
                        "en": "The model has been retrained or set up anew since: this parable can no longer be rated"},
    "press_gone": {"ru": "Этой модели больше нет. Есть: {commands}", "en": "This model is gone. Try: {commands}"},
    "press_stale": {"ru": "Эта кнопка устарела. Попробуйте /help", "en": "This button has expired. Try /help"},
    "press_rate_limited": {"ru": "Не так быстро, пожалуйста: попробуйте через {seconds} с",
                           "en": "Not so fast, please: try again in {seconds} s"},
    "press_failed": {"ru": "Оценка не учтена, попробуйте чуть позже", "en": "Your vote was not taken; please try a little later"},
    # the command menu (set_my_commands)
    "menu_start": {"ru": "что я умею", "en": "what I can do"},
    "menu_help": {"ru": "помощь и список моделей", "en": "help and the list of models"},
    "menu_random": {"ru": "притча наугад", "en": "a parable from a random culture"},
    "menu_about": {"ru": "о модели: /about имя", "en": "about a model: /about name"},
    "menu_culture": {"ru": "{title}: новая притча", "en": "{title}: a new parable"},
}


def lang_of(language_code: str | None) -> str:
    """A Telegram language_code -> the language of our texts ("ru" unless the user's is English)."""
    return "en" if language_code and language_code.lower().startswith("en") else DEFAULT_LANG


def lookup(table: dict[str, dict[str, str]], key: str, lang: str = DEFAULT_LANG, **fields) -> str:
    """The text `key` of `table` in `lang` (Russian when missing), filled with `fields`."""
    variants = table[key]
    return variants.get(lang, variants[DEFAULT_LANG]).format(**fields)


def text(key: str, lang: str = DEFAULT_LANG, **fields) -> str:
    """The bot's text `key` in `lang` (Russian when missing), filled with `fields`."""
    return lookup(TEXTS, key, lang, **fields)
