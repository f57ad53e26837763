"""Start-up and memory: time until `python -m bot` is ready, and the RSS of the bot and of each worker.

    python bench/startup.py [--models-dir models] [--runs 3] [--processes N]

Runs the real `python -m bot` (a fresh interpreter, exactly as deployed, long polling) against the fake
Bot API (tests/bot/fakeapi.py, in this process) --runs times. "Ready" is the bot's first getUpdates call,
which it makes only after loading every bundle, starting its generation workers (each loads the bundles
too) and setting its command menu: the moment it can answer. Then it is asked once per culture, and
once answered, the RSS (resident memory, /proc/PID/status VmRSS; VmHWM is the peak) of the bot process and
of each worker is read. Then it is stopped and started once more on the same DATA_DIR, and that restart's
ready is timed too: every start but a bot's first finds its database made and up to date. Beside it, in the same run and taking turns with the bot's starts (the machine's
load then weighs on both alike), two baselines: a bare interpreter that imports only python-telegram-bot
(`import telegram.ext`: what any bot on this library pays, whatever it does), and one that imports the bot's
code (`import bot.app`); the ratios show what the bot's own modules, loading and starting cost on top.
Linux only (/proc).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.bot.fakeapi import FakeBotAPI  # noqa: E402

TOKEN = "1000:bench-token"


def status_kb(pid: int, field: str) -> int:
    """A kB field (VmRSS, VmHWM) of /proc/PID/status; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    """Direct children of `pid` (every thread's list), sorted."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out.update(int(c) for c in (task / "children").read_text().split())
        except OSError:
            pass
    return sorted(out)


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


BASELINES = {"telegram": "import telegram.ext", "bot": "import bot.app, bot.__main__"}


def baseline(imports: str) -> tuple[float, int, float]:
    """(seconds, peak RSS kB, CPU seconds) of a fresh interpreter that runs `imports` and exits."""
    code = (f"import resource, sys; {imports}; r = resource.getrusage(resource.RUSAGE_SELF); "
            "print(r.ru_maxrss, r.ru_utime + r.ru_stime)")
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    kb, cpu = out.stdout.split()[-2:]
    return time.perf_counter() - t0, int(kb), float(cpu)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def restart_ready(api: FakeBotAPI, env: dict, cwd: str, timeout: float) -> tuple[float, float]:
    """Start the bot again on the same DATA_DIR (its database made, up to date): (seconds, CPU seconds) to ready."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        polls = api.wait_for(lambda: [c for c in api.calls_of("getUpdates") if c.t > t0], timeout, "getUpdates after a restart")
        return polls[0].t - t0, cpu_s(proc.pid) + sum(cpu_s(c) for c in children(proc.pid))
    finally:
        stop(proc)


