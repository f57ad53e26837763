"""Command line: `python -m bot [run|chat|generate|check|health]`; parses, wires, and exits with a status."""

from __future__ import annotations

import argparse
import gc
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StartupError
from .logs import REDACTOR, setup_logging

if TYPE_CHECKING:
    from .settings import BotSettings

# The heavy imports (numpy and charlm, python-telegram-bot, the database's) are made by the commands that
# need them: `run` starts its generation workers before making them (see cmd_run).

log = logging.getLogger("bot")


def fail(message: str, status: int = 1) -> int:
    """Print one line (scrubbed of secrets) to stderr; -> status."""
    print(f"error: {REDACTOR(message)}", file=sys.stderr)
    return status


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bot", description="Telegram bot that answers with freshly generated proverbs. "
                                "Settings come from the environment or .env (BOT_TOKEN, MODELS_DIR, ...).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    def add(name: str, help: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help, description=help)
        sp.add_argument("--models-dir", type=Path, help="folder of bundles (default: MODELS_DIR or models)")
        return sp

    add("run", "serve on Telegram (the default): long polling, or a webhook when WEBHOOK_URL is set")
    c = add("chat", "talk to the bot's handlers in the terminal, no token needed")
    c.add_argument("--lang", choices=("ru", "en"), default="ru", help="the language the bot speaks to you")
    g = add("generate", "print proverbs from one bundle")
    g.add_argument("name", metavar="NAME", help="bundle name or alias")
    g.add_argument("-n", type=int, default=1, help="how many (request i gets seed S+i)")
    g.add_argument("--seed", type=int, default=None, help="first seed (default: random)")
    g.add_argument("--temperature", "-t", type=float, default=None, help="sampling temperature (default: the bundle's)")
    g.add_argument("--prefix", default="", help="text to start each proverb with")
    g.add_argument("--json", action="store_true", help="print JSON")
    k = add("check", "load every bundle, regenerate its golden samples and look for listed words in N proverbs "
                     "(exit 1 if a sample differs or a proverb says a listed word)")
    k.add_argument("--proverbs", type=int, default=1000, metavar="N",
                   help="proverbs generated per bundle (seeds 0..N-1, its default settings) and searched for the words "
                        "a parable never says (charlm/wordfilter.py); 0 skips this (default 1000)")
    s = sub.add_parser("stats", help="readers' votes: like rate per bundle, the most liked and disliked proverbs",
                       description="Readers' votes from the bot's database (DATABASE_URL, or DATA_DIR/bot.sqlite3): votes and "
                       "like rate per bundle version, and the most liked and most disliked proverbs with their replay commands.")
    s.add_argument("--json", action="store_true", help="print JSON")
    s.add_argument("--top", type=int, default=10, help="how many of the most liked / disliked proverbs (default 10)")
    h = sub.add_parser("health", help="exit 0 if the running bot's heartbeat file is fresh, 1 if not")
    h.add_argument("--max-age", type=float, default=None, help="seconds (default: 4 x HEARTBEAT_INTERVAL)")
    return p


def main(argv: list[str] | None = None) -> int:
    from .settings import ValidationError, describe_error, load_settings

    args = parser().parse_args(argv)
    command = args.command or "run"
    overrides = {"models_dir": args.models_dir} if getattr(args, "models_dir", None) else {}
    try:
        settings = load_settings(**overrides)
    except ValidationError as e:
        return fail(describe_error(e), 2)
    if command == "run":
        return cmd_run(settings)
    if command == "chat":
        return cmd_chat(settings, args.lang)
    if command == "generate":
        return cmd_generate(settings, args)
    if command == "check":
        return cmd_check(settings, max(0, args.proverbs))
    if command == "stats":
        return cmd_stats(settings, args.json, args.top)
    return cmd_health(settings, args.max_age)


