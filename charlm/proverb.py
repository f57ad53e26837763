"""What a proverb is: the stop rules applied to one sequence as its characters arrive."""

from __future__ import annotations

from .text import CLOSERS, END, PARAGRAPH, SENTENCE_END

BREAKS = " " + PARAGRAPH


class Proverb:
    """One sequence's text and stop state; `add(char)` returns True once the proverb is finished."""

    def __init__(self, prefix: str, min_length: int, max_length: int):
        self.chars = list(prefix)
        self.min_length = min_length
        self.max_length = max_length
        self.pending_end = False  # the text ends with a sentence end that the next char may confirm
        self.ended = ""  # "sentence", "line" or "length" once finished

    @property
    def text(self) -> str:
        return "".join(self.chars)

    def add(self, c: str) -> bool:
        """Take the next sampled character; True when the proverb is complete."""
        if c == END:
            self._finish_line()
            return True
        if self.pending_end:
            if c in CLOSERS or c in SENTENCE_END:
                self.chars.append(c)
                return self._check_length()
            if c in BREAKS:
                self.ended = "sentence"
                return True
            self.pending_end = False  # "т.е" or "1.5": not a sentence end after all
        self.chars.append(c)
        if c in SENTENCE_END and len(self.chars) >= self.min_length:
            self.pending_end = True
        return self._check_length()

    def _check_length(self) -> bool:
        if len(self.chars) < self.max_length:
            return False
        if self.pending_end:
            self.ended = "sentence"
            return True
        at = cut_at_sentence(self.text, self.min_length // 2)
        self.chars = list(at if at is not None else cut(self.text, self.min_length // 2))
        self.ended = "sentence" if at is not None else "length"
        return True

    def _finish_line(self) -> None:
        text = self.text.rstrip(BREAKS)
        if not ends_sentence(text):
            cutted = cut_at_sentence(text, self.min_length // 2)
            text = cutted if cutted is not None else text
        self.chars = list(text)
        self.ended = "sentence" if ends_sentence(text) else "line"


def ends_sentence(text: str) -> bool:
    """True if `text` ends with a sentence end, possibly followed by closing quotes or brackets."""
    t = text.rstrip(CLOSERS + BREAKS)
    return bool(t) and t[-1] in SENTENCE_END


def cut_at_sentence(text: str, floor: int) -> str | None:
    """`text` up to its last sentence end that lies at or after `floor`, or None."""
    for i in range(len(text) - 1, floor - 1, -1):
        if text[i] in SENTENCE_END and (i + 1 == len(text) or text[i + 1] in BREAKS + CLOSERS + SENTENCE_END):
            j = i + 1
            while j < len(text) and (text[j] in CLOSERS or text[j] in SENTENCE_END):
                j += 1
            return text[:j]
    return None


def cut(text: str, floor: int) -> str:
    """Cut an over-long text at its last sentence end, else at its last word boundary with '…'."""
    at = cut_at_sentence(text, floor)
    if at is not None:
        return at
    head = text.rstrip(BREAKS)
    space = max(head.rfind(" "), head.rfind(PARAGRAPH))
    if space > 0:
        head = head[:space]
    return head.rstrip(",;:—–- " + PARAGRAPH) + "…"
