"""Load bench: the real bot against the fake Bot API: open-loop arrivals and closed-loop capacity.

    python bench/bot_load.py [--models-dir models] [--chats 50] [--rate 30] [--duration 60]
    python bench/bot_load.py --runs capacity,compliance,open,open-nolimit --commands 20
    python bench/bot_load.py --tiny            # no trained models yet: build two tiny ones first

Open loop (`open`, `open-nolimit`): updates arrive as a Poisson process at --rate per second for
--duration seconds, each from one of --chats chats chosen at random and asking one of the cultures at
random, whether or not earlier ones were answered (what users do). Latency is from the update's arrival
to the sendMessage that answers it (a chat's replies are matched to its unanswered updates, oldest
first). `open` runs the bot as deployed: the outgoing limiter on and the fake answering 429 over
Telegram's limits, so a chat that asks twice within a second waits for its second reply (Telegram's 1
message/s per chat); `open-nolimit` turns both off and shows what generation alone costs. Both use the bundles' own (shipped) decoding settings.

The fake Bot API (tests/bot/fakeapi.py) runs in a child process and drives a closed loop: each chat
sends its next command as soon as the previous one is answered, cycling the chats over every culture.
The bot runs here, built by bot.app exactly as `python -m bot` builds it, and a watcher task measures
how long its event loop is ever kept from running. Closed-loop runs:

  capacity    outgoing rate limiter off: how fast can it answer (replies/s, latency, loop stalls)
  compliance  limiter on, and the fake answers 429 whenever Telegram would (over 30 messages a second
              overall, over 1 a second in one chat): every update must still be answered
  buttons     as capacity, but each chat's actions cycle through a command, [🔄 Another], [👍] and [👎]
              under the last proverb it got (votes go to an SQLite file, as in production); latency per
              kind of action, side by side with capacity's commands-only figures

Closed-loop latency is from the update's delivery (the getUpdates answer that carried it) to the
sendMessage that answers it (for a vote: its answerCallbackQuery), both stamped by the fake.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing as mp
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for bot, charlm and tests.bot.fakeapi when run as a script

from bot.app import build_application, run  # noqa: E402
from bot.settings import BotSettings  # noqa: E402
from tests.bot.fakeapi import FakeBotAPI, message, serve_over_pipe  # noqa: E402

TOKEN = "1000:bench-token"


def build_tiny_models(dest: Path, units: int) -> Path:
    """Two tiny real bundles (LSTM `alpha`, GRU `beta`), trained in a child process (it needs Keras)."""
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from tests.conftest import make_bundle; d = Path(sys.argv[2]); u = int(sys.argv[3]);"
        "make_bundle(d, 'alpha', aliases=['al'], units=u, seed=1);"
        "make_bundle(d, 'beta', rnn='GRU', aliases=['be'], units=u, seed=2)"
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    subprocess.run([sys.executable, "-c", code, str(ROOT), str(dest), str(units)], check=True, env=env)
    return dest


def worker_cpu(generator) -> float:
    """CPU seconds used so far by the generation worker processes (Linux /proc; 0 elsewhere)."""
    executor = generator._executor
    total = 0.0
    for pid in list(getattr(executor, "_processes", {}) or {}):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
        except (OSError, IndexError, ValueError):
            pass
    return total


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


class OpenLoopAPI(FakeBotAPI):
    """The fake Bot API with an open-loop load: updates pushed at Poisson arrival times, each reply matched
    to its chat's oldest unanswered update."""

    def start_load(self, chats: int, rate: float, duration: float, texts: list[str], seed: int) -> None:  # open loop
        rnd = random.Random(seed)
        arrivals, t = [], rnd.expovariate(rate)
        while t < duration:
            arrivals.append((t, rnd.randint(1, chats), rnd.choice(texts)))
            t += rnd.expovariate(rate)

        def begin():
            self.pushed: dict[int, deque] = {}  # chat -> arrivals (monotonic) not answered yet, oldest first
            self.latencies: list[float] = []
            self.expected = len(arrivals)
            self.started = time.monotonic()
            self.cpu_start = time.process_time()
            self.last_answer = self.started
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            for at, chat, text in arrivals:
                loop.call_at(t0 + at, self._arrive, chat, text)
        self._in_loop(begin)

    def _arrive(self, chat: int, text: str) -> None:
        self.pushed.setdefault(chat, deque()).append(time.monotonic())
        self._push({"message": message(chat, text)})

    async def _api_sendMessage(self, call):
        response = await super()._api_sendMessage(call)
        waiting = getattr(self, "pushed", {}).get(int(call.params["chat_id"]))
        if response.status == 200 and waiting:
            self.latencies.append(call.t - waiting.popleft())
            self.last_answer = call.t
        return response

    def load_stats(self) -> dict:
        def read():
            answered = len(self.latencies)
            return {"answered": answered, "expected": self.expected, "latencies": list(self.latencies),
                    "elapsed": self.last_answer - self.started, "done": answered >= self.expected,
                    "flood_429s": self.flood_429s, "cpu_s": time.process_time() - self.cpu_start, "calls": {}}
        return self._in_loop(read)


