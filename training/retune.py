"""`python -m training.retune BUNDLE [--candidates N] [--temperature T] ...`: new decoding defaults, no retraining.

Rewrites the bundle's `generation` defaults and regenerates its golden samples through charlm (the bot's
path), so `python -m bot check` passes with the new settings. The model files are untouched; the bundle
is rewritten atomically. Also the way to refresh golden samples after a runtime change (no options), and to
bring a bundle of an older format (`charlm.bundle.UPGRADABLE`) up to the current one.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import asdict, replace
from pathlib import Path

from charlm import BundleError, Request, Settings, load_bundle, write_bundle
from charlm.bundle import MANIFEST, WORDS
from charlm.words import Vocabulary

from .cli import fail
from .corpus import CorpusError, read_corpus

FIELDS = ("temperature", "top_k", "top_p", "min_length", "max_length", "end_boost", "candidates", "real_words")


def retune(path: str | Path, words: Vocabulary | None = None, **changes) -> tuple[Settings, Settings, list[str]]:
    """-> (old defaults, new defaults, golden texts) after rewriting the bundle at `path` (with `words` as its
    words.txt, when given)."""
    bundle = load_bundle(path, upgrade=True)  # an older format's golden samples are rewritten here
    old = bundle.defaults
    new = old.with_(**changes)  # raises ValueError naming the setting out of range
    if words is not None:
        bundle = replace(bundle, words=words)
    golden = bundle.manifest.get("golden") or [{"seed": s, "prefix": ""} for s in (1, 2, 3)]
    results = bundle.generate([Request(g["seed"], g.get("prefix", ""), new) for g in golden])
    manifest = {k: v for k, v in bundle.manifest.items() if k not in ("files", "format", "charset_sha256")}
    manifest["generation"] = asdict(new)
    manifest["golden"] = [{"seed": g["seed"], "prefix": g.get("prefix", ""), "settings": manifest["generation"],
                           "text": r.text} for g, r in zip(golden, results)]
    files = {f: bundle.path / f for f in bundle.manifest["files"]}
    with tempfile.TemporaryDirectory() as d:  # copies first: write_bundle replaces the folder they live in
        copies = {}
        for f, p in files.items():
            copies[f] = Path(d) / f
            copies[f].write_bytes(p.read_bytes())
        if words is not None:
            copies[WORDS] = words.to_text()
        write_bundle(bundle.path, copies, json.loads(json.dumps(manifest)))
    return old, new, [r.text for r in results]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.retune", description=__doc__.split("\n\n")[0])
    p.add_argument("bundle", help="the bundle folder, e.g. models/sufi")
    p.add_argument("--temperature", type=float, help="sampling temperature (0: greedy)")
    p.add_argument("--top-k", type=int, help="keep the k most likely characters (0: no cut)")
    p.add_argument("--top-p", type=float, help="keep the most likely characters up to this mass (1: no cut)")
    p.add_argument("--min-length", type=int, help="a sentence end before this many characters does not stop")
    p.add_argument("--max-length", type=int, help="hard cap, characters")
    p.add_argument("--end-boost", type=float, help="logits added to sentence ends from half the maximum length on")
    p.add_argument("--candidates", type=int, help="proverbs generated per request; the best agreeing one is kept")
    p.add_argument("--real-words", action=argparse.BooleanOptionalAction,
                   help="among the candidates, prefer those whose words pymorphy3 or the bundle's words.txt knows")
    p.add_argument("--words-from", nargs="+", metavar="CORPUS",
                   help="write the bundle's words.txt: the words of these corpora that pymorphy3 does not know")
    a = p.parse_args(argv)
    changes = {k: getattr(a, k) for k in FIELDS}
    try:
        words = Vocabulary.of_texts(t for c in a.words_from for t in read_corpus(c).texts) if a.words_from else None
        old, new, texts = retune(a.bundle, words, **changes)
    except (BundleError, CorpusError) as e:
        return fail(e)
    except ValueError as e:
        return fail(f"{a.bundle}/{MANIFEST}: {e}")
    diff = [f"{k} {getattr(old, k)} -> {getattr(new, k)}" for k in FIELDS if getattr(old, k) != getattr(new, k)]
    told = f"; words.txt: {len(words.own)} words of {', '.join(a.words_from)}" if words is not None else ""
    print(f"{a.bundle}: {', '.join(diff) or 'settings unchanged'}{told}; {len(texts)} golden samples regenerated")
    return 0


if __name__ == "__main__":
    sys.exit(main())
