"""`python -m training.corpora`: get the corpora into `data/` (the project ships none).

- `fetch`: the ancestor's five parable corpora from NeuroBasnya's MIT-licensed `training.zip`
  (downloaded, or `--from` a local copy), checked against the hashes the shipped base (base/) was trained on.
- `fortunes`: Russian sayings from Debian's `fortunes-ru` package (GPL-2), cleaned into one entry per line.
- `tinystories`: simple children's stories from TinyStories-ru (Apache-2.0), one story per line: grammar first.
- `written`: the figures and checks of the parables written for the project (`corpora/*.written.txt`).
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import sys
import tempfile
import unicodedata
import urllib.error
import urllib.request
import zipfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from charlm.text import PARAGRAPH, normalize_text
from charlm.wordfilter import filtered_words, has_filtered_word

from .cli import HelpFormatter, Parser, fail, ranged

ZIP_URL = "https://github.com/TatianaShavrina/NeuroBasnya/raw/master/training.zip"
SOURCE = "NeuroBasnya by Tatiana Shavrina (github.com/TatianaShavrina/NeuroBasnya), MIT license"

# The ancestor's file -> our culture, and the sha256 of the corpus the shipped base (base/) was trained on
# (each bundle's manifest.json records it under corpus.files).
PARABLES = {
    "arm": ("armenian", "c74ec4fd6ccf70257708a03bbfab2583191b63e52792fcad0a8487082e8a2d77"),
    "hasid": ("hasidic", "f98ea79e2a68534f1e1c29e2dfd58682871fe05bb444c082aff76ab081797b76"),
    "ind": ("indian", "627d49579756be59c1c800e83a841f52312403eb666b5ded52814ae9cd698bff"),
    "jew": ("jewish", "ddec508b7ab24fd0fb01a2286360baafa359436c96bbd2decc5985c7ab8f54c1"),
    "suf": ("sufi", "bb0dde760d0a22f5ff798536bff7517e896d641025ebba9f989e6efc14dc79f2"),
}

FORTUNES_DIR = "/usr/share/games/fortunes/ru"
INSTALL_HINT = "install Debian's fortunes-ru package (sudo apt-get install fortunes-ru) or pass --files"
# Files of fortunes-ru that are sayings about life, love, friendship, knowledge, work, time, wealth,
# truth and the like: the `/aphorism` bundle's corpus (`--curated`). Sex, politics, drink, computers and
# programming, and the dated joke digests (20xx.xx), are left out.
CURATED = (
    "conscience", "education", "ego_and_alt", "fidelity", "freewill", "friendship", "future", "genious",
    "happy", "human_being", "innocence", "knowledge", "life", "life_k", "love", "love_s", "lovers",
    "man_and_woman", "relations", "success", "sympathy", "time", "truth", "truth_and_lie", "wealth", "work",
)
# Files never used for training (issue 23: the bundles pretrained on all of fortunes-ru said «секс», «водку»,
# «программиста» in 1-4 % of proverbs): sex, drink, politics, computers and programming.
EXCLUDED = ("sex", "flirt", "drink", "polit", "russia_today", "war", "computer", "programming", "M$")
# A saying for `/aphorism`: one or two sentences (characters, cleaned).
CURATED_LENGTH = (20, 240)

# "\t\t-- Author" lines: an indented dash, or "--" at the start. A dialogue line ("— Что?") is not indented.
_ATTRIBUTION = re.compile(r"^(?:[ \t]+(?:--|―|—)|--)\s*\S")
_SPACES = re.compile(r"\s+")
# Characters a saying may hold: Cyrillic, digits, punctuation, spaces. Entries with Latin letters are
# mostly about computers or quote English; they would add ~50 characters to every model's charset.
_ALLOWED = re.compile(r"[\u0400-\u04ff0-9\s.,:;!?…\-–—«»\"'()*%№/+=<>]+")


class SourceError(Exception):
    """A source that cannot be read; the message says what to do."""


@dataclass
class Report:
    files: int = 0
    entries: int = 0
    kept: int = 0
    chars: int = 0
    dropped: Counter = field(default_factory=Counter)
    mapped: Counter = field(default_factory=Counter)

    def take(self, entry: str, why: str | None, seen: set, kept: list) -> None:
        """Keep `entry` (no reason to drop it and not seen before), else count why it was dropped."""
        if why is None and entry in seen:
            why = "exact duplicates"
        if why is not None:
            self.dropped[why] += 1
            return
        seen.add(entry)
        kept.append(entry)
        self.kept += 1
        self.chars += len(entry) + 1

    def lines(self, out: Path) -> list[str]:
        drops = ", ".join(f"{n} {why}" for why, n in self.dropped.most_common()) or "none"
        return [f"{self.files} files, {self.entries} entries read",
                f"kept {self.kept} entries, {self.chars:,} characters -> {out}",
                f"dropped: {drops}"]


def clean_entry(raw: str) -> str:
    """One fortune (lines between `%`) -> one line: attribution lines removed, wrapping joined, NFC."""
    lines = [ln for ln in raw.splitlines() if not _ATTRIBUTION.match(ln)]
    return _SPACES.sub(" ", unicodedata.normalize("NFC", " ".join(lines))).strip()


def read_fortunes(files: list[Path], length: tuple[int, int] | None = None,
                  alphabet: set[str] | None = None) -> tuple[list[str], Report]:
    """Every entry of the given fortune files, cleaned, deduplicated, in file order."""
    report, seen, kept = Report(), set(), []
    for path in files:
        try:
            text = path.read_bytes().decode("utf-8")
        except OSError as e:
            raise SourceError(f"{path}: cannot read ({e.strerror}); {INSTALL_HINT}") from None
        except UnicodeDecodeError as e:
            raise SourceError(f"{path}: not UTF-8 (byte {e.start}); pass the .u8 files of fortunes-ru") from None
        report.files += 1
        for raw in re.split(r"^%\s*$", text, flags=re.M):
            if not raw.strip():
                continue
            report.entries += 1
            entry = clean_entry(raw)
            if not entry:
                why = "attribution only"
            elif not _ALLOWED.fullmatch(entry):
                why = "with Latin letters or rare symbols"
            elif has_filtered_word(entry):
                why = "with a word a parable never says"
            elif alphabet is not None and not alphabet.issuperset(entry):
                why = "with characters the --charset-of model lacks"
            elif length and not length[0] <= len(entry) <= length[1]:
                why = f"outside {length[0]}-{length[1]} characters"
            else:
                why = None
            report.take(entry, why, seen, kept)
    return kept, report


def fortune_files(directory: str | Path, names: tuple[str, ...] | None = None) -> list[Path]:
    """The text files of a fortunes folder (not the .dat indexes, not the .u8 links), sorted by name."""
    d = Path(directory)
    if not d.is_dir():
        raise SourceError(f"{d}: no such folder; {INSTALL_HINT}")
    if names is not None:
        missing = [n for n in names if not (d / n).is_file()]
        if missing:
            raise SourceError(f"{d}: lacks {', '.join(missing)}; is fortunes-ru fully installed?")
        return [d / n for n in names]
    files = sorted(p for p in d.iterdir() if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
                   and p.name not in EXCLUDED)
    if not files:
        raise SourceError(f"{d}: no fortune files; {INSTALL_HINT}")
    return files


def write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _download(url: str, timeout: float) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.read()
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise SourceError(f"cannot download {url} ({reason}); download it elsewhere and pass --from PATH") from None


def extract_parables(data: bytes, origin: str, out_dir: Path, check: bool = True) -> list[tuple[str, int]]:
    """The five corpora from training.zip's bytes into out_dir/NAME.txt; every hash checked before any write."""
    try:
        z = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise SourceError(f"{origin}: not a zip file; download {ZIP_URL} again") from None
    by_stem = {Path(n).stem: n for n in z.namelist() if n.endswith(".txt")}
    missing = [f"training/{stem}.txt" for stem in PARABLES if stem not in by_stem]
    if missing:
        raise SourceError(f"{origin}: lacks {', '.join(missing)}; is it NeuroBasnya's training.zip?")
    corpora = []
    for stem, (name, sha) in PARABLES.items():
        # The corpora are the zip's files as they are: UTF-8, one parable per line. Any other byte would
        # change what the shipped base was trained on, so the hash is checked, not the bytes rewritten.
        body = z.read(by_stem[stem])
        got = hashlib.sha256(body).hexdigest()
        if check and got != sha:
            raise SourceError(f"{origin}: {stem}.txt has sha256 {got[:12]}…, the shipped base was trained on "
                              f"{sha[:12]}…; use NeuroBasnya's original training.zip (or --no-check)")
        try:
            chars = len(body.decode("utf-8"))
        except UnicodeDecodeError as e:
            raise SourceError(f"{origin}: {stem}.txt is not UTF-8 (byte {e.start}); use NeuroBasnya's original training.zip") from None
        corpora.append((name, body, chars))
    for name, body, _ in corpora:
        write_atomic(out_dir / f"{name}.txt", body)
    return [(name, chars) for name, _, chars in corpora]