def one_run(models_dir: Path, processes: int | None, timeout: float) -> dict:
    with FakeBotAPI(token=TOKEN) as api, tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_TOKEN": TOKEN, "BOT_API_BASE_URL": api.base_url,
               "MODELS_DIR": str(models_dir), "DATA_DIR": tmp, "HEARTBEAT_FILE": "", "LOG_LEVEL": "WARNING",
               "USER_RATE_LIMIT": "0"}
        env.pop("GENERATION_PROCESSES", None)
        if processes is not None:
            env["GENERATION_PROCESSES"] = str(processes)
        t0 = time.monotonic()
        proc = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            polls = api.wait_for(lambda: api.calls_of("getUpdates"), timeout, "the first getUpdates")
            ready = polls[0].t - t0
            rss_ready = status_kb(proc.pid, "VmRSS")
            # CPU to ready, the bot and its workers: what start-up costs even on a machine busy with other work
            cpu_ready = cpu_s(proc.pid) + sum(cpu_s(c) for c in children(proc.pid))
            names = [p.name for p in sorted(models_dir.iterdir()) if (p / "manifest.json").is_file()]
            for i, name in enumerate(names):
                api.send_text(100 + i, f"/{name}")
            for i, _ in enumerate(names):
                api.wait_sent(100 + i, 1, timeout)
            workers = [c for c in children(proc.pid) if "multiprocessing" in cmdline(c) and "resource_tracker" not in cmdline(c)]
            measured = {"ready_s": ready, "ready_cpu_s": cpu_ready, "bot_rss_ready_mb": rss_ready / 1024, "bot_rss_mb": status_kb(proc.pid, "VmRSS") / 1024,
                    "bot_peak_mb": status_kb(proc.pid, "VmHWM") / 1024,
                    "workers_rss_mb": [status_kb(w, "VmRSS") / 1024 for w in workers],
                    "workers_peak_mb": [status_kb(w, "VmHWM") / 1024 for w in workers], "bundles": len(names)}
            stop(proc)
            measured["restart_s"], measured["restart_cpu_s"] = restart_ready(api, env, tmp, timeout)
            return measured
        except Exception:
            proc.kill()
            out = proc.communicate(timeout=10)[0]
            sys.stderr.write(out[-3000:])
            raise
        finally:
            stop(proc)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models-dir", type=Path, default=Path("models"))
    p.add_argument("--runs", type=int, default=3, help="start-ups to measure (the median is reported)")
    p.add_argument("--processes", type=int, default=None,
                   help="GENERATION_PROCESSES for the bot (default: unset, i.e. one per CPU)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness / a reply")
    args = p.parse_args(argv)
    if not Path("/proc/self/status").is_file():
        p.error("this bench reads /proc (Linux only)")
    models = args.models_dir.resolve()
    if not any((d / "manifest.json").is_file() for d in models.glob("*")) if models.is_dir() else True:
        p.error(f"no bundles in {models}")
    load0 = os.getloadavg()[0]
    bases: dict[str, list] = {name: [] for name in BASELINES}
    runs = []
    for _ in range(args.runs):  # in turns: a burst of load from elsewhere hits baselines and starts alike
        for name, imports in BASELINES.items():
            bases[name].append(baseline(imports))
        runs.append(one_run(models, args.processes, args.timeout))
    med = lambda xs: statistics.median(xs)  # noqa: E731
    t_s, t_kb, t_cpu = (med([b[i] for b in bases["telegram"]]) for i in range(3))
    b_s, b_kb, b_cpu = (med([b[i] for b in bases["bot"]]) for i in range(3))
    ready = med([r["ready_s"] for r in runs])
    ready_cpu = med([r["ready_cpu_s"] for r in runs])
    restart, restart_cpu = med([r["restart_s"] for r in runs]), med([r["restart_cpu_s"] for r in runs])
    bot_rss = med([r["bot_rss_mb"] for r in runs])
    bot_peak = med([r["bot_peak_mb"] for r in runs])
    workers = runs[len(runs) // 2]["workers_rss_mb"]
    wpeak = runs[len(runs) // 2]["workers_peak_mb"]
    print(f"models: {models} ({runs[0]['bundles']} bundles); GENERATION_PROCESSES "
          f"{args.processes if args.processes is not None else 'unset (one per CPU)'}; {len(workers)} worker(s); "
          f"{os.cpu_count()} CPUs, load average {load0:.1f} before, {os.getloadavg()[0]:.1f} after; median of {args.runs}")
    print("| what | time (s) | CPU (s) | RSS (MB) | peak RSS (MB) | ÷ python-telegram-bot's import (time, CPU, peak) |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| baseline: `python -c 'import telegram.ext'` | {t_s:.2f} | {t_cpu:.2f} | | {t_kb / 1024:.0f} | 1× |")
    print(f"| baseline: `python -c 'import bot.app'` | {b_s:.2f} | {b_cpu:.2f} | | {b_kb / 1024:.0f} | "
          f"{b_s / t_s:.1f}×, {b_cpu / t_cpu:.1f}×, {b_kb / t_kb:.1f}× |")
    print(f"| `python -m bot`: ready (first getUpdates); CPU of the bot and its workers | {ready:.2f} | "
          f"{ready_cpu:.2f} | {bot_rss:.0f} | {bot_peak:.0f} | {ready / t_s:.1f}×, {ready_cpu / t_cpu:.1f}×, "
          f"{bot_peak / (t_kb / 1024):.1f}× |")
    print(f"| `python -m bot` again on the same DATA_DIR (a restart: its database exists): ready; CPU | "
          f"{restart:.2f} | {restart_cpu:.2f} | | | {restart / t_s:.1f}×, {restart_cpu / t_cpu:.1f}× |")
    for i, (w, wp) in enumerate(zip(workers, wpeak)):
        print(f"| generation worker {i + 1} | | | {w:.0f} | {wp:.0f} | |")
    readies = ", ".join(f"{r['ready_s']:.2f}" for r in runs)
    restarts = ", ".join(f"{r['restart_s']:.2f}" for r in runs)
    rss = ", ".join(f"{r['bot_rss_mb']:.0f}" for r in runs)
    print(f"ready runs (s): {readies}; restarts: {restarts}; bot RSS after answering one proverb per culture: {rss} MB")
    print(f"targets: ready <= 1.5 s: {ready:.2f} s {'ok' if ready <= 1.5 else 'MISSED'} "
          f"(restart {restart:.2f} s {'ok' if restart <= 1.5 else 'MISSED'}); bot RSS <= 150 MB: "
          f"{bot_peak:.0f} MB peak {'ok' if bot_peak <= 150 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
