"""A throwaway PostgreSQL server for the tests: initdb + pg_ctl in a temporary folder, on a free loopback port.

Debian keeps the server programs in /usr/lib/postgresql/VERSION/bin (not on PATH); initdb refuses to run
as root, so as root the server runs as the `postgres` user (which Debian's package creates)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

TIMEOUT = 120  # seconds for initdb / a start / a stop on a loaded 2-core machine


def find_bin() -> Path | None:
    """The folder holding initdb and pg_ctl (the newest Debian version, else PATH), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(Path(p).parts[3]) if Path(p).parts[3].isdigit() else 0)
    if found:
        return Path(found[-1]).parent
    on_path = shutil.which("pg_ctl")
    return Path(on_path).resolve().parent if on_path and shutil.which("initdb") else None


def unavailable() -> str | None:
    """Why no server can be started here, or None."""
    if find_bin() is None:
        return ("PostgreSQL is not installed (no initdb/pg_ctl in /usr/lib/postgresql/*/bin or on PATH); "
                "`apt-get install postgresql` (.ci/run does) to run these tests against it too")
    if os.geteuid() == 0:
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            return "running as root, and there is no `postgres` user to run the server as (initdb refuses root)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """One cluster in its own temporary folder; `url(name)` after `create_database(name)`."""

    def __init__(self):
        self.bin = find_bin()
        self.root = Path(tempfile.mkdtemp(prefix="proverbs-pg-"))  # not pytest's tmp: the postgres user must reach it
        self.data = self.root / "data"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync",
                  "--locale=C")
        self.start()

    def _run(self, program: str, *args: str) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / program), *args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT, cwd=self.root)
        if p.returncode != 0:
            log = self.root / "server.log"
            tail = log.read_text(errors="replace")[-1000:] if log.is_file() else ""
            raise RuntimeError(f"{program} failed ({p.returncode}): {(p.stderr + p.stdout).strip()[-1000:]}\n{tail}")
        return p

    def start(self) -> None:
        # fsync off: a test server need not survive a power cut, and syncing costs seconds on a busy disk
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w", "-t", str(TIMEOUT),
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -F", "start")

    def running(self) -> bool:
        cmd = [str(self.bin / "pg_ctl"), "-D", str(self.data), "status"]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, capture_output=True, timeout=TIMEOUT, cwd=self.root).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """fast: connections are cut (what a restart by an operator or a failover does to the bot)."""
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", str(TIMEOUT), "-m", mode, "stop")

    def create_database(self, name: str) -> str:
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    def url(self, name: str) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def close(self) -> None:
        try:
            self.stop("immediate")
        except (RuntimeError, subprocess.TimeoutExpired):
            pass  # not running
        shutil.rmtree(self.root, ignore_errors=True)
