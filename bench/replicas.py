"""Replicas bench: N webhook replicas behind nginx routing by chat, one scheduler, PostgreSQL; and one process alone.

    python bench/replicas.py --tiny                        # 2 replicas; baseline, replicas and a kill run (~3 min)
    python bench/replicas.py --tiny --replicas 3 --rate 20 --duration 60
    python bench/replicas.py --models-dir models --runs baseline,replicas
    python bench/replicas.py --tiny --keep                 # keep the logs, nginx's access log and its config

The shape of docs/scaling.md, every process started directly (no containers): a throwaway PostgreSQL
cluster (initdb + pg_ctl, as the tests start one), N `python -m bot` webhook replicas
(SUBSCRIPTION_DELIVERY=false, OVERALL_RATE=(30 - S) / N each), one scheduler (deliveries on,
OVERALL_RATE=S, a webhook port nginx never routes to), nginx in front with the config docs/scaling.md shows
(NGINX_ROUTING below, on loopback ports and without TLS), and the fake Bot API (tests/bot/fakeapi.py, in this
process) answering 429 over Telegram's 30 messages/s overall and 1/s in a chat.

Load: updates posted as Telegram posts them (compact JSON, the secret token header) at --rate per second
(Poisson arrivals) for --duration seconds, each from one of --chats chats at random, asking a random
culture with `seed=UPDATE_ID`, so each reply names the update it answers; a share (--inline) are inline
queries from the chat's user (`alpha seed=N`, answered by answerInlineQuery `iqN`), which the nginx map
keys on "from" instead of "chat". A post that does not get 200 is
posted again after 1 s, up to 5 times, as Telegram retries a webhook. Latency runs from the first post of an
update to the sendMessage that answers it, both on this process's clock.

Runs (--runs):
  baseline   one process (deliveries on, OVERALL_RATE=30), posted to directly, no nginx: the same load
  replicas   N replicas + scheduler behind nginx
  kill       as replicas, and replica 1 is killed (SIGKILL) at --kill-at of the duration, and started again
             --restart-after s later: what nginx's proxy_next_upstream retries, what the client sees, what is
             lost, where the dead replica's chats go, whether they come back, whether any other chat moves

Which replica got an update is read twice: from nginx's access log ($upstream_addr, per update id) and from
the replica that answered it (each replica runs with its own bot token, all of them one bot to the fake, so
the answering sendMessage names its sender). Routing by chat holds when no chat reached more than one replica.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for bot, charlm and tests.bot when run as a script

from bot.settings import BotSettings  # noqa: E402
from charlm import find_bundles  # noqa: E402
from tests.bot.fakeapi import FakeBotAPI, message, user  # noqa: E402

SECRET = "bench-webhook-secret-Token"
OVERALL = 30  # Telegram's messages/s for the whole bot
TRIES = 5  # posts of one update before giving up (Telegram keeps retrying longer)
RETRY_DELAY = 1.0

# docs/scaling.md's nginx.conf, the parts that route (tests/test_bench_replicas.py checks the docs show these
# lines); the bench adds loopback addresses, no TLS, and a log of which replica got which update
NGINX_ROUTING = r'''map $request_body $chat {
    "~\"chat\":\{\"id\":(?<id>-?\d+)"  $id;      # messages, edited messages, callback queries' messages
    "~\"from\":\{\"id\":(?<id>\d+)"     $id;      # inline queries: the user
    default                             "";
}
upstream replicas {
    hash $chat consistent;                      # a replica that goes away moves only its own chats
    SERVERS
}'''
NGINX_LOCATION = '''    client_body_buffer_size 64k;                # keep updates in memory: $request_body is empty otherwise
    location /telegram {
        proxy_pass http://replicas;
        proxy_next_upstream error timeout http_502 http_503;
    }'''


def nginx_conf(prefix: Path, listen: int, ports: list[int]) -> str:
    servers = " ".join(f"server 127.0.0.1:{p};" for p in ports)
    return f"""# written by bench/replicas.py
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    log_format routed '$msec $http_x_bench_update chat=$chat up=$upstream_addr status=$status up_status=$upstream_status';
{NGINX_ROUTING.replace("SERVERS", servers)}
server {{
    listen 127.0.0.1:{listen};
    access_log {prefix}/access.log routed;
{NGINX_LOCATION}
}}
}}
"""


# -- pure bookkeeping (tested in tests/test_bench_replicas.py) ---------------------------------------------


@dataclass
class Routed:
    """One nginx access-log line: an update, the $chat key nginx computed, the replicas it tried (in order)."""

    update: int
    key: str
    upstreams: list[str]
    status: int


LOG_LINE = re.compile(r"^(?P<t>\S+) (?P<u>\S+) chat=(?P<key>\S*) up=(?P<up>.*?) status=(?P<st>\d+) up_status=")


def parse_access_log(lines) -> list[Routed]:
    """nginx's `routed` lines -> Routed; lines without an update id (not the bench's) are skipped."""
    out = []
    for line in lines:
        m = LOG_LINE.match(line)
        if not m or not m["u"].isdigit():
            continue
        ups = [u.strip() for u in re.split(r"[,:]\s", m["up"]) if u.strip() and u.strip() != "-"]
        # $upstream_addr: "A, B" when nginx moved on from A to B; "A : B" across an internal redirect
        out.append(Routed(int(m["u"]), "" if m["key"] == "-" else m["key"], ups, int(m["st"])))
    return out


def replicas_per_chat(pairs) -> dict[int, set[str]]:
    """(chat, replica) pairs -> chat -> the replicas it reached."""
    out: dict[int, set[str]] = defaultdict(set)
    for chat, replica in pairs:
        out[chat].add(replica)
    return dict(out)


def split_chats(per_chat: dict[int, set[str]]) -> int:
    """How many chats reached more than one replica (routing by chat: must be 0)."""
    return sum(1 for r in per_chat.values() if len(r) > 1)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(q / 100 * (len(s) - 1))))]


# -- processes ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` and every process below it (Linux /proc), 0 when gone."""
    tick = os.sysconf("SC_CLK_TCK")
    stats = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                f = (d / "stat").read_text().rsplit(")", 1)[1].split()
                stats[int(d.name)] = (int(f[1]), (int(f[11]) + int(f[12])) / tick)
            except (OSError, IndexError, ValueError):
                pass
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        total += stats.get(p, (0, 0.0))[1]
        todo += [c for c, (parent, _) in stats.items() if parent == p]
    return total


