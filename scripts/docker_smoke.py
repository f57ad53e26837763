"""The bot image on a real Docker engine, against the tests' fake Bot API (run by scripts/docker-smoke.sh).

    python scripts/docker_smoke.py IMAGE

Starts tests/bot/fakeapi.py's server on 127.0.0.1 and runs IMAGE as a release would run it (read-only root,
a tmpfs on /tmp, a named volume on /data, no --init, the image's own HEALTHCHECK and user), with host
networking so that the container reaches the fake server. Shows, and fails (exit 1) with one line naming the
step when it does not hold:

  1. the bot answers a shipped bundle's command and a press of 👍, and takes a /subscribe;
  2. it runs as uid 10001 (the process as the host's kernel sees it, not just the image's USER);
  3. the image's HEALTHCHECK turns `healthy` (its own 30 s interval: nothing is shortened);
  4. `docker stop` during a burst of slow replies: every update the bot accepted is answered, it exits 0,
     and within the grace period;
  5. `docker rm`, then a new container on the same volume: the subscription and the vote are still there.

Containers and the volume it makes are named proverbs-smoke-*; they are removed at the start and at the end.
Which bundle it asks does not matter (the first folder in models/ with a manifest, or $SMOKE_BUNDLE); no
proverb's text is checked, only that one came with its buttons.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

try:
    from tests.bot.fakeapi import FakeBotAPI
except ModuleNotFoundError as e:  # aiohttp: a test dependency
    sys.exit(f"docker_smoke: {e.name} is missing: run it with the project's test venv (./scripts/test.sh makes .venv)")

TOKEN = "123456:docker-smoke-token"
VOLUME = "proverbs-smoke-data"
NAMES = ("proverbs-smoke-1", "proverbs-smoke-2")
GRACE = 30  # docker stop -t: compose.yaml's stop_grace_period
BURST = 16  # commands in flight when docker stop comes
DELAY = 2.0  # s the fake API takes over each of their sendMessage: docker stop has to wait for them
T0 = time.monotonic()


def say(msg: str) -> None:
    print(f"[{time.monotonic() - T0:6.1f} s] {msg}", flush=True)


def die(msg: str) -> None:
    print(f"docker-smoke: FAILED: {msg}", file=sys.stderr, flush=True)
    for name in NAMES:
        logs = subprocess.run(["docker", "logs", "--tail", "15", name], capture_output=True, text=True)
        if logs.returncode == 0:
            print(f"--- last lines of docker logs {name}:\n{logs.stdout}{logs.stderr}", file=sys.stderr)
    cleanup()
    sys.exit(1)


def docker(*args: str, check: bool = True, timeout: float = 120) -> str:
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        die(f"docker {' '.join(args)}: {(proc.stderr or proc.stdout).strip()}")
    return proc.stdout.strip()


def cleanup() -> None:
    for name in NAMES:
        subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    subprocess.run(["docker", "volume", "rm", "-f", VOLUME], capture_output=True)


def start(image: str, name: str, api: FakeBotAPI) -> float:
    """`docker run -d` the bot as a release would; -> when the container started (monotonic)."""
    docker("run", "-d", "--name", name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
           "-v", f"{VOLUME}:/data", "-e", f"BOT_TOKEN={TOKEN}", "-e", f"BOT_API_BASE_URL={api.base_url}",
           "-e", "POLL_TIMEOUT=2", image)
    return time.monotonic()  # (docker run -d returns once the container runs: ~10 s with the vfs storage driver)


def ask(api: FakeBotAPI, chat: int, text: str, timeout: float = 60) -> dict:
    """Send `text` from `chat`; -> the bot's next message to it."""
    before = len(api.sent(chat))
    api.send_text(chat, text, lang="en")
    api.wait_for(lambda: len(api.sent(chat)) > before, timeout, f"the answer to {text!r} in chat {chat}")
    return [m for m in list(api.messages) if m["chat"]["id"] == chat][before]


def uids(name: str) -> list[tuple[int, str, str]]:
    """(pid, real/effective uids, command) of the container's processes, read from the host's /proc."""
    pid = int(docker("inspect", "-f", "{{.State.Pid}}", name))
    out = []
    for p in [pid, *descendants(pid)]:
        try:
            status = Path(f"/proc/{p}/status").read_text()
            cmd = Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        uid = next(line.split()[1:3] for line in status.splitlines() if line.startswith("Uid:"))
        out.append((p, "/".join(uid), cmd))
    return out


def descendants(pid: int) -> list[int]:
    from tests.bot.procs import descendants as below
    return below(pid)


def health(name: str) -> str:
    return docker("inspect", "-f", "{{if .State.Health}}{{.State.Health.Status}}{{end}}", name, check=False)


def bundle() -> str:
    if os.environ.get("SMOKE_BUNDLE"):
        return os.environ["SMOKE_BUNDLE"]
    names = sorted(p.parent.name for p in (ROOT / "models").glob("*/manifest.json") if not p.parent.name.startswith("."))
    if not names:
        die(f"no bundle in {ROOT / 'models'} (a folder with manifest.json)")
    return "sufi" if "sufi" in names else names[0]


