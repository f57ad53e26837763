"""The bundle: a folder that holds everything needed to serve one culture, verified at load."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from .charset import Charset
from .errors import BundleError
from .candidates import generate_best
from .generate import Request, Result
from .novelty import NoveltyIndex
from .runtime import Runtime
from .sampling import Settings
from .words import Vocabulary

# 2: golden samples from exact (whole-number) products; 1: from float32 per-row products. A format-1 bundle's
# model files are the same; only its golden samples differ, and `python -m training.retune` rewrites them.
FORMAT_VERSION = 2
UPGRADABLE = (1,)
MODEL_JSON = "model.json"
WEIGHTS = "model.weights.h5"
CHARSET = "charset.json"
MANIFEST = "manifest.json"
NOVELTY = "novelty.npy"
WORDS = "words.txt"  # the words of the bundle's corpus that pymorphy3 does not know (charlm.words)
PLOT = "training.png"
REQUIRED = (MODEL_JSON, WEIGHTS, CHARSET)
NAME_RE = re.compile(r"^[a-z0-9_]{1,32}$")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    """A loaded, verified bundle: charset, runtime, manifest and optional novelty index."""

    path: Path
    manifest: dict
    charset: Charset
    runtime: Runtime | None  # None after `without_model()`: the metadata of a bundle others generate from
    novelty: NoveltyIndex | None
    words: Vocabulary | None = None  # its own words.txt + pymorphy3 (None after `without_model()`)

    def without_model(self) -> "Bundle":
        """This bundle verified, with its weights and novelty index let go: what a process that only routes
        requests to generation workers needs (~10 MB less per bundle of 2 x 384)."""
        return replace(self, runtime=None, novelty=None, words=None)

    @property
    def name(self) -> str:
        return self.manifest["name"]

    @property
    def title(self) -> str:
        return self.manifest.get("title") or self.name

    @property
    def aliases(self) -> list[str]:
        return list(self.manifest.get("aliases", []))

    @property
    def description(self) -> str:
        return self.manifest.get("description", "")

    @property
    def defaults(self) -> Settings:
        """The decoding settings the bundle was tuned for."""
        return Settings.from_dict(self.manifest.get("generation"))

    def generate(self, requests: list[Request]) -> list[Result]:
        if self.runtime is None:
            raise RuntimeError(f"{self.path}: loaded without its model (Bundle.without_model); load it again to generate")
        return generate_best(self.runtime, self.charset, requests, self.novelty, words=self.words)

    def check_golden(self) -> list[str]:
        """Regenerate the manifest's golden samples; one line per sample that does not match exactly."""
        problems = []
        golden = self.manifest.get("golden", [])
        reqs = [Request(g["seed"], g.get("prefix", ""), Settings.from_dict(g.get("settings"))) for g in golden]
        for g, res in zip(golden, self.generate(reqs)):
            if res.text != g["text"]:
                problems.append(f"golden sample seed={g['seed']} prefix={g.get('prefix', '')!r}: expected {g['text'][:40]!r}…, got {res.text[:40]!r}…")
        return problems


HEX64 = re.compile(r"^[0-9a-f]{64}$")
# decoding settings in a manifest: field -> the JSON type it must have (bool is never a number here)
_SETTING_TYPES = {"temperature": (int, float), "top_k": (int,), "top_p": (int, float), "min_length": (int,),
                  "max_length": (int,), "end_boost": (int, float)}


def _is(value, types: tuple) -> bool:
    return isinstance(value, types) and not isinstance(value, bool)


def settings_problems(where: str, data) -> list[str]:
    """Problems of decoding settings `data` (a manifest's `generation`, a golden sample's `settings`)."""
    if data is None:
        return []
    if not isinstance(data, dict):
        return [f"{where}: must be an object of decoding settings, got {type(data).__name__}"]
    problems = [f"{where}.{k}: must be a {' or '.join(t.__name__ for t in types)}, got {data[k]!r}"
                for k, types in _SETTING_TYPES.items() if k in data and not _is(data[k], types)]
    if "real_words" in data and not isinstance(data["real_words"], bool):
        problems.append(f"{where}.real_words: must be true or false, got {data['real_words']!r}")
    if not problems:
        try:
            Settings.from_dict(data)  # the ranges (temperature 0..5, 1 <= min_length <= max_length, ...)
        except ValueError as e:
            problems.append(f"{where}: {e}")
    return problems