class Procs:
    """Every process this bench starts, each in its own session (a Ctrl-C reaches the bench alone, which stops
    them in order); `close()` ends whatever still runs, SIGKILL after a grace."""

    def __init__(self, work: Path):
        self.work = work
        self.procs: dict[str, subprocess.Popen] = {}
        self.logs: dict[str, Path] = {}

    def start(self, name: str, cmd: list[str], env: dict | None = None) -> subprocess.Popen:
        self.logs[name] = self.work / f"{name}.log"
        with open(self.logs[name], "w") as log:
            p = subprocess.Popen(cmd, env=env, cwd=self.work, stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT, start_new_session=True)
        self.procs[name] = p
        return p

    def tail(self, name: str, n: int = 15) -> str:
        try:
            return "\n".join(self.logs[name].read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def stop(self, name: str, sig: int = signal.SIGTERM, grace: float = 60.0) -> int | None:
        p = self.procs[name]
        if p.poll() is None:
            p.send_signal(sig)
        try:
            return p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            return p.wait()

    def close(self) -> None:
        for name, p in self.procs.items():
            if p.poll() is None:
                p.send_signal(signal.SIGQUIT if name == "nginx" else signal.SIGTERM)
        deadline = time.monotonic() + 60
        for p in self.procs.values():
            try:
                p.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def wait_port(port: int, proc: subprocess.Popen, timeout: float, what: str, procs: Procs, name: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited ({proc.returncode}) before listening on {port}:\n{procs.tail(name)}")
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {port} within {timeout:.0f} s:\n{procs.tail(name)}")


def bot_env(api: FakeBotAPI, token: str, models: Path, work: Path, port: int, url: str, rate: float,
            delivery: bool, workers: int, limiter: bool) -> dict:
    env = {k: v for k, v in os.environ.items() if k.lower() not in BotSettings.model_fields}
    work.mkdir(parents=True, exist_ok=True)
    env.update({
        "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "3",
        "BOT_TOKEN": token, "BOT_API_BASE_URL": api.base_url, "MODELS_DIR": str(models),
        "DATA_DIR": str(work / "data"), "HEARTBEAT_FILE": str(work / "heartbeat"), "DATABASE_URL": url,
        "WEBHOOK_URL": "https://bot.example.org/telegram", "WEBHOOK_LISTEN": "127.0.0.1",
        "WEBHOOK_PORT": str(port), "WEBHOOK_PATH": "telegram", "WEBHOOK_SECRET_TOKEN": SECRET,
        "SUBSCRIPTION_DELIVERY": "true" if delivery else "false", "OVERALL_RATE": f"{rate:g}",
        "OUTGOING_RATE_LIMIT": "true" if limiter else "false", "GENERATION_PROCESSES": str(workers),
        # a starved machine waited out the 5 s default for a free connection to the Bot API (bench/faults.py)
        "POOL_TIMEOUT": "60",
    })
    return env


# -- load --------------------------------------------------------------------------------------------------


@dataclass
class Post:
    update: int
    chat: int
    at: float  # seconds after the load's start it is due
    inline: bool = False  # an inline query (`@bot alpha seed=N`, answered by answerInlineQuery) instead of a message
    sent: float = 0.0  # monotonic, first try
    statuses: list = field(default_factory=list)  # one per try: HTTP status, or the error's name

    @property
    def accepted(self) -> bool:
        return 200 in self.statuses


def arrivals(rate: float, duration: float, chats: int, names: list[str], seed: int,
             inline: float = 0.0) -> list[tuple[Post, str]]:
    """Poisson arrivals; a share `inline` of them inline queries from the chat's user (nginx keys those on
    "from", messages on "chat": both must land on the chat's replica)."""
    rnd = random.Random(seed)
    out, t, uid = [], rnd.expovariate(rate), 0
    while t < duration:
        uid += 1
        chat, name, is_inline = rnd.randint(1, chats), rnd.choice(names), rnd.random() < inline
        out.append((Post(uid, chat, t, inline=is_inline), f"{'' if is_inline else '/'}{name} seed={uid}"))
        t += rnd.expovariate(rate)
    return out


def update_body(post: Post, text: str) -> bytes:
    """The update as Telegram posts it: compact JSON (the nginx map's patterns assume no blanks)."""
    if post.inline:
        update = {"update_id": post.update, "inline_query": {"id": f"iq{post.update}", "from": user(post.chat),
                                                              "query": text, "offset": "", "chat_type": "private"}}
    else:
        update = {"update_id": post.update, "message": message(post.chat, text)}
    return json.dumps(update, ensure_ascii=False, separators=(",", ":")).encode()


async def drive(url: str, load: list[tuple[Post, str]], progress: float, on_tick=None) -> None:
    """Post every update at its time; a post that is not answered 200 is posted again (Telegram retries)."""
    import httpx

    async def one(client, post: Post, text: str, t0: float) -> None:
        await asyncio.sleep(max(0.0, t0 + post.at - time.monotonic()))
        body = update_body(post, text)
        headers = {"Content-Type": "application/json", "X-Telegram-Bot-Api-Secret-Token": SECRET,
                   "X-Bench-Update": str(post.update)}
        post.sent = time.monotonic()
        for i in range(TRIES):
            try:
                r = await client.post(url, content=body, headers=headers)
                post.statuses.append(r.status_code)
                if r.status_code == 200:
                    return
            except httpx.HTTPError as e:
                post.statuses.append(type(e).__name__)
            await asyncio.sleep(RETRY_DELAY)

    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32)
    async with httpx.AsyncClient(timeout=10.0, limits=limits) as client:
        t0 = time.monotonic()
        tasks = [asyncio.create_task(one(client, p, text, t0)) for p, text in load]
        last = t0
        while not all(t.done() for t in tasks):
            await asyncio.sleep(0.2)
            if on_tick:
                on_tick(time.monotonic() - t0)
            if time.monotonic() - last >= progress:
                last = time.monotonic()
                print(f"    {time.monotonic() - t0:5.0f} s: {sum(p.sent > 0 for p, _ in load)}/{len(load)} posted",
                      flush=True)
        await asyncio.gather(*tasks)


SEED = re.compile(r"seed=(\d+)\s*$")


def replies(api: FakeBotAPI) -> list[tuple[int | None, int | None, str, float]]:
    """(chat, the update a reply answers or None, the sender's token, time) of every sendMessage that went out,
    and of every answerInlineQuery (chat None: it names the query, `iqUPDATE`)."""
    out = []
    for c in list(api.calls):
        if c.status == 200 and c.method == "sendMessage":
            m = SEED.search(str(c.params.get("text", "")))
            out.append((int(c.params["chat_id"]), int(m[1]) if m else None, c.token, c.t))
        elif c.status == 200 and c.method == "answerInlineQuery":
            qid = str(c.params.get("inline_query_id", ""))
            out.append((None, int(qid[2:]) if qid[2:].isdigit() else None, c.token, c.t))
    return out


def settle(api: FakeBotAPI, posts: list[Post], quiet: float, timeout: float) -> None:
    """Wait until every accepted update is answered, or nothing is sent for `quiet` s; then 2 s for doubles."""
    want = {p.update for p in posts if p.accepted}
    deadline, last, seen = time.monotonic() + timeout, time.monotonic(), -1
    while time.monotonic() < deadline and time.monotonic() - last < quiet:
        got = {u for _, u, _, _ in replies(api) if u is not None}
        if want <= got:
            break
        if len(got) != seen:
            last, seen = time.monotonic(), len(got)
        time.sleep(0.2)
    time.sleep(2.0)


# -- one run -----------------------------------------------------------------------------------------------


@dataclass
class Ctx:
    args: argparse.Namespace
    models: Path
    names: list[str]
    work: Path
    pg: object
    procs: Procs


def run(ctx: Ctx, kind: str) -> dict:
    """kind: baseline | replicas | kill. Starts its processes, drives the load, stops them, counts."""
    a = ctx.args
    n = 1 if kind == "baseline" else a.replicas
    work = ctx.work / kind
    work.mkdir()
    url = ctx.pg.create_database(kind)
    limiter = not a.no_limit
    load = arrivals(a.rate, a.duration, a.chats, ctx.names, a.seed, a.inline)
    posts = [p for p, _ in load]
    names: list[str] = []
    with FakeBotAPI(flood_limits=limiter, overall_rate=OVERALL, chat_rate=1) as api:
        ports = [free_port() for _ in range(n)]
        tokens = [f"1000:bench-{kind}-{i + 1}" for i in range(n)]
        by_token = {t: f"replica {i + 1}" if kind != "baseline" else "the process" for i, t in enumerate(tokens)}
        by_addr = {f"127.0.0.1:{p}": by_token[t] for p, t in zip(ports, tokens)}
        rate = OVERALL if kind == "baseline" else (OVERALL - a.scheduler_rate) / n
        envs = {}
        for i in range(n):
            name = f"{kind}-{'bot' if kind == 'baseline' else f'replica{i + 1}'}"
            envs[name] = bot_env(api, tokens[i], ctx.models, work / name, ports[i], url, rate,
                                 delivery=kind == "baseline", limiter=limiter,
                                 workers=a.workers if kind != "baseline" or a.baseline_workers is None else a.baseline_workers)
            ctx.procs.start(name, [sys.executable, "-m", "bot"], envs[name])
            names.append(name)
        if kind != "baseline":
            sched_port = free_port()
            ctx.procs.start(f"{kind}-scheduler", [sys.executable, "-m", "bot"],
                            bot_env(api, f"1000:bench-{kind}-scheduler", ctx.models, work / "scheduler", sched_port,
                                    url, a.scheduler_rate, delivery=True, workers=a.workers, limiter=limiter))
            names.append(f"{kind}-scheduler")
            ports_all = ports + [sched_port]
            prefix = work / "nginx"
            prefix.mkdir()
            os.chmod(work, 0o755)
            os.chmod(prefix, 0o755)  # nginx's worker runs as nobody when the bench runs as root
            listen = free_port()
            (prefix / "nginx.conf").write_text(nginx_conf(prefix, listen, ports))
            ctx.procs.start(f"{kind}-nginx", [a.nginx, "-p", str(prefix), "-c", str(prefix / "nginx.conf")])
            names.append(f"{kind}-nginx")
            target = f"http://127.0.0.1:{listen}/telegram"
        else:
            ports_all = ports
            target = f"http://127.0.0.1:{ports[0]}/telegram"
        t_start = time.monotonic()
        for name, port in zip(names, ports_all):
            wait_port(port, ctx.procs.procs[name], a.start_timeout, name, ctx.procs, name)
        if kind != "baseline":
            wait_port(listen, ctx.procs.procs[f"{kind}-nginx"], 30, "nginx", ctx.procs, f"{kind}-nginx")
        print(f"  {kind}: {len(names)} processes up in {time.monotonic() - t_start:.1f} s; posting {len(posts)} "
              f"updates from {len({p.chat for p in posts})} chats at {a.rate:g}/s for {a.duration:g} s to {target}",
              flush=True)
        cpu0 = {nm: cpu_seconds(ctx.procs.procs[nm].pid) for nm in names}
        killed: dict = {"t": None, "restart_t": None, "up_t": None}

        def tick(elapsed: float) -> None:
            """The kill run's events: SIGKILL replica 1; start it again after --restart-after s (same port, as an
            orchestrator replaces a container); note when it listens again."""
            if kind != "kill":
                return
            if killed["t"] is None and elapsed >= a.kill_at * a.duration:
                ctx.procs.procs[f"{kind}-replica1"].kill()
                killed["t"], killed["after"] = time.monotonic(), elapsed
                print(f"    {elapsed:5.0f} s: replica 1 killed (SIGKILL)", flush=True)
            elif (killed["t"] is not None and a.restart_after > 0 and killed["restart_t"] is None
                  and elapsed >= killed["after"] + a.restart_after):
                ctx.procs.start(f"{kind}-replica1-again", [sys.executable, "-m", "bot"], envs[f"{kind}-replica1"])
                names.append(f"{kind}-replica1-again")
                killed["restart_t"] = time.monotonic()
                print(f"    {elapsed:5.0f} s: replica 1 started again", flush=True)
            elif killed["restart_t"] is not None and killed["up_t"] is None:
                try:
                    with socket.create_connection(("127.0.0.1", ports[0]), 0.05):
                        killed["up_t"], killed["up_after"] = time.monotonic(), elapsed
                        print(f"    {elapsed:5.0f} s: replica 1 listens again", flush=True)
                except OSError:
                    pass

        load_t0 = time.monotonic()
        asyncio.run(drive(target, load, a.progress, tick))
        settle(api, posts, a.quiet, a.duration + 120)
        cpu = {nm: cpu_seconds(ctx.procs.procs[nm].pid) - cpu0.get(nm, 0.0) for nm in names}
        out = replies(api)
        flood = api.flood_429s
        for nm in names:
            if ctx.procs.procs[nm].poll() is None:
                ctx.procs.stop(nm, signal.SIGQUIT if nm.endswith("nginx") else signal.SIGTERM)
    routed = parse_access_log((work / "nginx" / "access.log").read_text().splitlines()) if kind != "baseline" else []
    r = count(kind, n, posts, out, routed, by_token, by_addr, flood, cpu, load_t0, killed)
    r["log_problems"] = log_problems({nm.split("-", 1)[1]: ctx.procs.logs[nm] for nm in names if not nm.endswith("nginx")})
    return r


PROBLEM = re.compile(r" (ERROR|CRITICAL|WARNING) |^Traceback")


def log_problems(logs: dict[str, Path]) -> dict[str, int]:
    """Process -> its log lines at WARNING or above, and tracebacks (the schema migrated by three processes
    at once, a database they could not reach, ... would show here); processes with none are left out."""
    out = {}
    for name, path in logs.items():
        try:
            n = sum(1 for line in path.read_text(errors="replace").splitlines() if PROBLEM.search(line))
        except OSError:
            continue
        if n:
            out[name] = n
    return out


def count(kind, n, posts, out, routed, by_token, by_addr, flood, cpu, load_t0, killed) -> dict:
    post_of = {p.update: p for p in posts}
    answers: dict[int, list] = defaultdict(list)
    others = 0
    for chat, uid, token, t in out:
        if uid in post_of and (post_of[uid].chat == chat or (chat is None and post_of[uid].inline)):
            answers[uid].append((token, t))
        else:
            others += 1  # a notice (rate limit, error) or a daily proverb: not an answer to a posted update
    accepted = [p for p in posts if p.accepted]
    once = [p for p in accepted if len(answers.get(p.update, ())) == 1]
    lat = [answers[p.update][0][1] - p.sent for p in once]
    times = sorted(t for p in once for _, t in answers[p.update])
    span = (times[-1] - load_t0) if times else float("nan")
    answered_by = replicas_per_chat((p.chat, by_token.get(answers[p.update][0][0], "?")) for p in once)
    r = {
        "kind": kind, "processes": n, "posted": len(posts), "accepted": len(accepted),
        "retried_by_client": sum(len(p.statuses) > 1 for p in posts),
        "never_accepted": len(posts) - len(accepted),
        "answered_once": len(once), "duplicates": sum(len(answers.get(p.update, ())) > 1 for p in accepted),
        "unanswered": sum(p.update not in answers for p in accepted), "other_replies": others,
        "inline_answered": f"{sum(p.inline for p in once)}/{sum(p.inline for p in posts)}",
        "replies_per_s": len(once) / span if span else float("nan"),
        "p50_ms": percentile(lat, 50) * 1000, "p95_ms": percentile(lat, 95) * 1000,
        "p99_ms": percentile(lat, 99) * 1000, "max_ms": max(lat, default=float("nan")) * 1000,
        "flood_429s": flood,
        "cpu_s": {k.split("-", 1)[1]: round(v, 1) for k, v in cpu.items()},
        "answered_per_replica": dict(sorted(Counter(by_token.get(answers[p.update][0][0], "?") for p in once).items())),
        "chats_answered_by_several": split_chats(answered_by),
    }
    r["cpu_ms_per_reply"] = sum(cpu.values()) / len(once) * 1000 if once else float("nan")
    if routed:
        final = {x.update: by_addr.get(x.upstreams[-1], x.upstreams[-1]) for x in routed if x.status == 200 and x.upstreams}
        r["got_per_replica"] = dict(sorted(Counter(final.values()).items()))
        r["empty_chat_key"] = sum(1 for x in routed if not x.key)
        r["key_not_chat"] = sum(1 for x in routed if x.update in post_of and x.key and x.key != str(post_of[x.update].chat))
        r["nginx_moved_on"] = sum(1 for x in routed if len(x.upstreams) > 1)
        r["nginx_non_200"] = dict(Counter(x.status for x in routed if x.status != 200))
        per_chat = replicas_per_chat((post_of[u].chat, rep) for u, rep in final.items() if u in post_of)
        r["chats"] = len(per_chat)
        r["chats_routed_to_several"] = split_chats(per_chat)
        if killed.get("t") is not None:
            r.update(kill_figures(posts, post_of, answers, final, by_token, killed))
    return r


def kill_figures(posts, post_of, answers, final, by_token, killed) -> dict:
    """What the SIGKILL of replica 1 did: lost updates, where its chats went while it was down, whether other
    chats moved, and whether its chats came back once it listened again."""
    t, up = killed["t"], killed.get("up_t") or float("inf")
    dead = "replica 1"

    def routed(lo: float, hi: float) -> dict[int, set[str]]:
        # posts that took one try only: one on its way to the replica as it died got 502 and was posted again
        # (seconds later, to another replica), so it says nothing about where its chat was routed before
        return replicas_per_chat((p.chat, final[p.update]) for p in posts
                                 if p.update in final and lo <= p.sent < hi and len(p.statuses) == 1)

    before, down, back = routed(0.0, t), routed(t + 0.5, up), routed(up, float("inf"))
    dead_chats = {c for c, r in before.items() if r == {dead}}
    lost = [p for p in posts if p.accepted and p.update not in answers]
    out = {
        "killed_after_s": round(killed["after"], 1),
        "lost_accepted_by_dead": sum(1 for p in lost if final.get(p.update) == dead),
        "dead_chats_while_down": sum(1 for c in down if c in dead_chats),
        "dead_chats_moved_to": dict(Counter(next(iter(r)) for c, r in down.items() if c in dead_chats and len(r) == 1)),
        "dead_still_routed_while_down": sum(1 for r in down.values() if dead in r),
        "other_chats_that_moved": sum(1 for phase in (down, back) for c, r in phase.items()
                                      if c in before and before[c] != {dead} and r != before[c]),
    }
    if killed.get("up_t") is not None:
        back_updates = [(p, final[p.update]) for p in posts if p.update in final and p.sent >= up and p.chat in dead_chats]
        first_back = min((p.sent for p, r in back_updates if r == dead), default=None)
        out.update({
            "listened_again_after_s": round(killed["up_after"], 1),
            "dead_chats_updates_after_restart": dict(Counter(r for _, r in back_updates)),
            "first_back_on_it_s": round(first_back - up, 1) if first_back is not None else None,
        })
    return out


# -- report ------------------------------------------------------------------------------------------------


def fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return "—" if v != v else f"{v:,.1f}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {x}" for k, x in v.items()) or "—"
    return str(v)


