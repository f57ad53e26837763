"""Which texts a bundle learned from, in words a reader of /about and models/README.md understands.

A bundle's manifest lists them under "sources" as keys (SOURCES; the bot words each key in its reader's
language, bot/texts.py): its own corpora's and those of the base it was fine-tuned from (read from the base's
"sources", or, for bundles made before this list existed, from its corpus files).
"""

from __future__ import annotations

from pathlib import Path

TINYSTORIES, WRITTEN, NEUROBASNYA, FORTUNES = "tinystories", "written", "neurobasnya", "fortunes"
SOURCES = {
    TINYSTORIES: "simple children's stories: TinyStories-ru (github.com/MichaelMonashev/TinyStories-ru), Apache-2.0, "
                 "written by gemma-2-27b",
    WRITTEN: "simple parables and sayings written for the project by a language model (corpora/README.md)",
    NEUROBASNYA: "real parables: NeuroBasnya by Tatiana Shavrina (github.com/TatianaShavrina/NeuroBasnya), MIT",
    FORTUNES: "sayings: Debian's fortunes-ru, GPL-2",
}
REAL = ("armenian", "hasidic", "indian", "jewish", "sufi")


def describe(name: str) -> str:
    """A corpus file's name -> the key of where its texts come from (the file's name when unknown)."""
    stem = Path(name).name
    if stem.endswith(".written.txt"):
        return WRITTEN
    if stem.startswith("tinystories"):
        return TINYSTORIES
    if stem.startswith(("fortunes", "aphorism")):
        return FORTUNES
    if Path(stem).stem in REAL:
        return NEUROBASNYA
    return stem


def learned_from(corpora, base_manifest: dict | None = None) -> list[str]:
    """The sources of this run's corpora and of its base, each once, in a fixed order."""
    names = [Path(c.path).name for c in corpora]
    found = [describe(n) for n in names]
    if base_manifest:
        inherited = base_manifest.get("sources")
        if not isinstance(inherited, list):
            files = ((base_manifest.get("corpus") or {}).get("files") or []) if isinstance(base_manifest.get("corpus"), dict) else []
            inherited = [describe(f.get("name", "")) for f in files if isinstance(f, dict)]
        found += [s for s in inherited if isinstance(s, str)]
    order = list(SOURCES)
    unique = list(dict.fromkeys(found))
    return sorted(unique, key=lambda s: (order.index(s) if s in order else len(order), s))
