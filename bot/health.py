"""The heartbeat file: the running bot rewrites it; `python -m bot health` says whether it is fresh.

The file holds the time of the beat, then optionally one line of state: `failed: why` (the bot is
ending and will not recover: health fails at once) or `degraded: why` (it serves, with a part down:
health passes and says so).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Status:
    """How the running bot is: ending for good (`failure`), or serving with parts down (`degraded`)."""

    failure: str | None = None  # why the bot is ending for good (set once; the process exits non-zero)
    degraded: dict[str, str] = field(default_factory=dict)  # part ("subscriptions") -> why it is down
    # called after `degrade`/`recover` change the state line: the bot rewrites its heartbeat at once, so
    # `health` says so now, not at the next beat (up to HEARTBEAT_INTERVAL later)
    on_change: Callable[[], None] | None = None

    def degrade(self, part: str, why: str) -> None:
        """`part` is down (`why`); the bot serves on without it."""
        if self.degraded.get(part) != why:
            self.degraded[part] = why
            self._changed()

    def recover(self, part: str) -> None:
        """`part` works again."""
        if self.degraded.pop(part, None) is not None:
            self._changed()

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    @property
    def line(self) -> str | None:
        """The heartbeat's state line: `failed: …`, `degraded: …`, or None when all is well."""
        if self.failure:
            return f"failed: {self.failure}"
        if self.degraded:
            return "degraded: " + "; ".join(f"{k} unavailable ({v})" for k, v in sorted(self.degraded.items()))
        return None


def beat(path: Path, state: str | None = None) -> None:
    """Write the current time (and `state`) to `path` atomically (a reader never sees half a file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")  # a state change may beat from another thread
    body = f"{time.time():.3f}\n" + (" ".join(state.split()) + "\n" if state else "")
    tmp.write_text(body, encoding="utf-8")
    os.replace(tmp, path)


def age(path: Path) -> float | None:
    """Seconds since the last beat, or None when there is no heartbeat file."""
    try:
        return max(0.0, time.time() - path.stat().st_mtime)
    except FileNotFoundError:
        return None


def state(path: Path) -> str | None:
    """The state line of the last beat, or None (all well, or no file)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (FileNotFoundError, UnicodeDecodeError):
        return None
    return lines[1].strip() or None if len(lines) > 1 else None


def check(path: Path | None, max_age: float) -> tuple[bool, str]:
    """(healthy, one line saying why)."""
    if path is None:
        return False, "HEARTBEAT_FILE is empty, so the bot keeps no heartbeat"
    a = age(path)
    if a is None:
        return False, f"no heartbeat file at {path} (is the bot running?)"
    s = state(path)
    if s and s.startswith("failed"):
        return False, f"the bot {s}"
    if a > max_age:
        return False, f"stale heartbeat: {path} is {a:.0f} s old (limit {max_age:g} s); the bot is stuck or stopped"
    if s:
        return True, f"ok but {s}: heartbeat {a:.1f} s old"
    return True, f"ok: heartbeat {a:.1f} s old"
