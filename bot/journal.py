"""The update journal: every fetched update is written down before Telegram is told it was taken, so a
bot killed with kill -9 answers, after its restart, what it had fetched but not yet answered.

python-telegram-bot confirms a batch of updates (the next getUpdates' offset) as soon as it is queued,
before any reply goes out; a kill then loses every update in flight (70 of 100 in the probe). Each update
here moves through three states, in one SQLite file (stdlib sqlite3, WAL: a write survives the process,
it is not fsynced against a power cut):

    0 fetched   -> answered again after a restart
    1 sending   -> a reply's request had started on the wire when the process died (marked by httpcore's
                   trace of the request headers, not when the handler decided to send: requests wait for a
                   free connection and the flood limits first). It may have arrived, so it is *not* answered
                   again (a duplicate is worse than a rare loss); logged
    2 done      -> the body is dropped (it holds the user's message); the id is kept two days, to recognise
                   an update Telegram delivers again

Updates Telegram delivers again (the offset of a killed bot was never confirmed) are recognised by id
and handed over empty, marked `REDELIVERED` (an extra field, which python-telegram-bot keeps in
`Update.api_kwargs`), so the offset moves past them and nothing answers them twice.

Update ids are counted per bot, so an update is keyed by the bot's id (getMe's, given by `bind`) and its id:
a DATA_DIR reused with another token (a test bot, then the real one) silently skipped every new update whose
id the other bot had answered in the last two days (issue 24). The file's schema is versioned by SQLite's
`user_version` (this journal is the bot's own scratch file, outside the database and its Alembic migrations):

    0  updates(update_id PRIMARY KEY, ...)             before issue 24
    1  updates(bot_id, update_id, ..., PRIMARY KEY (bot_id, update_id))

Rows of version 0 are kept with bot_id 0 and taken over by the first bot that binds (in nearly every case
the same bot, restarted on the new version: what it fetched before is still answered, what it answered is
still recognised).
"""

from __future__ import annotations

import contextvars
import json
import logging
import sqlite3
import time
from pathlib import Path

from .limits import MESSAGE_METHODS

log = logging.getLogger(__name__)

FETCHED, SENDING, DONE = 0, 1, 2
REDELIVERED = "journal_redelivered"  # the field marking an update handed over empty (already journaled)
SCHEMA = 1  # PRAGMA user_version this code writes (see above)
UNBOUND = 0  # bot_id of the rows written before the journal knew its bot
KEEP_S = 2 * 24 * 3600  # Telegram keeps an unconfirmed update for 24 h; answered ids are remembered longer

# the update whose handler is running (set per update task by bot.app's Application)
CURRENT_UPDATE: contextvars.ContextVar[int | None] = contextvars.ContextVar("current_update", default=None)


def storable(update_id: int) -> bool:
    """Whether SQLite can key an update by this id (a signed 64-bit integer)."""
    return -(2**63) <= update_id < 2**63


class JournalError(Exception):
    """The journal file cannot be opened or written."""