ROWS = [
    ("updates posted / accepted (200)", lambda r: f"{r['posted']} / {r['accepted']}"),
    ("posted again by the client (not 200 at first)", "retried_by_client"),
    ("answered exactly once / duplicates / unanswered", lambda r: f"{r['answered_once']} / {r['duplicates']} / {r['unanswered']}"),
    ("of them inline queries, answered / posted", "inline_answered"),
    ("other replies (notices)", "other_replies"),
    ("replies/s", "replies_per_s"),
    ("latency p50 / p95 / p99 (ms)", lambda r: f"{r['p50_ms']:,.0f} / {r['p95_ms']:,.0f} / {r['p99_ms']:,.0f}"),
    ("429s from the fake", "flood_429s"),
    ("updates per replica (nginx log)", lambda r: fmt(r.get("got_per_replica", "—"))),
    ("answers per replica (sender)", lambda r: fmt(r["answered_per_replica"])),
    ("chats routed to >1 replica (nginx log) / answered by >1", lambda r: f"{r.get('chats_routed_to_several', '—')} / {r['chats_answered_by_several']}"),
    ("empty $chat keys / keys that are not the chat", lambda r: f"{r.get('empty_chat_key', '—')} / {r.get('key_not_chat', '—')}"),
    ("warnings, errors, tracebacks in the bots' logs", lambda r: fmt(r["log_problems"]) if r["log_problems"] else "0"),
    ("CPU s (per process)", lambda r: fmt(r["cpu_s"])),
    ("CPU ms per reply, all processes", "cpu_ms_per_reply"),
]


