"""Composing reply texts (plain text, within Telegram's 4096 characters). Pure: no I/O."""

from __future__ import annotations

from charlm import Bundle, Result

from .catalog import Catalog
from .texts import TEXTS, text
from .votes import Tally

TELEGRAM_LIMIT = 4096  # characters in one message


def fit(body: str, limit: int = TELEGRAM_LIMIT) -> str:
    """`body` cut to at most `limit` characters, at a word boundary, with an ellipsis when cut."""
    if len(body) <= limit:
        return body
    cut = body[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip() + "…"


def proverb_reply(result: Result, replay: str) -> str:
    """The proverb, then a footer with the command that gives it again (its seed)."""
    footer = "\n\n" + replay
    return fit(result.text or "…", TELEGRAM_LIMIT - len(footer)) + footer


def command_list(catalog: Catalog) -> str:
    """`/alpha, /beta` — every culture command, without aliases."""
    return ", ".join(f"/{n}" for n in catalog.names)


def culture_lines(catalog: Catalog) -> str:
    """One line per culture: `/sufi (/suf) — Суфийские притчи`."""
    lines = []
    for name in catalog.names:
        b = catalog.bundles[name]
        aliases = "".join(f", /{a}" for a in b.aliases)
        title = f" — {b.title}" if b.title and b.title != name else ""
        lines.append(f"/{name}{aliases}{title}")
    return "\n".join(lines)


def example_prefix(catalog: Catalog, name: str) -> str:
    """A start word the bundle can spell ("Однажды" for the Russian models), for examples in help texts."""
    for word in ("Однажды", "Once"):
        if not catalog.bundles[name].charset.unknown(word):
            return word
    return ""


def help_reply(catalog: Catalog, lang: str, bot_username: str | None, hello: bool) -> str:
    """/start and /help: what is loaded and how to ask."""
    parts = [text("hello", lang)] if hello else []
    parts.append(text("cultures", lang) + "\n" + culture_lines(catalog))
    example = catalog.names[0]
    prefix = example_prefix(catalog, example)
    note = text("russian_prefix_note", lang) if prefix == "Однажды" else ""
    parts.append(text("usage", lang, example=example, prefix=prefix, note=note, bot=bot_username or "bot"))
    return fit("\n\n".join(parts))


def about_reply(bundle: Bundle, lang: str, tally: Tally | None = None) -> str:
    """/about NAME: corpus size, validation bits per character, training date; readers' votes when collected."""
    m = bundle.manifest
    unknown = text("unknown_value", lang)
    corpus = m.get("corpus") if isinstance(m.get("corpus"), dict) else {}
    metrics = m.get("metrics") if isinstance(m.get("metrics"), dict) else {}
    chars = corpus.get("chars")
    bpc = metrics.get("val_bpc")
    created = str(m.get("created") or unknown)[:10]
    return fit(text(
        "about", lang,
        title=bundle.title,
        name=bundle.name,
        aliases="".join(f", /{a}" for a in bundle.aliases),
        description=bundle.description or "",
        corpus=f"{chars:,}".replace(",", " ") if isinstance(chars, int) else unknown,
        bpc=f"{bpc:.3f}" if isinstance(bpc, (int, float)) else unknown,
        created=created,
        epochs=m.get("epochs", unknown),
    ).replace("\n\n", "\n") + sources_line(m.get("sources"), lang) + votes_line(tally, lang))


def sources_line(sources, lang: str) -> str:
    """A line naming what the model learned from (the manifest's "sources" keys); nothing for older bundles."""
    if not isinstance(sources, list) or not sources:
        return ""
    words = [text(f"source_{s}", lang) if f"source_{s}" in TEXTS else str(s) for s in sources if isinstance(s, str)]
    return "\n" + text("about_sources", lang, sources="; ".join(words))


def votes_line(tally: Tally | None, lang: str) -> str:
    """A line "Readers' votes: 12, liked 75%" (this version of the model); nothing when votes are not collected."""
    if tally is None:
        return ""
    if not tally.votes:
        return "\n" + text("about_no_votes", lang)
    return "\n" + text("about_votes", lang, votes=tally.votes, rate=f"{tally.like_rate:.0%}")