class Journal:
    """Fetched updates and how far each got; `broken` (why) once a write failed: it then records nothing."""

    def __init__(self, path: Path, clock=time.time, on_broken=None, bot_id: int = UNBOUND):
        self.path = Path(path)
        self.clock = clock
        self.broken: str | None = None
        self.on_broken = on_broken  # called with why, once, when a write fails (the bot's health degrades)
        self.bot_id = bot_id  # whose update ids these are (bind)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
            self._db.execute("DELETE FROM updates WHERE state = 2 AND fetched < ?", (self.clock() - KEEP_S,))
        except (sqlite3.Error, OSError) as e:
            raise JournalError(f"cannot open the update journal {self.path}: {e}") from None

    def _migrate(self) -> None:
        """Bring the file to SCHEMA (one transaction); JournalError for a file of a newer bot."""
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA:
            return
        if version > SCHEMA:
            raise JournalError(f"the update journal {self.path} was written by a newer version of the bot (schema "
                               f"{version}, this one knows {SCHEMA}): run that version, or delete the file (updates "
                               f"fetched but not answered before the last stop are then not answered)")
        old = self._db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'updates'").fetchone()
        try:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute("CREATE TABLE updates_new (bot_id INTEGER NOT NULL, update_id INTEGER NOT NULL, "
                             "body TEXT NOT NULL, state INTEGER NOT NULL DEFAULT 0, fetched REAL NOT NULL, "
                             "PRIMARY KEY (bot_id, update_id))")
            if old:
                self._db.execute(f"INSERT INTO updates_new SELECT {UNBOUND}, update_id, body, state, fetched FROM updates")
                self._db.execute("DROP TABLE updates")
            self._db.execute("ALTER TABLE updates_new RENAME TO updates")
            self._db.execute(f"PRAGMA user_version = {SCHEMA}")
            self._db.execute("COMMIT")
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        if old:
            log.info("the update journal %s now keys updates by the bot's id too (schema %d)", self.path, SCHEMA)

    def bind(self, bot_id: int) -> None:
        """The journal serves the bot `bot_id` (getMe's id) from now on; it takes over the rows written before
        the journal knew its bot (schema 0)."""
        self.bot_id = bot_id
        self._write("taking over the updates of an older journal", lambda: self._db.execute(
            "UPDATE OR IGNORE updates SET bot_id = ? WHERE bot_id = ?", (bot_id, UNBOUND)))

    def _write(self, what: str, fn) -> None:
        if self.broken:
            return
        try:
            fn()
        except sqlite3.Error as e:
            self._fail(what, e)
        except Exception as e:  # noqa: BLE001 - a value SQLite cannot take (issue 24): that update only
            log.error("the update journal could not record one update while %s (%s); it is answered without "
                      "the journal", what, type(e).__name__)

    def _fail(self, what: str, e: Exception) -> None:
        self.broken = f"{self.path}: {e}"
        log.error("the update journal failed while %s (%s); from now on, updates in flight are lost if the bot "
                  "is killed", what, e)
        if self.on_broken is not None:
            self.on_broken(self.broken)

    def record(self, raw: list[dict]) -> list[dict]:
        """Before the batch is handed over: write down the new updates; -> the batch, with those already
        journaled (delivered again by Telegram) replaced by empty updates that only carry their id.

        Nothing in one update can stop polling (issue 24: a lone surrogate failed the batch's write with a
        UnicodeEncodeError, an id of 2**63 with an OverflowError, and the batch was fetched again ~400 times
        a second): an update that cannot be written down is logged once (id and field names) and handed over
        unjournaled; a failure of the journal itself breaks it (health: degraded), and the bot answers on."""
        if self.broken or not raw:
            return raw
        try:
            return self._record(raw)
        except Exception as e:  # noqa: BLE001 - the journal, not the batch, is broken: answer without it
            self._fail("recording fetched updates", e)
            return raw

    def _record(self, raw: list[dict]) -> list[dict]:
        ids = [u["update_id"] for u in raw if storable(u["update_id"])]
        known: set[int] = set()
        if ids:
            try:
                marks = ",".join("?" * len(ids))
                known = {r[0] for r in self._db.execute(
                    f"SELECT update_id FROM updates WHERE bot_id = ? AND update_id IN ({marks})", [self.bot_id, *ids])}
            except sqlite3.Error as e:
                self._fail("reading", e)
                return raw
        if known:  # one line a batch: a restart after a kill shows here, and nothing else should
            log.info("%d update(s) delivered again, already journaled, are skipped (ids %s)", len(known),
                     ", ".join(map(str, sorted(known)[:20])))
        now = self.clock()
        new = []
        for u in raw:
            uid = u["update_id"]
            if uid in known:
                continue
            body = self._body(u)
            if body is None:
                log.error("update %d is answered without the update journal: it cannot be written down (%s); "
                          "fields: %s", uid, "its id is beyond SQLite's integers" if not storable(uid) else
                          "its body cannot be encoded", ", ".join(sorted(k for k in u if k != "update_id")) or "none")
                continue
            new.append((self.bot_id, uid, body, now))

        def insert() -> None:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany("INSERT OR IGNORE INTO updates (bot_id, update_id, body, fetched) VALUES (?, ?, ?, ?)", new)

        if new:
            self._write("recording fetched updates", insert)
        return [{"update_id": u["update_id"], REDELIVERED: True} if u["update_id"] in known else u for u in raw]

    @staticmethod
    def _body(update: dict) -> str | None:
        """The update as the journal stores it; None when it cannot be stored (its id is out of SQLite's range)."""
        if not storable(update["update_id"]):
            return None
        try:
            body = json.dumps(update, ensure_ascii=False)
            body.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate (valid JSON: "\ud800"): escaped, it reads back the same
            body = json.dumps(update)
        except (TypeError, ValueError):
            return None
        return body

    def sending(self, update_id: int) -> None:
        """A reply to `update_id` is going out on the wire now."""
        if not storable(update_id):
            return
        self._write("marking a reply", lambda: self._db.execute(
            "UPDATE updates SET state = 1 WHERE bot_id = ? AND update_id = ? AND state = 0", (self.bot_id, update_id)))

    def done(self, update_id: int) -> None:
        """The update was handled (answered, or nothing to answer)."""
        if not storable(update_id):
            return
        self._write("marking an update done", lambda: self._db.execute(
            "UPDATE updates SET state = 2, body = '' WHERE bot_id = ? AND update_id = ?", (self.bot_id, update_id)))

    def unfinished(self) -> list[dict]:
        """At startup: updates fetched but never answered (to answer now); those whose reply was on its way
        are logged and closed."""
        try:
            rows = self._db.execute("SELECT update_id, body, state FROM updates WHERE bot_id = ? AND state < 2 "
                                    "ORDER BY update_id", (self.bot_id,)).fetchall()
        except sqlite3.Error as e:
            self._fail("reading the updates left from the last run", e)
            return []
        maybe = [uid for uid, _, state in rows if state == SENDING]
        if maybe:
            log.warning("%d update(s) had a reply on its way when the bot stopped; not answered again (ids %s)",
                        len(maybe), ", ".join(map(str, maybe[:20])))
            for uid in maybe:
                self.done(uid)
        todo = [json.loads(body) for uid, body, state in rows if state == FETCHED]
        if todo:
            log.info("answering %d update(s) fetched before the last stop", len(todo))
        return todo

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass


class WireMarks:
    """httpx request hook: a message sent while an update is handled marks that update `sending` when its
    request starts on the wire (httpcore's `trace` extension), once `journal` is set."""

    journal: Journal | None = None

    async def on_request(self, request) -> None:  # (httpx.Request)
        uid = CURRENT_UPDATE.get()
        journal = self.journal
        if journal is None or uid is None or request.url.path.rsplit("/", 1)[-1] not in MESSAGE_METHODS:
            return

        async def trace(event: str, info: dict) -> None:  # (httpcore awaits it, in the sending task)
            if event.endswith("send_request_headers.started"):  # http11. or http2.
                journal.sending(uid)

        request.extensions = {**request.extensions, "trace": trace}