def cell(r: dict, how) -> str:
    return how(r) if callable(how) else fmt(r[how])


def report(results: dict[str, dict], n: int) -> None:
    cols = [k for k in ("baseline", "replicas") if k in results]
    heads = {"baseline": "1 process, no proxy", "replicas": f"{n} replicas + scheduler behind nginx"}
    print()
    if cols:
        table(results, cols, heads)
    kill_report(results, n)


def table(results: dict[str, dict], cols: list[str], heads: dict[str, str]) -> None:
    print("| | " + " | ".join(heads[c] for c in cols) + (" | replicas ÷ baseline |" if len(cols) == 2 else " |"))
    print("|---|" + "---:|" * (len(cols) + (len(cols) == 2)))
    for label, how in ROWS:
        row = [cell(results[c], how) for c in cols]
        ratio = ""
        if len(cols) == 2:
            b, r = results["baseline"], results["replicas"]
            if label == "replies/s":
                ratio = f"{r['replies_per_s'] / b['replies_per_s']:.2f}×"
            elif label.startswith("latency"):
                ratio = " / ".join(f"{r[k] / b[k]:.2f}×" for k in ("p50_ms", "p95_ms", "p99_ms"))
            elif label.startswith("CPU ms"):
                ratio = f"{r['cpu_ms_per_reply'] / b['cpu_ms_per_reply']:.2f}×"
        print(f"| {label} | " + " | ".join(row) + (f" | {ratio} |" if len(cols) == 2 else " |"))


