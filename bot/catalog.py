"""The catalog: the loaded bundles, their commands (names and aliases), and the requests made of them.

Loaded once at startup (`Catalog.load`); after that it only answers questions: no I/O, no Telegram.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import charlm
from charlm import Bundle, BundleError, Request, find_bundles, load_bundle
from charlm.bundle import NAME_RE, sha256_file

from .commands import MAX_SEED
from .errors import StartupError


@dataclass(frozen=True)
class Catalog:
    """The bundles the bot serves, by name; their commands; the bot's overrides of their decoding settings."""

    bundles: dict[str, Bundle]
    commands: dict[str, str]  # command or alias (lower case) -> bundle name
    digests: dict[str, str]  # bundle name -> sha256 of its manifest.json (which hashes every other file)
    temperature: float | None = None  # TEMPERATURE: replaces every bundle's own (None: keep theirs)
    max_length: int | None = None  # MAX_LENGTH: likewise

    @classmethod
    def load(cls, models_dir: str | Path, reserved: Collection[str], temperature: float | None = None,
             max_length: int | None = None, models: bool = True) -> "Catalog":
        """Every bundle under `models_dir`, verified; StartupError (one line) when none, or one is broken or
        would take a command of `reserved` (the bot's own) or of another bundle. `models=False` keeps only
        what routing needs (each bundle's files verified, its model left unread: `load_bundle(model=False)`):
        for a bot whose workers generate, and load and check the models (`GenerationService.start`)."""
        models_dir = Path(models_dir)
        bundles, problems = survey_bundles(models_dir, reserved, models)
        if problems:
            raise StartupError(problems[0][1])
        if not bundles:
            why = "no such folder" if not models_dir.is_dir() else "no bundle folders (with manifest.json) in it"
            raise StartupError(f"no bundles in MODELS_DIR={models_dir} ({why}); train one with "
                               f"`python -m training.train --culture NAME` or point MODELS_DIR at a models folder")
        commands = {c.lower(): b.name for b in bundles.values() for c in [b.name, *b.aliases]}
        digests = {name: sha256_file(b.path / "manifest.json") for name, b in bundles.items()}
        return cls(bundles, commands, digests, temperature, max_length)

    @property
    def names(self) -> list[str]:
        """Bundle names, sorted."""
        return sorted(self.bundles)

    def digest(self, name: str) -> str:
        """The bundle's sha256: of its manifest.json, which holds the sha256 of every other file of it."""
        return self.digests[name]

    def version(self, name: str, temperature: float | None = None) -> str:
        """Which proverbs a vote button of bundle `name` (with the user's t=) stands for; its first hex digits are
        in the button (bot.buttons.TAG). The bundle's sha256 while the bot serves the bundle's own settings; with
        TEMPERATURE or MAX_LENGTH changing them, a hash of the sha256 and the settings served. Issue 24: after a
        restart with another TEMPERATURE a vote regenerated another text than the reader saw, stored it, and
        said «учтено»; now it is refused as for a retrained model. (Buttons sent before keep working where the
        bot changes nothing.)"""
        served = self.settings_for(name, temperature)
        if served == self.bundles[name].defaults.with_(temperature=temperature):
            return self.digests[name]
        key = json.dumps([self.digests[name], dataclasses.asdict(served)], sort_keys=True)
        return hashlib.sha256(key.encode("utf-8")).hexdigest()

    def settings_for(self, name: str, temperature: float | None = None) -> charlm.Settings:
        """Decoding settings: the bundle's tuned defaults, then the bot's overrides, then the user's t=."""
        s = self.bundles[name].defaults.with_(temperature=self.temperature)
        if self.max_length is not None:
            s = s.with_(max_length=self.max_length, min_length=min(s.min_length, self.max_length))
        return s.with_(temperature=temperature)

    def request(self, name: str, seed: int | None = None, prefix: str = "", temperature: float | None = None) -> Request:
        """A generation request for bundle `name`; a fresh random seed unless one is given."""
        return Request(new_seed() if seed is None else seed, prefix, self.settings_for(name, temperature))


def new_seed() -> int:
    """A fresh seed, short enough to read and type back."""
    return secrets.randbelow(min(MAX_SEED, 999_999) + 1)


def survey_bundles(models_dir: str | Path, reserved: Collection[str], models: bool = True,
                   ) -> tuple[dict[str, Bundle], list[tuple[Path, str]]]:
    """Load every bundle folder under `models_dir` and check them together: the one validation that startup
    and `python -m bot check` share. -> (the bundles that loaded, by name; (folder, problem) for each problem:
    a broken bundle, two bundles of one name, a command that clashes with the bot's own or another bundle's)."""
    bundles: dict[str, Bundle] = {}
    problems: list[tuple[Path, str]] = []
    for p in find_bundles(models_dir):
        try:
            b = load_bundle(p, model=models)
        except BundleError as e:
            problems.append((p, f"broken bundle: {e}"))
            continue
        if b.name in bundles:
            problems.append((p, f"two bundles are named {b.name!r}: {bundles[b.name].path} and {b.path}"))
            continue
        bundles[b.name] = b
    problems += [(bundles[name].path, line) for name, line in command_problems(bundles, reserved)]
    return bundles, problems


def command_problems(bundles: dict[str, Bundle], reserved: Collection[str]) -> list[tuple[str, str]]:
    """(bundle name, problem) for each command (name or alias) that is not a Telegram command or is taken."""
    table: dict[str, str] = {}
    out = []
    for b in bundles.values():
        for command in [b.name, *b.aliases]:
            command = command.lower()
            other = table.get(command)
            if command in reserved:
                out.append((b.name, f"bundle {b.name!r} would take the bot's own command /{command} ({b.path / 'manifest.json'})"))
            elif other is not None and other != b.name:
                out.append((b.name, f"/{command} of bundle {b.name!r} is already the command of {other!r} ({b.path / 'manifest.json'})"))
            elif not NAME_RE.match(command):
                out.append((b.name, f"alias {command!r} of bundle {b.name!r} is not a Telegram command ([a-z0-9_]{{1,32}})"))
            else:
                table[command] = b.name
    return out
