"""`python -m training.panel`: blind reading panels: our proverbs, the ancestor's and real texts, shuffled.

    python -m training.panel make --bundle new=models --bundle old=OLD_MODELS --ancestor examples.zip \
        --corpus-dir data -o runs/panel            # writes panel-1.txt … (readers) and key.json (never to readers)
    python -m training.panel score runs/panel/key.json runs/panel/ratings-*.txt [--json]

A reader gets one `panel-K.txt`: lines `#ID [culture] text`, the source hidden, and the rubric
(`RUBRIC`). They answer one line per text: `ID grammar sense parable forward` (1-5, 1-5, 1-5, 0/1).
Every panel mixes every source, so sources are compared within a panel. Corpus excerpts are held-out
texts (the training split) cut at the sentence end nearest our proverbs' median length.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import re
import sys
import zipfile
from collections import defaultdict
from pathlib import Path

import numpy as np

from .cli import fail

RUBRIC = """Rate each text on its own, as a careful reader of Russian. One line per text:
ID grammar sense parable forward
- grammar 1-5: 1 broken in nearly every phrase; 3 many agreement/case errors; 5 correct Russian.
- sense 1-5: 1 word salad; 2 an occasional plausible phrase; 3 each clause plausible but the whole barely
  holds; 4 coherent with an oddity; 5 coherent.