def manifest_problems(manifest) -> list[str]:
    """Every malformed field of a parsed manifest.json, one `field: problem` each (empty: it is well formed)."""
    if not isinstance(manifest, dict):
        return [f"must be a JSON object, got a JSON {type(manifest).__name__}"]
    m = manifest
    problems = []
    if m.get("format") in UPGRADABLE:
        problems.append(f"format: bundle format {m['format']} holds golden samples of an older runtime (this version "
                        f"reads {FORMAT_VERSION}); rewrite them with `python -m training.retune BUNDLE_FOLDER`")
    elif m.get("format") != FORMAT_VERSION:
        problems.append(f"format: unsupported bundle format {m.get('format')!r} (this version reads {FORMAT_VERSION})")
    name = m.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append(f"name: {name!r} is not a Telegram command ([a-z0-9_]{{1,32}})")
    for key in ("title", "description", "charset_sha256"):
        if key in m and m[key] is not None and not isinstance(m[key], str):
            problems.append(f"{key}: must be text, got {m[key]!r}")
    aliases = m.get("aliases", [])
    if not isinstance(aliases, list):
        problems.append(f"aliases: must be a list of commands (e.g. [\"suf\"]), got {aliases!r}")
    else:
        problems += [f"aliases: {a!r} is not a Telegram command ([a-z0-9_]{{1,32}})"
                     for a in aliases if not isinstance(a, str) or not NAME_RE.match(a.lower())]
    files = m.get("files")
    if not isinstance(files, dict):
        problems.append(f"files: must be an object of file name -> sha256, got {files!r}"[:200])
    else:
        problems += [f"files: no sha256 for {f}" for f in REQUIRED if f not in files]
        problems += [f"files.{f}: {d!r} is not a sha256 (64 hex digits)"[:200] for f, d in files.items()
                     if not isinstance(d, str) or not HEX64.match(d)]
        problems += [f"files: {f!r} is not a file name in the bundle folder" for f in files
                     if Path(f).name != f or f in (".", "..", MANIFEST)]
    problems += settings_problems("generation", m.get("generation"))
    window = m.get("novelty_window", 40)
    if not _is(window, (int,)) or window < 1:
        problems.append(f"novelty_window: must be a whole number of characters >= 1, got {window!r}")
    golden = m.get("golden", [])
    if not isinstance(golden, list):
        problems.append(f"golden: must be a list of samples, got {type(golden).__name__}")
    else:
        for i, g in enumerate(golden):
            if not isinstance(g, dict) or not _is(g.get("seed"), (int,)) or not isinstance(g.get("text"), str) \
                    or not isinstance(g.get("prefix", ""), str):
                problems.append(f"golden[{i}]: must be an object with seed (a whole number), text and prefix (text)")
            else:
                problems += settings_problems(f"golden[{i}].settings", g.get("settings"))
    return problems