def cmd_fetch(a) -> int:
    if a.source:
        try:
            data, origin = Path(a.source).read_bytes(), a.source
        except OSError as e:
            raise SourceError(f"{a.source}: cannot read ({e.strerror}); pass the path of training.zip") from None
    else:
        print(f"downloading {a.url} …", file=sys.stderr)
        data, origin = _download(a.url, a.timeout), a.url
    out = Path(a.out)
    for name, chars in extract_parables(data, origin, out, check=not a.no_check):
        print(f"{out / (name + '.txt')}: {chars:,} characters")
    print(f"source: {SOURCE}")
    return 0


def alphabet_of(bundle: str | None) -> set[str] | None:
    """--charset-of BUNDLE -> the characters that bundle can write (None: no such limit)."""
    if not bundle:
        return None
    from charlm import BundleError, load_bundle

    try:
        return set(load_bundle(bundle).charset.chars)
    except BundleError as e:
        raise SourceError(f"--charset-of: {e}") from None


def cmd_fortunes(a) -> int:
    if a.files:
        files = [Path(f) for f in a.files]
    else:
        files = fortune_files(a.dir, CURATED if a.curated else None)
    length = CURATED_LENGTH if a.curated else None
    if a.min_length or a.max_length:
        length = (a.min_length or 1, a.max_length or 10**9)
    alphabet = alphabet_of(a.charset_of)
    entries, report = read_fortunes(files, length, alphabet)
    if not entries:
        raise SourceError(f"no entries left out of {report.entries} in {report.files} files; check --files")
    out = Path(a.out)
    write_atomic(out, "".join(e + "\n" for e in entries).encode("utf-8"))
    for line in report.lines(out):
        print(line)
    print("source: Debian's fortunes-ru package, GPL-2")
    return 0