def cmd_run(settings: BotSettings) -> int:
    if not settings.token:
        if sys.stdin.isatty():
            print("BOT_TOKEN is not set, so no Telegram: talking in the terminal instead (python -m bot chat).", file=sys.stderr)
            return cmd_chat(settings, "ru")
        return fail("BOT_TOKEN is not set: put the token from @BotFather in the environment or .env "
                    "(or talk to the bot in the terminal: python -m bot chat)", 2)
    # no garbage collection while starting: what it makes lives as long as the process (bot.app.on_startup
    # freezes it and turns the collector back on); it made ~130,000 such objects, and the collector ran ~320
    # times over them (~0.09 s) and found next to nothing
    gc.disable()
    setup_logging(settings.log_level, settings.secrets())
    for handler in logging.getLogger().handlers:
        handler.addFilter(_not_startup_failure)
    # The generation workers start first, so that they import charlm and load the bundles (~0.3 s, which the
    # bot used to wait for after its own start) while this process imports python-telegram-bot and the rest
    # and verifies its catalog; the generation service takes them, and the bot waits for their verdict on the
    # bundles before it talks to Telegram. bench/startup.py, with the catalog and gc changes: ready 1.42 ->
    # 0.98 s (bench/README.md).
    from .workers import kill, start_workers

    pool = start_workers(settings.workers, settings.models_dir) if settings.workers else None

    from telegram.error import InvalidToken, NetworkError, TelegramError

    from .app import build_application, run

    try:
        app = build_application(settings, pool=pool)
        app.parts.generator.wait_loaded()  # (the catalog left the models to them: their verdict before Telegram)
    except StartupError as e:
        kill(pool, wait=True)
        return fail(str(e))
    try:
        run(app)
    except InvalidToken:
        return fail("Telegram rejected BOT_TOKEN (check it with @BotFather)")
    except NetworkError as e:
        return fail(f"cannot reach the Bot API at {settings.bot_api_base_url}: {e}")
    except TelegramError as e:
        return fail(f"Telegram: {e}")
    except StartupError as e:
        return fail(str(e))
    finally:
        app.parts.generator.close_unstarted()  # (it stopped before serving: getMe failed, or a stop signal)
    if app.parts.status.failure:
        return fail(app.parts.status.failure)
    return 0


def _not_startup_failure(record: logging.LogRecord) -> bool:
    """Drop python-telegram-bot's tracebacks for a failed startup (getMe) and for polling that cannot go on
    (401/404/409): main says it in one line."""
    from telegram.error import Conflict, InvalidToken, TelegramError

    exc = record.exc_info[1] if record.exc_info else None
    if not (isinstance(exc, TelegramError) and record.name.startswith("telegram")):
        return True
    return not ("Bootstrap" in record.getMessage() or isinstance(exc, (InvalidToken, Conflict)))


def cmd_chat(settings: BotSettings, lang: str) -> int:
    import asyncio

    from .console import chat

    setup_logging("DEBUG" if settings.log_level == "DEBUG" else "WARNING", settings.secrets())
    try:
        return asyncio.run(chat(settings, lang=lang))
    except StartupError as e:
        return fail(str(e))
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def cmd_generate(settings: BotSettings, args: argparse.Namespace) -> int:
    import secrets as _secrets

    from charlm import BundleError, CharsetError, Request
    from charlm.text import normalize_prefix

    setup_logging("WARNING")
    if args.n < 1:
        return fail("-n must be at least 1", 2)
    try:
        bundle = _find_bundle(settings.models_dir, args.name.lstrip("/").lower())
    except BundleError as e:
        return fail(f"broken bundle: {e}")
    except StartupError as e:
        return fail(str(e), 2)
    prefix = normalize_prefix(args.prefix)
    unknown = bundle.charset.unknown(prefix)
    if unknown:
        return fail(f"--prefix has characters the {bundle.name!r} model does not know: {' '.join(repr(c) for c in unknown)}", 2)
    try:
        gen = bundle.defaults.with_(temperature=settings.temperature).with_(temperature=args.temperature)
    except ValueError as e:
        return fail(str(e), 2)
    first = args.seed if args.seed is not None else _secrets.randbelow(1_000_000)
    requests = [Request(first + i, prefix, gen) for i in range(args.n)]
    try:
        results = bundle.generate(requests)
    except CharsetError as e:
        return fail(str(e), 2)
    if args.json:
        rows = [{"bundle": bundle.name, "seed": r.seed, "prefix": prefix, "temperature": gen.temperature, "text": r.text,
                 "ended": r.ended, "attempts": r.attempts, "copied_windows": r.copied} for r in results]
        print(json.dumps(rows, ensure_ascii=False, indent=2))
    else:
        print("\n\n".join(f"seed={r.seed}\n{r.text}" for r in results))
    return 0


def _find_bundle(models_dir: Path, name: str):
    """Load the bundle called `name` (or aliased so) in `models_dir`, without loading the others."""
    from charlm import find_bundles, load_bundle

    direct = models_dir / name
    if (direct / "manifest.json").is_file():
        return load_bundle(direct)
    names = []
    for path in find_bundles(models_dir):
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if not isinstance(manifest, dict):
            continue
        names.append(str(manifest.get("name", path.name)))
        aliases = manifest.get("aliases")
        if isinstance(aliases, list) and name in [str(a).lower() for a in aliases]:
            return load_bundle(path)
    if not names:
        raise StartupError(f"no bundles in MODELS_DIR={models_dir}")
    raise StartupError(f"no bundle {name!r} in {models_dir}; there are: {', '.join(sorted(names))}")