def kill_report(results: dict[str, dict], n: int) -> None:
    if "kill" in results:
        k = results["kill"]
        print(f"\nkill run ({n} replicas, replica 1 killed with SIGKILL after {k.get('killed_after_s', '?')} s):")
        lines = [
            ("updates posted / accepted (200) / never accepted", f"{k['posted']} / {k['accepted']} / {k['never_accepted']}"),
            ("posted again by the client (not 200 at first)", k["retried_by_client"]),
            ("nginx moved on to another replica (proxy_next_upstream)", k.get("nginx_moved_on", "—")),
            ("nginx answers other than 200", fmt(k.get("nginx_non_200", {}))),
            ("answered exactly once / duplicates / unanswered", f"{k['answered_once']} / {k['duplicates']} / {k['unanswered']}"),
            ("lost: accepted by the killed replica, never answered", k.get("lost_accepted_by_dead", "—")),
            ("its chats asking while it was down / went to", f"{k.get('dead_chats_while_down', '—')} / {fmt(k.get('dead_chats_moved_to', {}))}"),
            ("its chats still routed to it while it was down", k.get("dead_still_routed_while_down", "—")),
            ("other replicas' chats that moved (ever)", k.get("other_chats_that_moved", "—")),
            ("started again; listening after (s)", k.get("listened_again_after_s", "not restarted")),
            ("its chats' updates after that went to", fmt(k.get("dead_chats_updates_after_restart", "—"))),
            ("first of them back on replica 1, s after it listened", fmt(k.get("first_back_on_it_s"))),
            ("updates per replica (nginx log)", fmt(k.get("got_per_replica", {}))),
            ("latency p50 / p95 / p99 (ms)", f"{k['p50_ms']:,.0f} / {k['p95_ms']:,.0f} / {k['p99_ms']:,.0f}"),
            ("429s from the fake", k["flood_429s"]),
            ("warnings, errors, tracebacks in the bots' logs", fmt(k["log_problems"]) if k["log_problems"] else "0"),
        ]
        for label, v in lines:
            print(f"  {label:58s} {v}")


