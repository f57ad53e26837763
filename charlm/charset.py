"""The character set: a sorted, hashed, pure mapping between text and integer ids."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class CharsetError(ValueError):
    """A character is not in the charset; `char` and `position` say which and where."""

    def __init__(self, char: str, position: int):
        self.char = char
        self.position = position
        super().__init__(f"character {char!r} (U+{ord(char):04X}) at position {position} is not in the charset")


@dataclass(frozen=True)
class Charset:
    """Ordered characters: index i <-> chars[i]. Built sorted by code point, so the order never depends on a run."""

    chars: tuple[str, ...]
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if len(set(self.chars)) != len(self.chars):
            raise ValueError("charset has duplicate characters")
        if any(len(c) != 1 for c in self.chars):
            raise ValueError("charset entries must be single characters")
        object.__setattr__(self, "_index", {c: i for i, c in enumerate(self.chars)})

    @classmethod
    def from_text(cls, text: str) -> "Charset":
        """The sorted set of characters in `text`."""
        return cls(tuple(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def __contains__(self, char: str) -> bool:
        return char in self._index

    def encode(self, text: str) -> np.ndarray:
        """Text -> int32 ids; raises CharsetError naming the first unknown character."""
        index = self._index
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))
        except KeyError:
            for i, c in enumerate(text):
                if c not in index:
                    raise CharsetError(c, i) from None
            raise

    def decode(self, ids) -> str:
        """Ids -> text."""
        chars = self.chars
        return "".join(chars[int(i)] for i in ids)

    def unknown(self, text: str) -> list[str]:
        """The distinct characters of `text` that are not in the charset, in order of appearance."""
        seen: dict[str, None] = {}
        for c in text:
            if c not in self._index:
                seen.setdefault(c, None)
        return list(seen)

    def filter(self, text: str) -> str:
        """`text` without the characters the charset lacks."""
        return "".join(c for c in text if c in self._index)

    @property
    def sha256(self) -> str:
        """Hash of the ordered characters: two charsets with the same hash map ids identically."""
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    def to_json(self) -> str:
        return json.dumps(list(self.chars), ensure_ascii=False)

    @classmethod
    def from_json(cls, data: str) -> "Charset":
        chars = json.loads(data)
        if not isinstance(chars, list) or not all(isinstance(c, str) for c in chars):
            raise ValueError("charset.json must be a JSON list of one-character strings")
        return cls(tuple(chars))

    @classmethod
    def load(cls, path: str | Path) -> "Charset":
        return cls.from_json(Path(path).read_text(encoding="utf-8"))