TINYSTORIES_URL = "https://github.com/MichaelMonashev/TinyStories-ru"
TINYSTORIES_SOURCE = ("TinyStories-ru (github.com/MichaelMonashev/TinyStories-ru), Apache-2.0; "
                      "stories written by google/gemma-2-27b-it")
# Characters of TinyStories-ru the base cannot write, mapped to ones it can (the base's charset has «ё» but
# no «Ё»: 92 of 14,753 stories); a story with any other such character is dropped (1, with «Ы»).
TINYSTORIES_MAP = str.maketrans({"Ё": "Е"})


def read_tinystories(folder: Path, alphabet: set[str] | None) -> tuple[list[str], Report]:
    """Every `story` of the JSON-lines shards in `folder`, one text each (paragraphs as PARAGRAPH), deduplicated."""
    import json

    if not folder.is_dir():
        raise SourceError(f"{folder}: no such folder; get TinyStories-ru's data/*.jsonl from {TINYSTORIES_URL} "
                          "and pass --from DIR")
    shards = sorted(folder.glob("*.jsonl")) or sorted(folder.glob("data/*.jsonl"))
    if not shards:
        raise SourceError(f"{folder}: no *.jsonl shards; pass TinyStories-ru's data folder ({TINYSTORIES_URL})")
    report, seen, kept = Report(), set(), []
    mapped: Counter = Counter()
    for path in shards:
        report.files += 1
        try:
            lines = path.read_bytes().decode("utf-8").split("\n")
        except OSError as e:
            raise SourceError(f"{path}: cannot read ({e.strerror})") from None
        except UnicodeDecodeError as e:
            raise SourceError(f"{path}: not UTF-8 (byte {e.start}); is it a TinyStories-ru shard?") from None
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            report.entries += 1
            try:
                story = json.loads(line)["story"]
                if not isinstance(story, str):
                    raise TypeError
            except (ValueError, KeyError, TypeError):
                report.dropped["unreadable lines (not JSON with a story)"] += 1
                continue
            for ch in set(story) & set("Ё"):
                mapped[ch] += 1
            # blank lines between paragraphs -> one PARAGRAPH each (normalize_text); one story, one line
            text = normalize_text(story.translate(TINYSTORIES_MAP))
            lacking = set(text) - alphabet if alphabet is not None else set()
            if not text:
                why = "empty"
            elif lacking:
                why = f"with characters the --charset-of model lacks ({''.join(sorted(lacking))})"
            elif has_filtered_word(text):
                why = "with a word a parable never says"
            else:
                why = None
            report.take(text, why, seen, kept)
    report.mapped = mapped
    return kept, report


def cmd_tinystories(a) -> int:
    alphabet = alphabet_of(a.charset_of)
    if not a.source:
        raise SourceError(f"pass --from DIR: a copy of TinyStories-ru's data/*.jsonl ({TINYSTORIES_URL})")
    stories, report = read_tinystories(Path(a.source), alphabet)
    if not stories:
        raise SourceError(f"no stories left out of {report.entries} in {report.files} shards")
    out = Path(a.out)
    write_atomic(out, "".join(t + "\n" for t in stories).encode("utf-8"))
    for line in report.lines(out):
        print(line)
    print("mapped: " + (", ".join(f"{ch} -> {TINYSTORIES_MAP[ord(ch)]} in {n} stories" for ch, n in report.mapped.items())
                        or "none"))
    print(f"source: {TINYSTORIES_SOURCE}")
    return 0