- parable 1-5: how much it reads as a parable, proverb or saying with a point (1 none, 5 clearly).
- forward 0/1: would you forward it to a friend as a good proverb?
Texts may start or end abruptly. Do not guess where a text comes from; rate only what you read."""

# the ancestor's sample files (NeuroBasnya's examples.zip) -> our culture
ANCESTOR = {"arm": "armenian", "hasid": "hasidic", "ind": "indian", "jew": "jewish", "suf": "sufi"}
_LINE = re.compile(r"^#?(\d+)\s+([1-5])\s+([1-5])\s+([1-5])\s+([01])\b")


def _cut(text: str, target: int) -> str:
    """`text` cut at the sentence end nearest `target` characters (whole text if shorter)."""
    from charlm.text import display

    text = display(text)
    ends = [m.end() for m in re.finditer(r"[.!?…][»\"”)]?(?=\s|$)", text)]
    if not ends:
        return text[:target]
    return text[: min(ends, key=lambda e: abs(e - target))]


def generated(models: Path, cultures: list[str], n: int, seed: int) -> dict[str, list[str]]:
    from charlm import Request, load_bundle

    out = {}
    for c in cultures:
        if not (models / c).is_dir():
            continue
        b = load_bundle(models / c)
        out[c] = [r.text for r in b.generate([Request(seed + i, "", b.defaults) for i in range(n)])]
    return out


def ancestor(zip_path: Path, n: int, rng: random.Random) -> dict[str, list[str]]:
    z = zipfile.ZipFile(zip_path)
    out = {}
    for name in z.namelist():
        stem = Path(name).stem.split("_")[0]
        if stem in ANCESTOR:
            lines = [ln.strip() for ln in io.TextIOWrapper(z.open(name), encoding="utf-8") if ln.strip()]
            out[ANCESTOR[stem]] = [re.sub(r"\s{2,}", "\n", t) for t in rng.sample(lines, min(n, len(lines)))]
    return out


def excerpts(corpus_dir: Path, cultures: list[str], n: int, target: int, rng: random.Random,
             suffix: str = ".txt") -> dict[str, list[str]]:
    from .corpus import read_corpus
    from .windows import split_texts

    out = {}
    for c in cultures:
        path = corpus_dir / f"{c}{suffix}"
        if path.is_file():
            held = split_texts(read_corpus(path).texts, 0.08, 0)[1]
            out[c] = [_cut(t, target) for t in rng.sample(held, min(n, len(held)))]
    return out


def cmd_make(a) -> int:
    rng = random.Random(a.seed)
    cultures = a.cultures
    items = []  # (source, culture, text)
    ours = []
    for spec in a.bundle:
        label, _, path = spec.partition("=")
        for c, texts in generated(Path(path), cultures, a.n, a.seed).items():
            items += [(label, c, t) for t in texts]
            ours += texts
    target = int(np.median([len(t) for t in ours])) if ours else 200
    if a.ancestor:
        for c, texts in ancestor(Path(a.ancestor), a.n_other, rng).items():
            if c in cultures:
                items += [("ancestor", c, t) for t in texts]
    for c, texts in excerpts(Path(a.corpus_dir), cultures, a.n_other, target, rng).items():
        items += [("corpus", c, t) for t in texts]
    if a.written_dir:  # the held-out parables written for the project (corpora/NAME.written.txt), cut alike
        for c, texts in excerpts(Path(a.written_dir), cultures, a.n_other, target, rng, ".written.txt").items():
            items += [("written", c, t) for t in texts]
    rng.shuffle(items)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    key, panels = {}, defaultdict(list)
    for i, (src, c, text) in enumerate(items):
        tid = i + 1
        key[tid] = {"source": src, "culture": c, "panel": i % a.panels + 1, "text": text}
        panels[i % a.panels + 1].append(f"#{tid} [{c}] " + text.replace("\n", " / "))
    for k, lines in panels.items():
        (out / f"panel-{k}.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "rubric.txt").write_text(RUBRIC + "\n", encoding="utf-8")
    (out / "key.json").write_text(json.dumps(key, ensure_ascii=False, indent=1), encoding="utf-8")
    counts = defaultdict(int)
    for src, _, _ in items:
        counts[src] += 1
    print(f"{len(items)} texts in {a.panels} panels ({', '.join(f'{s}: {n}' for s, n in sorted(counts.items()))}); "
          f"excerpts cut near {target} characters -> {out}")
    return 0


def read_ratings(paths: list[Path]) -> dict[int, tuple[int, int, int, int]]:
    ratings = {}
    for p in paths:
        for line in p.read_text(encoding="utf-8").splitlines():
            m = _LINE.match(line.strip())
            if m:
                ratings[int(m.group(1))] = tuple(int(g) for g in m.groups()[1:])
    return ratings


def score(key: dict, ratings: dict) -> dict:
    groups: dict = defaultdict(list)
    for tid, r in ratings.items():
        k = key.get(str(tid))
        if k:
            groups[(k["source"], "all")].append(r)
            groups[(k["source"], k["culture"])].append(r)
    table = {}
    for (src, c), rs in sorted(groups.items()):
        a = np.array(rs, float)  # (texts, 4)
        table.setdefault(src, {})[c] = {
            "n": len(rs), "grammar": round(a[:, 0].mean(), 2), "sense": round(a[:, 1].mean(), 2),
            "parable": round(a[:, 2].mean(), 2), "forward": round(a[:, 3].mean(), 3),
            "sense_distribution": [int((a[:, 1] == v).sum()) for v in range(1, 6)],
            "grammar_distribution": [int((a[:, 0] == v).sum()) for v in range(1, 6)],
        }
    return table


def cmd_score(a) -> int:
    key = json.loads(Path(a.key).read_text(encoding="utf-8"))
    ratings = read_ratings([Path(p) for p in a.ratings])
    missing = len(key) - len(set(map(str, ratings)) & set(key))
    table = score(key, ratings)
    if a.json:
        print(json.dumps(table, ensure_ascii=False, indent=1))
        return 0
    print(f"{len(ratings)} ratings of {len(key)} texts ({missing} unrated)")
    print(f"{'source':<10} {'culture':<10} {'n':>4} {'grammar':>8} {'sense':>6} {'parable':>8} {'forward':>8}  sense 1..5")
    for src, rows in table.items():
        for c, r in sorted(rows.items(), key=lambda kv: (kv[0] != "all", kv[0])):
            print(f"{src:<10} {c:<10} {r['n']:>4} {r['grammar']:>8.2f} {r['sense']:>6.2f} {r['parable']:>8.2f} "
                  f"{r['forward']:>7.0%}  {r['sense_distribution']}")
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m training.panel", description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    m = sub.add_parser("make", help="write shuffled panels and the key", formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    m.add_argument("--bundle", action="append", default=[], metavar="LABEL=MODELS_DIR",
                   help="a models folder whose bundles are one source (repeatable)")
    m.add_argument("--ancestor", metavar="ZIP", help="the ancestor's published samples (NeuroBasnya's examples.zip)")
    m.add_argument("--corpus-dir", default="data", help="corpora NAME.txt for the real excerpts")
    m.add_argument("--written-dir", metavar="DIR", help="also excerpts of the written corpora DIR/NAME.written.txt "
                   "(source 'written'), e.g. corpora")
    m.add_argument("--cultures", nargs="+", default=["armenian", "hasidic", "indian", "jewish", "sufi"])
    m.add_argument("-n", type=int, default=20, help="proverbs per culture per bundle source")
    m.add_argument("--n-other", type=int, default=6, help="ancestor samples and corpus excerpts per culture")
    m.add_argument("--panels", type=int, default=3, help="panels (one reader each), every source in each")
    m.add_argument("--seed", type=int, default=1000, help="first generation seed and the shuffle's seed")
    m.add_argument("-o", "--out", default="runs/panel")
    m.set_defaults(run=cmd_make)
    s = sub.add_parser("score", help="means and distributions per source and culture")
    s.add_argument("key")
    s.add_argument("ratings", nargs="+", help="readers' answers: lines `ID grammar sense parable forward`")
    s.add_argument("--json", action="store_true")
    s.set_defaults(run=cmd_score)
    a = p.parse_args(argv)
    try:
        return a.run(a)
    except (OSError, zipfile.BadZipFile, ValueError) as e:
        return fail(e)


if __name__ == "__main__":
    sys.exit(main())
