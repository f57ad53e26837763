"""Reading a corpus: UTF-8, NFC, paragraph marks normalised, one text per line, checked."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from charlm.errors import PathError
from charlm.text import END, normalize_text

MIN_CHARS = 2_000  # below this a char model learns nothing worth serving


class CorpusError(PathError):
    """A corpus that cannot be used; the message says what to do."""


@dataclass
class Corpus:
    """The texts of one corpus, normalised; `text` joins them with END (and ends with one)."""

    path: Path
    texts: list[str]
    sha256: str  # of the file's bytes
    size: int  # bytes

    @property
    def text(self) -> str:
        return "".join(t + END for t in self.texts)

    @property
    def chars(self) -> int:
        return sum(len(t) + 1 for t in self.texts)


def read_corpus(path: str | Path, min_chars: int = MIN_CHARS) -> Corpus:
    """Read and normalise a corpus file; raises CorpusError with a one-line fix."""
    path = Path(path)
    if not path.exists():
        raise CorpusError(path, "no such file; `python -m training.corpora fetch` puts the five parable corpora in "
                          "data/ (offline: --from training.zip), or pass --corpus PATH")
    if not path.is_file():
        raise CorpusError(path, "not a file; pass a UTF-8 text file with one text per line")
    raw = path.read_bytes()
    try:
        decoded = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise CorpusError(path, f"not UTF-8 (byte {e.start}); convert it, e.g. iconv -f cp1251 -t utf-8") from None
    # Split at END only: str.splitlines() also splits at U+2029, the paragraph mark inside a text (and at
    # U+2028, U+0085, ...), which cut TinyStories-ru's 14,752 stories into 69,525 "texts".
    texts = [t for t in (normalize_text(line) for line in decoded.split(END)) if t]
    if not texts:
        raise CorpusError(path, "empty; it needs one text per line")
    total = sum(len(t) + 1 for t in texts)
    if total < min_chars:
        raise CorpusError(path, f"too small ({total} characters); a model needs at least {min_chars}")
    return Corpus(path, texts, hashlib.sha256(raw).hexdigest(), len(raw))
