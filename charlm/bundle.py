"""The bundle: a folder that holds everything needed to serve one culture, verified at load."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .charset import Charset
from .errors import BundleError
from .candidates import generate_best
from .generate import Request, Result
from .novelty import NoveltyIndex
from .runtime import Runtime
from .sampling import Settings

FORMAT_VERSION = 1
MODEL_JSON = "model.json"
WEIGHTS = "model.weights.h5"
CHARSET = "charset.json"
MANIFEST = "manifest.json"
NOVELTY = "novelty.npy"
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
    runtime: Runtime
    novelty: NoveltyIndex | None

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
        return generate_best(self.runtime, self.charset, requests, self.novelty)

    def check_golden(self) -> list[str]:
        """Regenerate the manifest's golden samples; one line per sample that does not match exactly."""
        problems = []
        golden = self.manifest.get("golden", [])
        reqs = [Request(g["seed"], g.get("prefix", ""), Settings.from_dict(g.get("settings"))) for g in golden]
        for g, res in zip(golden, self.generate(reqs)):
            if res.text != g["text"]:
                problems.append(f"golden sample seed={g['seed']} prefix={g.get('prefix', '')!r}: expected {g['text'][:40]!r}…, got {res.text[:40]!r}…")
        return problems


def load_bundle(path: str | Path) -> Bundle:
    """Load and verify `path`; raises BundleError naming the file and the mismatch."""
    path = Path(path)
    if not path.is_dir():
        raise BundleError(path, "not a bundle folder")
    mpath = path / MANIFEST
    if not mpath.is_file():
        raise BundleError(mpath, "missing file")
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise BundleError(mpath, f"not valid JSON ({e})") from None
    if manifest.get("format") != FORMAT_VERSION:
        raise BundleError(mpath, f"unsupported bundle format {manifest.get('format')!r} (this version reads {FORMAT_VERSION})")
    name = manifest.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise BundleError(mpath, f"name {name!r} is not a Telegram command ([a-z0-9_]{{1,32}})")
    files = manifest.get("files", {})
    for fname in REQUIRED:
        if fname not in files:
            raise BundleError(mpath, f"no sha256 for {fname}")
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
    runtime = Runtime.load(path / MODEL_JSON, path / WEIGHTS)
    if len(charset) != runtime.vocab_size:
        raise BundleError(path / CHARSET, f"charset has {len(charset)} characters but the model has {runtime.vocab_size} embedding rows / output units")
    novelty = None
    if NOVELTY in files:
        novelty = NoveltyIndex.load(path / NOVELTY, int(manifest.get("novelty_window", 40)))
    return Bundle(path, manifest, charset, runtime, novelty)


def find_bundles(models_dir: str | Path) -> list[Path]:
    """Bundle folders (those holding a manifest.json) directly under `models_dir`, sorted by name."""
    d = Path(models_dir)
    if not d.is_dir():
        return []
    return sorted(p for p in d.iterdir() if p.is_dir() and (p / MANIFEST).is_file() and not p.name.startswith("."))


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
