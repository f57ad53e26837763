"""The buttons under every proverb: [🔄 Another] [👍] [👎] [↗ Share], and their callback data. Pure: no I/O.

Callback data is self-contained (Telegram keeps at most 64 bytes of it per button), so a press works after a
restart and on any replica, with no cache in the process:

    m|alpha|1f3a|421337|0.6|=Однажды
    ^ ^     ^    ^      ^   ^ prefix: "=" then the text, or "~" (too long to fit: read it from the message's replay line)
    | |     |    |      temperature the user asked for ("" = the bundle's own)
    | |     |    seed
    | |     the first 4 hex digits of Catalog.version: the bundle's sha256, mixed with the bot's TEMPERATURE and
    | |     MAX_LENGTH where they change its settings (a vote for a proverb of a retrained model, or of other
    | |     settings, is refused)
    | bundle name
    action: m (another), u (👍), d (👎)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

from charlm.text import normalize_prefix

from .commands import MAX_SEED, ProverbArgs, format_temperature, parse_args, replay_command, split_command
from .texts import text

MAX_DATA = 64  # bytes: Telegram's limit on callback_data
ACTIONS = {"m": "more", "u": "up", "d": "down"}
VOTES = {"up": 1, "down": -1}
TAG = 4  # hex digits of the bundle's sha256 carried in the data
FROM_MESSAGE = "~"
_NAME = re.compile(r"[a-z0-9_]{1,32}")
_TAG = re.compile(r"[0-9a-f]{%d}" % TAG)
_SEED = re.compile(r"[0-9]{1,9}")
_TEMPERATURE = re.compile(r"[0-9][0-9.e+-]{0,23}")  # as format_temperature writes it (checked in full below)


@dataclass(frozen=True)
class Press:
    """A decoded button press: what to do, and which proverb it is under."""

    action: str  # "more", "up" or "down"
    name: str  # bundle name
    tag: str  # the bundle's sha256, first TAG hex digits
    seed: int
    temperature: float | None  # the user's t=, None for the bundle's own
    prefix: str | None  # None: too long for the data; it is in the message's replay line

    @property
    def vote(self) -> int:
        """+1 for 👍, -1 for 👎, 0 for the other actions."""
        return VOTES.get(self.action, 0)


def encode(action: str, name: str, digest: str, seed: int, temperature: float | None, prefix: str) -> str | None:
    """Callback data for one button; the prefix is left in the message ("~") when it does not fit in 64 bytes.
    None when even that does not fit (a 32-letter name with a 17-digit temperature): no such button then."""
    code = {v: k for k, v in ACTIONS.items()}[action]
    head = f"{code}|{name}|{digest[:TAG]}|{seed}|{'' if temperature is None else format_temperature(temperature)}|"
    data = f"{head}={prefix}"
    if len(data.encode("utf-8")) <= MAX_DATA:
        return data
    return head + FROM_MESSAGE if len(head) + len(FROM_MESSAGE) <= MAX_DATA else None


def decode(data: object, max_temperature: float) -> Press | None:
    """Callback data -> Press; None for anything this code would not have written (garbage, forged, oversized)."""
    if not isinstance(data, str) or len(data.encode("utf-8", "replace")) > MAX_DATA:
        return None
    parts = data.split("|", 5)
    if len(parts) != 6:
        return None
    code, name, tag, seed, temperature, prefix = parts
    if (code not in ACTIONS or not _NAME.fullmatch(name) or not _TAG.fullmatch(tag) or not _SEED.fullmatch(seed)
            or int(seed) > MAX_SEED or (temperature and not _TEMPERATURE.fullmatch(temperature))):
        return None
    try:
        t = float(temperature) if temperature else None
    except ValueError:  # "1..2", "1e"
        return None
    if t is not None and (format_temperature(t) != temperature or not (0.0 <= t <= max_temperature)):
        return None  # only what encode writes: one text per temperature
    if prefix == FROM_MESSAGE:
        p = None
    elif prefix.startswith("="):
        p = prefix[1:]
    else:
        return None
    return Press(ACTIONS[code], name, tag, int(seed), t, p)


def prefix_from_replay(message_text: str | None, press: Press, max_temperature: float) -> str | None:
    """The prefix in the replay line that ends a proverb message, if that line is the pressed proverb's; else None."""
    if not message_text:
        return None
    cmd = split_command(message_text.rpartition("\n\n")[2])
    if cmd is None or cmd.name != press.name:
        return None
    try:
        args = parse_args(cmd.rest, max_temperature)
    except ValueError:
        return None
    if args.seed != press.seed or args.temperature != press.temperature:
        return None
    return normalize_prefix(args.prefix)  # (messages sent before issue 24 carried the prefix as typed)


def share_query(name: str, seed: int, temperature: float | None, prefix: str) -> str:
    """The inline query that shares this proverb: its replay command without the slash."""
    return replay_command(name, ProverbArgs(prefix, temperature), seed)[1:]


def keyboard(name: str, digest: str, seed: int, temperature: float | None, prefix: str, lang: str,
             inline: bool = False) -> InlineKeyboardMarkup:
    """The buttons under a proverb. `inline`: the message was sent in inline mode, so there is no message
    text to read a long prefix back from; only [Share] is offered then."""
    def data(action: str) -> str:
        return encode(action, name, digest, seed, temperature, prefix)

    share = InlineKeyboardButton(text("button_share", lang), switch_inline_query=share_query(name, seed, temperature, prefix))
    more = data("more")
    if more is None or (inline and more.endswith(FROM_MESSAGE)):
        return InlineKeyboardMarkup([[share]])
    return InlineKeyboardMarkup([
        [InlineKeyboardButton(text("button_more", lang), callback_data=data("more")),
         InlineKeyboardButton("👍", callback_data=data("up")),
         InlineKeyboardButton("👎", callback_data=data("down"))],
        [share],
    ])