class Run:
    """One bench run: the fake in a child process, the bot on this process's event loop."""

    def __init__(self, name: str, models_dir: Path, chats: int, commands: int, limiter: bool, timeout: float,
                 batch_size: int, processes: int, mix: list[str] | None = None,
                 open_loop: tuple[float, float, int] | None = None):
        self.name = name
        self.mix = mix
        self.open_loop = open_loop  # (rate per s, duration s, seed) for an open-loop run
        self.chats = chats
        self.commands = commands
        self.limiter = limiter
        self.timeout = timeout
        self.models_dir = models_dir
        self.batch_size = batch_size
        self.processes = processes
        self.max_stall = 0.0
        self.max_stall_cpu = 0.0
        self.stats: dict = {}
        self.batches = None

    def execute(self) -> dict:
        ctx = mp.get_context("spawn")
        conn, child_conn = ctx.Pipe()
        fake = ctx.Process(target=serve_over_pipe, args=(child_conn,), daemon=True,
                           kwargs={"flood_limits": self.limiter, "api_class": OpenLoopAPI if self.open_loop else None})
        fake.start()
        port = conn.recv()
        settings = BotSettings(
            _env_file=None, bot_token=TOKEN, bot_api_base_url=f"http://127.0.0.1:{port}/bot", models_dir=self.models_dir,
            user_rate_limit=0, outgoing_rate_limit=self.limiter, heartbeat_file=None, log_level="WARNING",
            poll_timeout=10, max_retries=10, batch_size=self.batch_size, generation_processes=self.processes,
            data_dir=Path(tempfile.mkdtemp(prefix="bench-data-")),
        )
        app = build_application(settings)
        texts = [f"/{name}" for name in app.parts.catalog.names]
        self._start_load_after_startup(app, conn, texts)
        asyncio.set_event_loop(asyncio.new_event_loop())
        try:
            run(app, stop_signals=(), close_loop=True)
        finally:
            conn.send(("stop",))
            conn.recv()
            fake.join(10)
        g = app.parts.generator.stats
        lat = [x * 1000 for x in self.stats["latencies"]]
        n = max(1, self.stats["answered"])
        return {
            "run": self.name, "answered": self.stats["answered"], "expected": self.stats["expected"],
            "elapsed_s": round(self.stats["elapsed"], 2),
            "replies_per_s": round(self.stats["answered"] / self.stats["elapsed"], 1) if self.stats["elapsed"] else 0,
            "p50_ms": round(percentile(lat, 50), 1), "p95_ms": round(percentile(lat, 95), 1),
            "p99_ms": round(percentile(lat, 99), 1), "max_stall_ms": round(self.max_stall * 1000, 1),
            "max_stall_cpu_ms": round(self.max_stall_cpu * 1000, 1),
            "flood_429s": self.stats["flood_429s"], "batches": g.batches, "largest_batch": g.largest,
            "mean_batch": round(g.requests / g.batches, 1) if g.batches else 0,
            "generation_busy_s": round(g.busy_s, 2), "retries": app.bot.rate_limiter.retries,
            "cpu_ms_per_reply_bot": round(self.cpu["bot"] / n * 1000, 2),
            "cpu_ms_per_reply_workers": round(self.cpu["workers"] / n * 1000, 2),
            "cpu_ms_per_reply_fake": round(self.stats["cpu_s"] / n * 1000, 2),
            "api_calls": self.stats["calls"],
            "by_kind": {k: {"n": len(v), "p50_ms": round(percentile([x * 1000 for x in v], 50), 1),
                            "p95_ms": round(percentile([x * 1000 for x in v], 95), 1)}
                        for k, v in sorted(self.stats.get("by_kind", {}).items())},
        }

    def _start_load_after_startup(self, app, conn, texts: list[str]) -> None:
        """Start the load once the bot is up (after its own post_init), and stop the bot after it."""
        startup = app.post_init

        async def begin(app) -> None:
            await startup(app)
            loop = asyncio.get_running_loop()
            loop.create_task(self._watch_loop())
            loop.create_task(self._drive(app, conn, texts))

        app.post_init = begin

    async def _watch_loop(self) -> None:
        """The longest time the event loop was kept from running (a 2 ms sleep that took longer).

        Two measures: wall time (what a user feels, but on a shared machine it includes time the OS
        gave the CPU to other processes) and the loop thread's own CPU time in that gap (the part
        the bot's own code is to blame for).
        """
        tick = 0.002
        while True:
            t, c = time.perf_counter(), time.thread_time()
            await asyncio.sleep(tick)
            self.max_stall = max(self.max_stall, time.perf_counter() - t - tick)
            self.max_stall_cpu = max(self.max_stall_cpu, time.thread_time() - c)
            if self.stats:
                return

    async def _drive(self, app, conn, texts: list[str]) -> None:
        await asyncio.sleep(0.5)  # let polling start
        self.max_stall = self.max_stall_cpu = 0.0  # count from the start of the load, not the bot's startup
        cpu0, wcpu0 = time.process_time(), worker_cpu(app.parts.generator)
        chats = list(range(1, self.chats + 1))

        def ask(*msg):
            conn.send(msg)
            return conn.recv()

        if self.open_loop:
            rate, duration, seed = self.open_loop
            await asyncio.to_thread(ask, "load", self.chats, rate, duration, texts, seed)
        else:
            await asyncio.to_thread(ask, "load", chats, self.commands, texts, self.mix)
        deadline = time.monotonic() + self.timeout
        while True:
            await asyncio.sleep(0.25)
            stats = await asyncio.to_thread(ask, "stats")
            if stats["done"] or time.monotonic() > deadline:
                break
        self.cpu = {"bot": time.process_time() - cpu0, "workers": worker_cpu(app.parts.generator) - wcpu0}
        self.stats = stats
        app.stop_running()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--tiny", action="store_true", help="build two tiny bundles in a temporary folder and use them")
    p.add_argument("--tiny-units", type=int, default=16, help="recurrent units of the --tiny models")
    p.add_argument("--chats", type=int, default=50)
    p.add_argument("--commands", type=int, default=20, help="closed loop: commands per chat")
    p.add_argument("--rate", type=float, default=30.0, help="open loop: updates per second (Poisson arrivals)")
    p.add_argument("--duration", type=float, default=60.0, help="open loop: seconds of arrivals")
    p.add_argument("--seed", type=int, default=0, help="open loop: seed of the arrival times, chats and cultures")
    p.add_argument("--runs", default="capacity,open,compliance,buttons",
                   help="which runs, comma-separated: capacity, compliance, buttons (closed loop), open, open-nolimit")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds per run at most")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--processes", type=int, default=None, help="generation worker processes (0: a thread; default: one per CPU)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    models = args.models_dir
    if args.tiny:
        models = build_tiny_models(Path(tempfile.mkdtemp(prefix="bench-models-")), args.tiny_units)
    load_before = os.getloadavg()
    rows = []
    for name in [r.strip() for r in args.runs.split(",") if r.strip()]:
        if name not in ("capacity", "compliance", "buttons", "open", "open-nolimit"):
            p.error(f"unknown run {name!r} (capacity, compliance, buttons, open, open-nolimit)")
        open_loop = (args.rate, args.duration, args.seed) if name.startswith("open") else None
        r = Run(name, models, args.chats, args.commands, limiter=name in ("compliance", "open"),
                timeout=max(args.timeout, args.duration + 60) if open_loop else args.timeout,
                batch_size=args.batch_size, processes=args.processes,
                mix=["text", "more", "up", "down"] if name == "buttons" else None, open_loop=open_loop)
        rows.append(r.execute())
        print(f"{name}: done", file=sys.stderr)
    cols = ["run", "answered", "replies_per_s", "p50_ms", "p95_ms", "p99_ms", "max_stall_ms", "max_stall_cpu_ms", "flood_429s", "mean_batch",
            "largest_batch", "elapsed_s", "cpu_ms_per_reply_bot", "cpu_ms_per_reply_workers", "cpu_ms_per_reply_fake"]
    print(f"models: {models} ({', '.join(sorted(d.name for d in models.iterdir() if d.is_dir()))}); "
          f"closed loop: {args.chats} chats x {args.commands} commands; open loop: {args.rate:g} updates/s for "
          f"{args.duration:g} s from {args.chats} chats; {os.cpu_count()} CPUs, load average before "
          f"{load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    print(" | ".join(cols))
    for row in rows:
        row_answered = f"{row['answered']}/{row['expected']}"
        print(" | ".join(row_answered if c == "answered" else str(row[c]) for c in cols))
    kinds = [(row["run"], kind, k) for row in rows for kind, k in row["by_kind"].items()]
    if len(kinds) > 1:
        print("\nlatency by kind of action (commands: a proverb; more: [🔄] gives one; up/down: a vote recorded)")
        print("run | action | n | p50_ms | p95_ms")
        for run_name, kind, k in kinds:
            print(f"{run_name} | {'command' if kind == 'text' else kind} | {k['n']} | {k['p50_ms']} | {k['p95_ms']}")
    if args.json:
        print(json.dumps(rows, indent=2))
    lost = [r["run"] for r in rows if r["answered"] != r["expected"]]
    if lost:
        print(f"NOT every update answered in: {', '.join(lost)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