def ok(results: dict[str, dict]) -> list[str]:
    """What went wrong, as lines (empty: all good)."""
    bad = []
    for kind, r in results.items():
        if kind != "kill":
            if r["unanswered"] or r["never_accepted"] or r["duplicates"]:
                bad.append(f"{kind}: {r['unanswered']} unanswered, {r['never_accepted']} never accepted, "
                           f"{r['duplicates']} answered twice")
            if r.get("chats_routed_to_several") or r["chats_answered_by_several"]:
                bad.append(f"{kind}: chats reached more than one replica")
            if r["log_problems"]:
                bad.append(f"{kind}: warnings or errors in the logs of {fmt(r['log_problems'])} (--keep keeps them)")
            if r.get("empty_chat_key") or r.get("key_not_chat"):
                bad.append(f"{kind}: nginx's $chat was empty or not the chat ({r.get('empty_chat_key')} / {r.get('key_not_chat')})")
            if kind == "replicas" and len(r.get("got_per_replica", {})) < 2:
                bad.append(f"{kind}: every update went to one replica: {r.get('got_per_replica')}")
        else:
            if r.get("other_chats_that_moved"):
                bad.append("kill: chats of the surviving replicas moved")
            if r.get("dead_still_routed_while_down"):
                bad.append("kill: updates still reached the killed replica")
    return bad


