"""Daily-subscription bench: N subscribers due in the same minute, delivered by the real bot through the fake Bot API.

    python bench/subscriptions.py --tiny                      # 5,000 subscribers at Telegram's 30 messages/s (~3 min)
    python bench/subscriptions.py --tiny --subscribers 500    # a quicker look
    python bench/subscriptions.py --tiny --fast               # the fake (and the bot's limiter) allow 500/s instead
    python bench/subscriptions.py --models-dir models         # real bundles instead of two tiny ones
    python bench/subscriptions.py --tiny --database-url postgresql+asyncpg://USER@HOST/EMPTY_DB --bots 2
                                  # PostgreSQL, and two bot processes on it: one delivers, the other stands by

What it does: writes N subscriptions (chats 1..N, cycling through "random" and every culture) for the next
whole minute at least --lead seconds away into a fresh SQLite database, starts `python -m bot` on it (the
real CLI, the real subscriptions, the real clock) against the fake Bot API in this process, and waits. The fake
answers 429 whenever Telegram would: more than --rate messages in any second overall (30 unless --fast),
more than 1 a second in one chat. Reported: every chat got exactly one proverb, the 429s (must be 0), the
most messages the fake saw in any one second, the delay from the due minute to the first and last message,
whether the bot recorded every delivery in the database, and how long people who ask for a proverb while
the delivery runs (a command every 3 s from a new chat) wait for their reply.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for bot, charlm and tests.bot.fakeapi when run as a script

from sqlalchemy import func, insert, select  # noqa: E402

from bot.settings import BotSettings  # noqa: E402
from bot.subscriptions.schema import chats, subscriptions  # noqa: E402
from bot.subscriptions.db import database_url  # noqa: E402
from bot.subscriptions.store import RANDOM, Store  # noqa: E402
from bot.subscriptions.timing import format_time, plan  # noqa: E402
from charlm import find_bundles  # noqa: E402
from tests.bot.fakeapi import FakeBotAPI  # noqa: E402

TOKEN = "1000:bench-token"
FAST_RATE = 500


def build_tiny_models(dest: Path) -> Path:
    """Two tiny real bundles (LSTM `alpha`, GRU `beta`), trained in a child process (it needs Keras)."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from tests.conftest import make_bundle; d = Path(sys.argv[2]);"
        "make_bundle(d, 'alpha', aliases=['al'], seed=1); make_bundle(d, 'beta', rnn='GRU', aliases=['be'], seed=2)"
    )
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(dest)], check=True,
                   env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"))
    return dest


def bundle_names(models_dir: Path) -> list[str]:
    return [json.loads((p / "manifest.json").read_text(encoding="utf-8")).get("name", p.name) for p in find_bundles(models_dir)]


async def populate(url: str, n: int, cultures: list[str], at: datetime) -> None:
    """N chats (1..N, UTC), each subscribed to cultures[i % len] at `at`'s HH:MM; written in bulk."""
    now = datetime.now(timezone.utc)
    store = await Store.open(url)  # creates and migrates the database
    due_date, next_due = plan(at.time(), "UTC", None, now)
    assert next_due == at, (next_due, at)
    rows_chats = [{"chat_id": i, "timezone": "UTC", "created_at": now} for i in range(1, n + 1)]
    rows_subs = [{"chat_id": i, "culture": cultures[i % len(cultures)], "local_time": format_time(at.time()),
                  "due_date": due_date, "next_due": next_due, "last_date": None, "failures": 0, "created_at": now}
                 for i in range(1, n + 1)]
    async with store.engine.begin() as conn:
        await conn.execute(insert(chats), rows_chats)
        await conn.execute(insert(subscriptions), rows_subs)
    await store.close()


async def recorded(url: str, day) -> tuple[int, int]:
    """(subscriptions whose last_date is `day`, all subscriptions) after the run."""
    store = await Store.open(url)
    async with store.engine.connect() as conn:
        done = (await conn.execute(select(func.count()).select_from(subscriptions)
                                   .where(subscriptions.c.last_date == day))).scalar_one()
        total = (await conn.execute(select(func.count()).select_from(subscriptions))).scalar_one()
    await store.close()
    return done, total


