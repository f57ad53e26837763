"""Parsing what people type: `/name@bot rest` and the proverb arguments `prefix t=0.6 seed=42`. Pure."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

MAX_SEED = 999_999_999
_OPTION = re.compile(r"^(t|temp|temperature|seed)=(.*)$", re.IGNORECASE)


@dataclass(frozen=True)
class Command:
    """A command message split up: `/Name@bot rest` -> name "name", mention "bot", rest."""

    name: str
    mention: str | None
    rest: str


@dataclass(frozen=True)
class ProverbArgs:
    """What a culture command asks for: an optional start of the text, temperature and seed."""

    prefix: str = ""
    temperature: float | None = None
    seed: int | None = None


class ArgError(ValueError):
    """A bad argument; `key` names the text (bot.texts) that explains it."""

    def __init__(self, key: str, **fields):
        self.key = key
        self.fields = fields
        super().__init__(key)


def split_command(text: str | None) -> Command | None:
    """`/name@bot rest` -> Command, split at the first whitespace (for our own replay footers; a user's
    message is read by its entity: command_of); None when the text is not a command."""
    if not text or not text.startswith("/"):
        return None
    parts = text[1:].split(maxsplit=1)
    if not parts:
        return Command("", None, "")
    name, _, mention = parts[0].partition("@")
    return Command(name.lower(), mention or None, parts[1] if len(parts) > 1 else "")


# what Telegram marks as a command: the entity ends at the first character a command cannot hold
COMMAND_RE = re.compile(r"/[A-Za-z0-9_]{1,32}(?:@[A-Za-z0-9_]{3,32})?", re.ASCII)


def command_of(message) -> Command | None:
    """The command in a Telegram Message (its bot_command entity at offset 0); None when there is none."""
    text = getattr(message, "text", None)
    for e in getattr(message, "entities", None) or ():
        if e.type == "bot_command" and e.offset == 0 and text:
            return entity_command(text, e.length)
    return None


def command_entity_length(text: str) -> int:
    """The length of the bot_command entity Telegram would mark at the start of `text` (0: none)."""
    m = COMMAND_RE.match(text)
    return m.end() if m else 0


def entity_command(text: str, length: int) -> Command:
    """The command Telegram marked at the start of `text` (a bot_command entity `length` UTF-16 units long).

    Telegram ends the entity at the first character a command cannot hold, so `/sufi, Однажды` and
    `/sufi\u200b` are the command /sufi. The rest is everything after the entity, less the punctuation and
    invisible characters (zero-width space, RLM, ...) that stuck to the command.
    """
    # surrogatepass: a lone surrogate (valid JSON, "\ud800") is one UTF-16 unit, as Telegram counts; strict
    # encoding raised, and the chat got «Что-то пошло не так» (bench/faults.py journal-poison, issue 24)
    units = text.encode("utf-16-le", errors="surrogatepass")
    head = units[: 2 * length].decode("utf-16-le", errors="surrogatepass")
    rest = units[2 * length :].decode("utf-16-le", errors="surrogatepass")
    name, _, mention = head[1:].partition("@")
    return Command(name.lower(), mention or None, _strip_stuck(rest))


def _strip_stuck(rest: str) -> str:
    """`, Однажды` -> `Однажды`; ` «Однажды»` stays `«Однажды»`: punctuation is dropped only while it touches the
    command (issue 24: `/sufi «Однажды»` became the prefix `Однажды»`); spaces and invisible characters always."""
    i = 0
    while i < len(rest) and unicodedata.category(rest[i])[0] in "PC" and not rest[i].isspace():
        i += 1
    while i < len(rest) and (rest[i].isspace() or unicodedata.category(rest[i])[0] == "C"):
        i += 1
    return rest[i:]


def parse_args(rest: str, max_temperature: float = 2.0, lenient: bool = False) -> ProverbArgs:
    """`Однажды t=0.6 seed=42` -> ProverbArgs; options may stand anywhere, the other words are the prefix.
    A bad option raises ArgError; `lenient` (inline mode, which has no room to explain) leaves it out instead."""
    words, temperature, seed = [], None, None
    for word in "".join(c for c in rest if unicodedata.category(c) != "Cf").split():  # drop invisible characters
        m = _OPTION.match(word)
        if not m:
            words.append(word)
            continue
        key, value = m.group(1).lower(), m.group(2).replace(",", ".")
        if lenient:
            try:
                seed, temperature = _option(key, value, max_temperature, seed, temperature)
            except ArgError:
                pass
            continue
        seed, temperature = _option(key, value, max_temperature, seed, temperature)
    return ProverbArgs(" ".join(words), temperature, seed)


def _option(key: str, value: str, max_temperature: float, seed: int | None, temperature: float | None,
            ) -> tuple[int | None, float | None]:
    """One option read: -> (seed, temperature) with it applied; ArgError when its value is bad."""
    if key == "seed":
        if not (value.isascii() and value.isdigit()) or int(value) > MAX_SEED:  # "²".isdigit(), but int("²") fails
            raise ArgError("bad_seed", max=MAX_SEED)
        seed = int(value)
    else:
        try:
            temperature = float(value) + 0.0  # (-0 -> 0: "t=-0" is written back as t=0)
        except ValueError:
            raise ArgError("bad_temperature", max=f"{max_temperature:g}") from None
        if not (0.0 <= temperature <= max_temperature):
            raise ArgError("bad_temperature", max=f"{max_temperature:g}")
    return seed, temperature


def replay_command(command: str, args: ProverbArgs, seed: int) -> str:
    """The command that gives the same proverb again: `/sufi Однажды t=0.6 seed=42`."""
    parts = [f"/{command}"]
    if args.prefix:
        parts.append(args.prefix)
    if args.temperature is not None:
        parts.append(f"t={format_temperature(args.temperature)}")
    parts.append(f"seed={seed}")
    return " ".join(parts)


def format_temperature(t: float) -> str:
    """The shortest text that reads back as exactly `t` (`0.6`, `1`, `0.33333333`, `1e-05`), for replay lines
    and callback data. `:g` alone rounded to 6 digits: t=0.33333333 came back as t=0.333333, another text, and
    the buttons of t=0.12345 or t=1e-5 were refused as stale (issue 24)."""
    t = t + 0.0  # -0.0 -> 0.0
    short = f"{t:g}"
    return short if float(short) == t else repr(t)