def listed_words_in(bundle, n: int, batch: int = 100) -> list[tuple[int, list[str]]]:
    """(seed, listed words) of each of the bundle's proverbs for seeds 0..n-1 that says one (as served)."""
    from charlm import Request
    from charlm.wordfilter import filtered_words

    hits = []
    for start in range(0, n, batch):
        reqs = [Request(seed, "", bundle.defaults) for seed in range(start, min(n, start + batch))]
        for r, res in zip(reqs, bundle.generate(reqs)):
            words = filtered_words(res.text)
            if words:
                hits.append((r.seed, words))
    return hits


def cmd_check(settings: BotSettings, proverbs: int = 1000) -> int:
    from .app import reserved_commands
    from .catalog import survey_bundles

    setup_logging("WARNING")
    bundles, problems = survey_bundles(settings.models_dir, reserved_commands())
    if not bundles and not problems:
        return fail(f"no bundles in MODELS_DIR={settings.models_dir}")
    for path, line in problems:
        print(f"FAIL {path.name}: {line}")
    failed = {path for path, _ in problems}
    for bundle in bundles.values():
        if bundle.path in failed:
            continue
        try:
            golden = bundle.check_golden()
        except Exception as e:  # noqa: BLE001 - any failure to run is this bundle's problem
            golden = [f"{bundle.path}: {type(e).__name__}: {e}"]
        if not golden and proverbs:
            hits = listed_words_in(bundle, proverbs)
            if hits:
                golden = [f"{len(hits)} of {proverbs} proverbs say a listed word: " +
                          ", ".join(f"seed={seed} «{words[0]}»" for seed, words in hits[:5])]
        if golden:
            failed.add(bundle.path)
            print(f"FAIL {bundle.path.name}: " + "; ".join(golden))
        else:
            n = len(bundle.manifest.get("golden", []))
            metrics = bundle.manifest.get("metrics")
            bpc = metrics.get("val_bpc") if isinstance(metrics, dict) else None
            extra = f", held-out {bpc:.3f} bits/char (training's windowed measure)" if isinstance(bpc, (int, float)) else ""
            words = f", none of {proverbs} proverbs says a listed word" if proverbs else ""
            print(f"ok   {bundle.name}: {n} golden samples reproduced{words}{extra}")
    return 1 if failed else 0


def cmd_stats(settings: BotSettings, as_json: bool, top: int) -> int:
    import asyncio

    from sqlalchemy.exc import SQLAlchemyError

    from .subscriptions.db import database_url, describe, reason, sqlite_file
    from .subscriptions.store import Store
    from .votes import Votes, format_report

    setup_logging("WARNING", settings.secrets())
    if top < 0:
        return fail("--top must be at least 0", 2)
    url = database_url(settings.data_dir, settings.database_url)
    file = sqlite_file(url)
    if file is not None and not file.is_file():
        return fail(f"no database at {file} (DATA_DIR or DATABASE_URL): the bot makes it at its first start")

    async def read() -> dict:
        store = await Store.open(url)  # brings an older schema up to date, as the bot's start would
        try:
            return await Votes(store.engine).report(top)
        finally:
            await store.close()

    try:
        report = asyncio.run(read())
    except StartupError as e:
        return fail(str(e))
    except SQLAlchemyError as e:
        return fail(f"{describe(url)}: {reason(e)}")
    print(json.dumps(report, ensure_ascii=False, indent=2) if as_json else format_report(report))
    return 0


def cmd_health(settings: BotSettings, max_age: float | None) -> int:
    from .health import check

    ok, line = check(settings.heartbeat_file, max_age if max_age is not None else 4 * settings.heartbeat_interval)
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def command() -> int:
    """`python -m bot` and the `proverbs` command (pyproject.toml): main, and one line instead of a traceback
    when this Python lacks the bot's dependencies (e.g. the system python3: no httpx, telegram, h5py)."""
    try:
        return main()
    except ModuleNotFoundError as e:
        if not e.name or e.name.partition(".")[0] in ("bot", "charlm"):
            raise
        return fail(f"this Python ({sys.executable}) lacks the bot's dependencies (no module {e.name!r}): ./scripts/run.sh "
                    "sets up .venv-bot with them and runs the bot there (then .venv-bot/bin/python -m bot ... or "
                    ".venv-bot/bin/proverbs ...)")


if __name__ == "__main__":
    sys.exit(command())