def main(image: str) -> None:
    name = bundle()
    cleanup()
    docker("volume", "create", VOLUME)
    with FakeBotAPI(token=TOKEN) as api:
        say(f"fake Bot API on {api.base_url}; image {image}; volume {VOLUME}; asking /{name}")

        # 1. it answers
        t_run = start(image, NAMES[0], api)
        say(f"docker run -d --network host --read-only --tmpfs /tmp -v {VOLUME}:/data {image}  ({NAMES[0]})")
        reply = ask(api, 7001, f"/{name}", timeout=120)
        buttons = [b.get("text") for row in (reply.get("reply_markup") or {}).get("inline_keyboard", []) for b in row]
        if not reply["text"].strip() or "👍" not in buttons:
            die(f"/{name} got no proverb with its buttons: {reply}")
        first = reply["text"].strip().splitlines()[0]
        say(f"/{name} answered {time.monotonic() - t_run:.1f} s after the container started: {first[:70]}{'…' if len(first) > 70 else ''}")
        say(f"  buttons: {' '.join(buttons)}")
        up = next(b["callback_data"] for row in reply["reply_markup"]["inline_keyboard"] for b in row if b.get("text") == "👍")
        toast = api.toast(api.press(reply, up, lang="en"), timeout=60)
        say(f"👍 pressed: answered {toast!r}")
        sub = ask(api, 7001, f"/subscribe {name} 07:30")["text"]
        say(f"/subscribe {name} 07:30: {sub}")
        listed = ask(api, 7001, "/subscriptions")["text"]
        if f"/{name}" not in listed or "07:30" not in listed:
            die(f"/subscriptions does not list /{name} at 07:30: {listed!r}")

        # 2. not root
        procs = uids(NAMES[0])
        for pid, uid, cmd in procs:
            say(f"  host pid {pid}: uid {uid} (real/effective)  {cmd[:60]}")
        if not procs or any(uid != "10001/10001" for _, uid, _ in procs):
            die(f"a process of the container is not uid 10001: {procs}")
        say(f"runs as uid 10001: all {len(procs)} processes (the bot and its generation workers)")

        # 3. the image's HEALTHCHECK
        deadline = t_run + 150  # start period 90 s + interval 30 s + slack
        while (state := health(NAMES[0])) != "healthy":
            if state == "unhealthy" or time.monotonic() > deadline:
                log = docker("inspect", "-f", "{{json .State.Health}}", NAMES[0], check=False)
                die(f"HEALTHCHECK is {state!r} {time.monotonic() - t_run:.0f} s after the container started: {log}")
            time.sleep(1)
        say(f"HEALTHCHECK healthy {time.monotonic() - t_run:.1f} s after the container started (image's interval: 30 s)")

        # 4. docker stop with replies in flight
        api.fail("sendMessage", status=0, delay=DELAY, times=BURST)  # each reply takes DELAY s: many in flight
        sent_before = len(api.messages)
        chats = {api.send_text(8000 + i, f"/{name}", lang="en"): 8000 + i for i in range(BURST)}
        api.wait_for(lambda: len(api.messages) >= sent_before + 2, 60, "the first replies of the burst")
        at_stop = len(api.messages) - sent_before
        t = time.monotonic()
        docker("stop", "-t", str(GRACE), NAMES[0], timeout=GRACE + 30)
        took = time.monotonic() - t
        code = docker("inspect", "-f", "{{.State.ExitCode}}", NAMES[0])
        answered = {m["chat"]["id"] for m in list(api.messages)[sent_before:]}
        accepted = [u for u in chats if u < api.confirmed]
        left = [c for c in chats.values() if c not in answered]  # for the next container
        missing = sorted(chats[u] for u in accepted if chats[u] not in answered)
        say(f"docker stop -t {GRACE} with {BURST} commands sent, {at_stop} answered (each reply takes {DELAY:.0f} s): "
            f"took {took:.1f} s, exit code {code}; the bot had accepted {len(accepted)}, answered {len(answered)}; "
            f"left for the next start: {len(chats) - len(accepted)}")
        if missing:
            die(f"docker stop: accepted but never answered: chats {missing}")
        if code != "0":
            die(f"docker stop: exit code {code} (0 expected: SIGTERM is a clean stop; 137 = killed after the grace period)")
        if took >= GRACE:
            die(f"docker stop took {took:.1f} s: the grace period ({GRACE} s) ran out")
        twice = [c for c in chats.values() if len(api.sent(c)) > 1]
        if twice:
            die(f"docker stop: answered twice: chats {twice}")

        # 5. a new container on the same volume
        docker("rm", NAMES[0])
        say(f"docker rm {NAMES[0]}; docker run ... ({NAMES[1]}) on the same volume")
        t_run = start(image, NAMES[1], api)
        listed = ask(api, 7001, "/subscriptions", timeout=120)["text"]
        if f"/{name}" not in listed or "07:30" not in listed:
            die(f"the subscription did not survive docker rm: /subscriptions says {listed!r}")
        say(f"/subscriptions after docker rm: {' '.join(listed.split())[:120]}")
        stats = json.loads(docker("exec", NAMES[1], "python", "-m", "bot", "stats", "--json"))
        likes = sum(b["likes"] for b in stats["bundles"] if b["bundle"] == name)
        if likes < 1:
            die(f"the 👍 did not survive docker rm: bot stats --json says {stats['bundles']}")
        say(f"bot stats after docker rm: /{name} {likes} 👍")
        api.wait_for(lambda: all(chats[u] in {m["chat"]["id"] for m in api.messages} for u in chats), 60,
                     "the new container to answer what the old one left")
        twice = [c for c in chats.values() if len(api.sent(c)) > 1]
        if twice:
            die(f"the new container answered again what the old one had answered: chats {twice}")
        say(f"the {len(left)} update(s) the stopped container left were answered by the new one, none twice")
        docker("stop", "-t", str(GRACE), NAMES[1], timeout=GRACE + 30)
    cleanup()
    say("docker-smoke: bot image OK")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[2].strip())
    main(sys.argv[1])
