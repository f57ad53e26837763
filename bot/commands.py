"""Parsing what people type: `/name@bot rest` and the proverb arguments `prefix t=0.6 seed=42`. Pure."""

from __future__ import annotations

import re
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
    """`/name@bot rest` -> Command; None when the text is not a command."""
    if not text or not text.startswith("/"):
        return None
    parts = text[1:].split(maxsplit=1)
    if not parts:
        return Command("", None, "")
    name, _, mention = parts[0].partition("@")
    return Command(name.lower(), mention or None, parts[1] if len(parts) > 1 else "")


def parse_args(rest: str, max_temperature: float = 2.0) -> ProverbArgs:
    """`Однажды t=0.6 seed=42` -> ProverbArgs; options may stand anywhere, the other words are the prefix."""
    words, temperature, seed = [], None, None
    for word in rest.split():
        m = _OPTION.match(word)
        if not m:
            words.append(word)
            continue
        key, value = m.group(1).lower(), m.group(2).replace(",", ".")
        if key == "seed":
            if not value.isdigit() or int(value) > MAX_SEED:
                raise ArgError("bad_seed", max=MAX_SEED)
            seed = int(value)
        else:
            try:
                temperature = float(value)
            except ValueError:
                raise ArgError("bad_temperature", max=f"{max_temperature:g}") from None
            if not (0.0 <= temperature <= max_temperature):
                raise ArgError("bad_temperature", max=f"{max_temperature:g}")
    return ProverbArgs(" ".join(words), temperature, seed)


def replay_command(command: str, args: ProverbArgs, seed: int) -> str:
    """The command that gives the same proverb again: `/sufi Однажды t=0.6 seed=42`."""
    parts = [f"/{command}"]
    if args.prefix:
        parts.append(args.prefix)
    if args.temperature is not None:
        parts.append(f"t={args.temperature:g}")
    parts.append(f"seed={seed}")
    return " ".join(parts)
