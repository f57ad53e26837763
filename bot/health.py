"""The heartbeat file: the running bot rewrites it; `python -m bot health` says whether it is fresh."""

from __future__ import annotations

import os
import time
from pathlib import Path


def beat(path: Path) -> None:
    """Write the current time to `path` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(f"{time.time():.3f}\n", encoding="ascii")
    os.replace(tmp, path)


def age(path: Path) -> float | None:
    """Seconds since the last beat, or None when there is no heartbeat file."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


def check(path: Path | None, max_age: float) -> tuple[bool, str]:
    """(healthy, one line saying why)."""
    if path is None:
        return False, "HEARTBEAT_FILE is empty, so the bot keeps no heartbeat"
    a = age(path)
    if a is None:
        return False, f"no heartbeat file at {path} (is the bot running?)"
    if a > max_age:
        return False, f"stale heartbeat: {path} is {a:.0f} s old (limit {max_age:g} s); the bot is stuck or stopped"
    return True, f"ok: heartbeat {a:.1f} s old"
