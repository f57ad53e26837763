"""Logging that can never print the token: every finished line is scrubbed of the secrets."""

from __future__ import annotations

import logging
import sys
from urllib.parse import quote

REDACTED = "[REDACTED]"


class Redactor:
    """Replaces each secret (and its URL-encoded form) in a string."""

    def __init__(self, secrets: list[str] | None = None):
        self.secrets: list[str] = []
        for s in secrets or []:
            self.add(s)

    def add(self, secret: str) -> None:
        for form in (secret, quote(secret, safe=""), quote(secret)):
            if form and form not in self.secrets:
                self.secrets.append(form)
        self.secrets.sort(key=len, reverse=True)  # longest first, so a form is never half-replaced

    def __call__(self, text: str) -> str:
        for s in self.secrets:
            if s in text:
                text = text.replace(s, REDACTED)
        return text


class RedactingFormatter(logging.Formatter):
    """Formats as usual (message, args, traceback, stack) and then scrubs the whole line."""

    def __init__(self, redactor: Redactor, fmt: str | None = None):
        super().__init__(fmt)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(super().format(record))


# one redactor for the process: setup_logging may run before the webhook secret is made up
REDACTOR = Redactor()


def setup_logging(level: str = "INFO", secrets: list[str] | None = None, stream=None) -> Redactor:
    """Route every logger through one scrubbed stderr handler at `level`; returns the redactor."""
    for s in secrets or []:
        REDACTOR.add(s)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingFormatter(REDACTOR, "%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL (which holds the token) at INFO: too chatty for INFO, so it stays at
    # WARNING unless DEBUG asks for everything; the formatter scrubs the token either way.
    quiet = logging.NOTSET if level == "DEBUG" else logging.WARNING
    for name in ("httpx", "httpcore", "apscheduler"):
        logging.getLogger(name).setLevel(quiet)
    # Alembic talks at INFO on every start (its plugins, "Context impl SQLiteImpl"; bot.subscriptions.migrate
    # says what matters), and aiosqlite logs two DEBUG lines per driver call (dozens per transaction): noise
    # that would drown the log at any level
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    logging.captureWarnings(True)
    return REDACTOR