def cmd_written(a) -> int:
    from .written import check_files

    files = [Path(f) for f in a.files] if a.files else sorted(Path(a.dir).glob("*.written.txt"))
    if not files:
        raise SourceError(f"{a.dir}: no *.written.txt files; pass the files to check")
    ok = check_files(files, [Path(p) for p in a.against], alphabet_of(a.charset_of), out=sys.stdout)
    return 0 if ok or not a.check else 1


def parse_args(argv=None):
    p = Parser(prog="python -m training.corpora", description=__doc__.split("\n\n")[0], formatter_class=HelpFormatter)
    sub = p.add_subparsers(dest="command", required=True, metavar="{fetch,fortunes,tinystories,written}")
    f = sub.add_parser("fetch", help="the five parable corpora from NeuroBasnya (MIT) into data/",
                       formatter_class=HelpFormatter)
    f.add_argument("--from", dest="source", metavar="ZIP", help="a local copy of training.zip instead of downloading")
    f.add_argument("--url", default=ZIP_URL, help="where training.zip is downloaded from")
    f.add_argument("-o", "--out", default="data", help="folder for NAME.txt")
    f.add_argument("--timeout", type=ranged(float, 0, low_open=True), default=60.0, help="download timeout, seconds")
    f.add_argument("--no-check", action="store_true", help="accept corpora whose sha256 differs from the shipped ones")
    f.set_defaults(run=cmd_fetch)
    r = sub.add_parser("fortunes", help="Russian sayings from Debian's fortunes-ru (GPL-2), one per line",
                       formatter_class=HelpFormatter)
    r.add_argument("--dir", default=FORTUNES_DIR, help="fortunes-ru's folder")
    r.add_argument("--files", nargs="+", metavar="PATH", help="these fortune files instead of the whole folder")
    r.add_argument("--curated", action="store_true",
                   help=f"only the sayings files ({len(CURATED)}: life, love, work, truth, …) and "
                        f"{CURATED_LENGTH[0]}-{CURATED_LENGTH[1]} characters: the /aphorism corpus")
    r.add_argument("--min-length", type=ranged(int, 0), default=0, help="drop entries shorter than this (0: no limit)")
    r.add_argument("--max-length", type=ranged(int, 0), default=0, help="drop entries longer than this (0: no limit)")
    r.add_argument("--charset-of", metavar="BUNDLE",
                   help="keep only entries this bundle's charset can encode (to fine-tune or pretrain from it)")
    r.add_argument("-o", "--out", default="data/fortunes.txt", help="the corpus file to write")
    r.set_defaults(run=cmd_fortunes)
    t = sub.add_parser("tinystories", help="simple children's stories from TinyStories-ru (Apache-2.0), one per line",
                       formatter_class=HelpFormatter)
    t.add_argument("--from", dest="source", metavar="DIR",
                   help=f"a copy of TinyStories-ru's JSON-lines shards ({TINYSTORIES_URL}, data/*.jsonl)")
    t.add_argument("--charset-of", default="base", metavar="BUNDLE",
                   help="drop stories with characters this bundle cannot write ('' keeps all)")
    t.add_argument("-o", "--out", default="data/tinystories.txt", help="the corpus file to write")
    t.set_defaults(run=cmd_tinystories)
    w = sub.add_parser("written", help="figures and checks of the parables written for the project (corpora/)",
                       formatter_class=HelpFormatter)
    w.add_argument("files", nargs="*", metavar="FILE", help="written corpora (default: DIR/*.written.txt)")
    w.add_argument("--dir", default="corpora", help="where the written corpora are")
    w.add_argument("--check", action="store_true", help="exit 1 when a file fails a check")
    w.add_argument("--against", nargs="*", default=[], metavar="PATH",
                   help="other corpora no written text may copy from (the real ones, fortunes-ru's sayings, TinyStories-ru)")
    w.add_argument("--charset-of", default="base", metavar="BUNDLE", help="the characters a text may hold")
    w.set_defaults(run=cmd_written)
    return p.parse_args(argv)


def main(argv=None) -> int:
    a = parse_args(argv)
    try:
        return a.run(a)
    except SourceError as e:
        return fail(e)
    except OSError as e:
        return fail(f"{e.filename or a.out}: cannot write ({e.strerror}); choose a writable --out")
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