def interrupt(signum, frame) -> None:
    """SIGTERM: a SIGINT to itself, which asyncio.run turns into a clean cancel and elsewhere is Ctrl-C."""
    os.kill(os.getpid(), signal.SIGINT)


def start_postgres(holder: list):
    """A PostgresServer, put in `holder` before it starts, so an interrupt during initdb still stops it."""
    from tests.bot.postgres import PostgresServer

    class Cluster(PostgresServer):
        def __init__(self):
            holder.append(self)
            super().__init__()

        def close(self) -> None:
            if hasattr(self, "root"):
                super().close()

    return Cluster()


def build_models(work: Path, units: int) -> Path:
    from bench.bot_load import build_tiny_models

    return build_tiny_models(work / "models", units)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", default="baseline,replicas,kill", help="comma-separated: baseline, replicas, kill")
    p.add_argument("--replicas", type=int, default=2, help="webhook replicas behind nginx (default 2)")
    p.add_argument("--rate", type=float, default=15.0, help="updates posted per second (default 15)")
    p.add_argument("--duration", type=float, default=40.0, help="seconds of load per run (default 40)")
    p.add_argument("--chats", type=int, default=300, help="chats the updates come from (default 300)")
    p.add_argument("--inline", type=float, default=0.2,
                   help="share of the updates that are inline queries from the chat's user (default 0.2)")
    p.add_argument("--seed", type=int, default=1, help="seed of the arrivals, chats and cultures (every run the same)")
    p.add_argument("--scheduler-rate", type=float, default=6.0,
                   help="OVERALL_RATE of the scheduler S; each replica gets (30 - S) / N (default 6)")
    p.add_argument("--workers", type=int, default=0,
                   help="GENERATION_PROCESSES of every bot process (default 0: a thread, to spare 2 cores)")
    p.add_argument("--baseline-workers", type=int, default=None,
                   help="GENERATION_PROCESSES of the baseline process (default: --workers, as one replica)")
    p.add_argument("--no-limit", action="store_true", help="outgoing limiter off in the bots, no 429s from the fake")
    p.add_argument("--kill-at", type=float, default=0.4, help="kill run: fraction of --duration at which replica 1 dies")
    p.add_argument("--restart-after", type=float, default=6.0,
                   help="kill run: s after the kill at which replica 1 starts again (0: never)")
    p.add_argument("--models-dir", type=Path, default=ROOT / "models")
    p.add_argument("--tiny", action="store_true", help="build two tiny bundles (alpha, beta) and use them")
    p.add_argument("--tiny-units", type=int, default=16)
    p.add_argument("--nginx", default=shutil.which("nginx") or "/usr/sbin/nginx", help="the nginx binary")
    p.add_argument("--quiet", type=float, default=20.0, help="give up waiting for replies after this many s without one")
    p.add_argument("--start-timeout", type=float, default=180.0, help="s for a bot process to listen")
    p.add_argument("--progress", type=float, default=10.0, help="s between progress lines")
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, nginx config and access log)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON too")
    a = p.parse_args(argv)
    kinds = [k.strip() for k in a.runs.split(",") if k.strip()]
    unknown = set(kinds) - {"baseline", "replicas", "kill"}
    if unknown:
        p.error(f"unknown run(s): {', '.join(sorted(unknown))}; use baseline, replicas, kill")
    if a.replicas < 1 or (a.replicas < 2 and "kill" in kinds):
        p.error("--replicas must be at least 1 (2 for the kill run)")
    if not (0 < a.scheduler_rate < OVERALL):
        p.error(f"--scheduler-rate must be between 0 and {OVERALL}")
    if any(k != "baseline" for k in kinds) and not (Path(a.nginx).is_file() and os.access(a.nginx, os.X_OK)):
        p.error(f"no nginx at {a.nginx}; install it (apt-get install nginx-light) or pass --nginx PATH")
    from tests.bot import postgres as pgmod

    why = pgmod.unavailable()
    if why:
        print(f"error: {why}", file=sys.stderr)
        return 2

    # SIGINT (also where a shell started the bench in the background, which ignores it) and SIGTERM end it like
    # Ctrl-C: through the finally below, which stops everything it started
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, interrupt)
    work = Path(tempfile.mkdtemp(prefix="bench-replicas-"))
    procs = Procs(work)
    servers: list = []
    results: dict[str, dict] = {}
    try:
        models = build_models(work, a.tiny_units) if a.tiny else a.models_dir
        names = sorted(json.loads((d / "manifest.json").read_text(encoding="utf-8")).get("name", d.name)
                       for d in find_bundles(Path(models)))
        if not names:
            print(f"error: no bundles in {models}; use --tiny or --models-dir", file=sys.stderr)
            return 2
        print(f"bundles: {', '.join(names)}; load average {os.getloadavg()[0]:.2f}; starting PostgreSQL", flush=True)
        ctx = Ctx(a, Path(models).resolve(), names, work, start_postgres(servers), procs)
        for kind in kinds:
            results[kind] = run(ctx, kind)
    except KeyboardInterrupt:
        print("\ninterrupted: stopping every process started", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        procs.close()
        for server in servers:
            server.close()
        if a.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nload: {a.rate:g} updates/s for {a.duration:g} s from {a.chats} chats ({a.inline:.0%} inline queries), "
          f"seed {a.seed}; GENERATION_PROCESSES={a.workers}"
          f"{'' if a.baseline_workers is None else f' ({a.baseline_workers} in the baseline)'}; limiter "
          f"{'off' if a.no_limit else 'on'}; replicas OVERALL_RATE={(OVERALL - a.scheduler_rate) / a.replicas:g}, "
          f"scheduler {a.scheduler_rate:g}; load average after: {os.getloadavg()[0]:.2f}")
    report(results, a.replicas)
    if a.json:
        print(json.dumps(results, default=str))
    bad = ok(results)
    for line in bad:
        print(f"FAILED: {line}")
    if not bad:
        print("\nOK: every update answered once; every chat's updates reached one replica (while all were up)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
