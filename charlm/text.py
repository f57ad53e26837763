"""Text conventions shared by training and serving: one text per line, paragraph marks inside."""

from __future__ import annotations

import re
import unicodedata

# Texts are separated by END; a paragraph break inside a text is PARAGRAPH (U+2029 PARAGRAPH SEPARATOR),
# one character, so the model learns it like any other and the bot shows it as a line break.
END = "\n"
PARAGRAPH = "\u2029"
SENTENCE_END = ".!?…"
CLOSERS = "»\"”')"

# The reference corpora mark paragraphs with runs of spaces and no-break spaces; any run that holds a
# no-break space, or two or more spaces, or an explicit line/paragraph separator, is one paragraph mark.
_PARAGRAPH_RUN = re.compile(r"[ \t\u00a0\u2028\u2029\r]*(?:\u00a0|\u2029|\u2028|\r| {2,}|\t)[ \t\u00a0\u2028\u2029\r]*")
_SPACES = re.compile(r"[ \t\u00a0]+")


def normalize_text(text: str) -> str:
    """One text (no END inside) -> NFC, paragraph marks as PARAGRAPH, no leading/trailing marks."""
    text = unicodedata.normalize("NFC", text).replace(END, PARAGRAPH)
    text = _PARAGRAPH_RUN.sub(PARAGRAPH, text)
    return text.strip(" " + PARAGRAPH)


def normalize_prefix(text: str) -> str:
    """A user's prefix -> NFC, single spaces, paragraph marks kept, line ends become spaces; not stripped."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", " ").replace(END, " ")
    return _SPACES.sub(" ", text).lstrip()


def display(text: str) -> str:
    """Model text -> what a person reads: paragraph marks as line breaks."""
    return text.replace(PARAGRAPH, "\n").strip()