def load_bundle(path: str | Path, model: bool = True, upgrade: bool = False) -> Bundle:
    """Load and verify `path`; raises BundleError naming the file and the mismatch (or every malformed field).

    `model=False`: verify the manifest, every file's sha256 and the charset, but do not read the model or the
    novelty index (`runtime` and `novelty` are None, as after `without_model()`): for a process whose workers
    load the bundle fully, and would say if its model cannot run (reading six 2 x 384 models took the bot
    process ~0.1 s of its start). `upgrade`: accept an older format whose model files this version reads
    (for rewriting it: `python -m training.retune`)."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(path, "not a bundle folder")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(mpath, "missing file: a bundle folder needs its manifest.json (export the bundle again, "
                                 "or move the folder out of the models folder)")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(mpath, f"not valid JSON ({e})") from None
    checked = {**manifest, "format": FORMAT_VERSION} if upgrade and isinstance(manifest, dict) \
        and manifest.get("format") in UPGRADABLE else manifest
    problems = manifest_problems(checked)
    if problems:
        raise BundleError(mpath, "; ".join(problems))
    files = manifest["files"]
    for fname, digest in files.items():
        fpath = path / fname
        if not fpath.is_file():
            raise BundleError(fpath, "missing file")
        actual = sha256_file(fpath)
        if actual != digest:
            raise BundleError(fpath, f"sha256 mismatch (manifest {digest[:12]}…, file {actual[:12]}…): the file was changed after export")
    try:
        charset = Charset.load(path / CHARSET)
    except ValueError as e:
        raise BundleError(path / CHARSET, str(e)) from None
    if manifest.get("charset_sha256") not in (None, charset.sha256):
        raise BundleError(path / CHARSET, "charset hash differs from the manifest's")
    if not model:
        return Bundle(path, manifest, charset, None, None)
    try:
        runtime = Runtime.load(path / MODEL_JSON, path / WEIGHTS)
    except BundleError:
        raise
    except Exception as e:  # noqa: BLE001 - a model.json of another shape: name the file, never a traceback
        raise BundleError(path / MODEL_JSON, f"not a model this runtime can run ({type(e).__name__}: {e})") from None
    if len(charset) != runtime.vocab_size:
        raise BundleError(path / CHARSET, f"charset has {len(charset)} characters but the model has {runtime.vocab_size} embedding rows / output units")
    novelty = None
    if NOVELTY in files:
        try:
            hashes = np.load(path / NOVELTY, allow_pickle=False)
            if hashes.ndim != 1 or hashes.dtype != np.uint32:
                raise ValueError(f"expected a 1-D uint32 array, found {hashes.ndim}-D {hashes.dtype}")
        except (ValueError, OSError, EOFError) as e:
            raise BundleError(path / NOVELTY, f"not a novelty index ({e})") from None
        novelty = NoveltyIndex(hashes, int(manifest.get("novelty_window", 40)))
    try:
        words = Vocabulary.from_text((path / WORDS).read_text(encoding="utf-8")) if WORDS in files else Vocabulary()
    except (UnicodeDecodeError, OSError) as e:
        raise BundleError(path / WORDS, f"not a word list, one word a line in UTF-8 ({e})") from None
    return Bundle(path, manifest, charset, runtime, novelty, words)


def looks_like_bundle(folder: Path) -> bool:
    """A folder meant as a bundle: it holds a manifest.json or any of a bundle's model files."""
    return any((folder / f).is_file() for f in (MANIFEST, *REQUIRED))


def find_bundles(models_dir: str | Path) -> list[Path]:
    """Bundle folders directly under `models_dir` (with a manifest.json, or model files without one, which
    load_bundle then reports), sorted by name; hidden folders and folders of other things are not bundles."""
    d = Path(models_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and not p.name.startswith(".") and looks_like_bundle(p))


def write_bundle(dest: str | Path, files: dict[str, str | bytes | Path], manifest: dict) -> Path:
    """Write a bundle atomically: every file into a temporary folder, hashed, then renamed into place.

    `files` maps a file name to its content (text, bytes, or a path to copy). The manifest gets
    `format`, `files` (sha256 of each) and `charset_sha256` filled in.
    """
    dest = Path(dest)
    name = manifest.get("name", dest.name)
    if not NAME_RE.match(name):
        raise BundleError(dest, f"name {name!r} is not a Telegram command ([a-z0-9_]{{1,32}})")
    for fname in REQUIRED:
        if fname not in files:
            raise BundleError(dest, f"cannot write a bundle without {fname}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    # mkdtemp makes the folder 0700; give it a plain mkdir's mode so that other users (the bot's
    # container user) can read the bundle
    umask = os.umask(0o022)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)
    try:
        for fname, content in files.items():
            target = tmp / fname
            if isinstance(content, Path):
                shutil.copyfile(content, target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content, encoding="utf-8")
        manifest = dict(manifest)
        manifest["format"] = FORMAT_VERSION
        manifest["name"] = name
        manifest["files"] = {f: sha256_file(tmp / f) for f in sorted(files)}
        manifest["charset_sha256"] = Charset.load(tmp / CHARSET).sha256
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        for f in tmp.iterdir():
            with open(f, "rb") as fh:
                os.fsync(fh.fileno())
        swap_in(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def swap_in(tmp: Path, dest: Path) -> None:
    """Put folder `tmp` in place of `dest`: old one aside, new one in, old one removed; a crash leaves either."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dest, old)
    os.replace(tmp, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