def max_in_window(times: list[float], period: float = 1.0) -> int:
    """The most events in any half-open window of `period` seconds (times sorted)."""
    best, j = 0, 0
    for i, t in enumerate(times):
        while t - times[j] >= period:
            j += 1
        best = max(best, i - j + 1)
    return best


def bot_env(api: FakeBotAPI, models_dir: Path, data_dir: Path, tmp: Path, rate: int, concurrency: int,
            url: str | None = None) -> dict:
    env = {k: v for k, v in os.environ.items() if k.lower() not in BotSettings.model_fields}
    if url:
        env["DATABASE_URL"] = url
    env.update({
        "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "BOT_TOKEN": TOKEN, "BOT_API_BASE_URL": api.base_url,
        "MODELS_DIR": str(models_dir), "DATA_DIR": str(data_dir), "HEARTBEAT_FILE": str(tmp / "heartbeat"),
        "LOG_LEVEL": "INFO", "OVERALL_RATE": str(rate), "SUBSCRIPTION_CONCURRENCY": str(concurrency),
        "POLL_TIMEOUT": "10",
    })
    return env


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--subscribers", type=int, default=5000)
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--tiny", action="store_true", help="build two tiny bundles in a temporary folder and use them")
    p.add_argument("--fast", action="store_true", help=f"let the fake and the bot's limiter allow {FAST_RATE} messages/s "
                                                        "overall instead of Telegram's 30 (per chat stays 1/s)")
    p.add_argument("--rate", type=int, default=None, help="messages/s overall the fake allows (overrides --fast)")
    p.add_argument("--concurrency", type=int, default=None, help="SUBSCRIPTION_CONCURRENCY (default: the bot's)")
    p.add_argument("--lead", type=float, default=40.0, help="seconds at least from now to the due minute (bot startup)")
    p.add_argument("--database-url", default=None, metavar="URL",
                   help="an empty database to use instead of a fresh SQLite file (e.g. postgresql+asyncpg://...)")
    p.add_argument("--bots", type=int, default=1, help="bot processes on the database, deliveries on in all: one "
                   "holds the delivery lease, the others stand by (nothing may arrive twice)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = p.parse_args(argv)
    rate = args.rate or (FAST_RATE if args.fast else 30)
    concurrency = args.concurrency or (64 if rate > 30 else BotSettings.model_fields["subscription_concurrency"].default)
    mode = f"fast (fake allows {rate}/s overall)" if rate > 30 else f"Telegram's limits ({rate}/s overall)"

    with tempfile.TemporaryDirectory(prefix="bench-subs-") as tmp_name:
        tmp = Path(tmp_name)
        models = build_tiny_models(tmp / "models") if args.tiny else args.models_dir
        names = bundle_names(models)
        if not names:
            print(f"error: no bundles in {models}; use --tiny or --models-dir", file=sys.stderr)
            return 2
        data_dir = tmp / "data"
        url = database_url(data_dir, args.database_url)
        now = datetime.now(timezone.utc)
        due = (now + timedelta(seconds=args.lead + 60)).replace(second=0, microsecond=0)
        asyncio.run(populate(url, args.subscribers, [RANDOM, *names], due))
        print(f"{args.subscribers} subscriptions ({', '.join([RANDOM, *names])}) due at {due:%H:%M} UTC; mode: {mode}",
              flush=True)

        with FakeBotAPI(flood_limits=True, overall_rate=rate, chat_rate=1) as api:
            offset = time.time() - time.monotonic()  # the fake stamps calls with time.monotonic()
            log_path = tmp / "bot.log"
            probes: dict[int, int] = {}  # chat -> update_id of a command sent during the delivery
            for i in range(args.bots):
                (tmp / f"bot{i}").mkdir()  # each its own heartbeat file
            with open(log_path, "w") as log:
                bots = [subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT,
                                         env=bot_env(api, models, data_dir, tmp / f"bot{i}", rate, concurrency, args.database_url))
                        for i in range(args.bots)]
                bot = bots[0]
                try:
                    api.wait_for(lambda: api.calls_of("getUpdates") or bot.poll() is not None, 120, "the bot to start")
                    if bot.poll() is not None:
                        print(log_path.read_text(), file=sys.stderr)
                        return 1
                    ready = api.calls_of("getUpdates")[0].t + offset - due.timestamp()
                    print(f"bot ready {-ready:.1f} s before the minute" if ready < 0 else
                          f"bot ready {ready:.1f} s AFTER the minute (it catches up on startup)", flush=True)
                    deadline = time.time() + max(0.0, due.timestamp() - time.time()) + args.subscribers / rate * 1.5 + 120
                    last = next_probe = 0.0
                    while time.time() < deadline:
                        sent = sum(1 for c in api.calls_of("sendMessage")
                                   if c.status == 200 and int(c.params["chat_id"]) <= args.subscribers)
                        if sent >= args.subscribers:
                            break
                        if time.time() - last > 15 and time.time() > due.timestamp():
                            print(f"  {sent} delivered, {api.flood_429s} 429s", flush=True)
                            last = time.time()
                        if sent and time.time() > next_probe:  # someone asks for a proverb mid-delivery
                            chat = args.subscribers + 1 + len(probes)
                            probes[chat] = api.send_text(chat, f"/{names[0]}")
                            next_probe = time.time() + 3.0
                        time.sleep(0.25)
                    time.sleep(2.0)  # anything extra (a double) would show up now
                finally:
                    for b in bots:
                        b.send_signal(signal.SIGTERM)
                    for b in bots:
                        try:
                            b.wait(60)
                        except subprocess.TimeoutExpired:
                            b.kill()
            calls = api.calls_of("sendMessage")
            flood_429s = api.flood_429s
            replies = {int(c.params["chat_id"]): c.t for c in reversed(calls) if c.status == 200}
            probe_latency = sorted(replies[chat] - api.delivered[uid] for chat, uid in probes.items()
                                   if chat in replies and uid in api.delivered)
            calls = [c for c in calls if int(c.params["chat_id"]) <= args.subscribers]

        ok = sorted(c.t + offset for c in calls if c.status == 200)
        per_chat = Counter(int(c.params["chat_id"]) for c in calls if c.status == 200)
        per_chat_times: dict[int, list[float]] = {}
        for c in calls:
            if c.status == 200:
                per_chat_times.setdefault(int(c.params["chat_id"]), []).append(c.t)
        done, total = asyncio.run(recorded(url, due.date()))
        bot_lines = [l.strip() for l in log_path.read_text().splitlines()
                     if "daily deliver" in l or "stopped; generated" in l or "ERROR" in l or "Traceback" in l]

    start = due.timestamp()
    figures = {
        "mode": mode,
        "database": "SQLite file" if not args.database_url else args.database_url.split("://")[0],
        "bot_processes": args.bots,
        "subscribers": args.subscribers,
        "delivered_chats": len(per_chat),
        "messages": len(ok),
        "chats_with_two_or_more": sum(1 for n in per_chat.values() if n > 1),
        "missing": args.subscribers - len(set(per_chat) & set(range(1, args.subscribers + 1))),
        "flood_429s": flood_429s,
        "max_messages_in_any_1s": max_in_window(ok),
        "max_per_chat_in_any_1s": max((max_in_window(sorted(t)) for t in per_chat_times.values()), default=0),
        "first_after_minute_s": round(ok[0] - start, 2) if ok else None,
        "last_after_minute_s": round(ok[-1] - start, 2) if ok else None,
        "messages_per_s": round(len(ok) / (ok[-1] - ok[0]), 1) if len(ok) > 1 else None,
        "minimum_at_limit_s": round(args.subscribers / rate, 1),
        "recorded_in_database": f"{done}/{total}",
        # people asking for a proverb while the delivery runs: update delivered -> its reply sent
        "commands_during_delivery": f"{len(probe_latency)}/{len(probes)} answered",
        "command_reply_p50_s": round(probe_latency[len(probe_latency) // 2], 2) if probe_latency else None,
        "command_reply_max_s": round(probe_latency[-1], 2) if probe_latency else None,
    }
    print()
    for k, v in figures.items():
        print(f"  {k:28s} {v}")
    print("  bot log:")
    for line in bot_lines:
        print(f"    {line}")
    if args.json:
        print(json.dumps(figures))
    good = (figures["missing"] == 0 and figures["chats_with_two_or_more"] == 0 and flood_429s == 0
            and done == total == args.subscribers and len(probe_latency) == len(probes))
    print("\nOK: all delivered once, none over the limits, all recorded" if good else "\nFAILED", flush=True)
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
