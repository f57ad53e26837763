"""bot.journal: which fetched updates a restarted bot answers again, and which it must not."""

from __future__ import annotations

import json
import logging
import sqlite3

import pytest

from bot.journal import REDELIVERED, Journal, JournalError


def update(uid: int, text: str = "/alpha") -> dict:
    return {"update_id": uid, "message": {"message_id": uid, "date": 0, "chat": {"id": uid, "type": "private"},
                                          "text": text}}


def test_a_restart_answers_what_was_fetched_and_not_what_may_have_been_sent(tmp_path):
    path = tmp_path / "updates.sqlite3"
    j = Journal(path)
    assert j.record([update(1), update(2), update(3)]) == [update(1), update(2), update(3)]
    j.done(1)
    j.sending(2)  # its reply started on the wire: it may have arrived
    j.close()  # (a kill -9: nothing else is written)

    j = Journal(path)
    assert j.unfinished() == [update(3)]
    # Telegram delivers the unconfirmed batch again: known ids are handed over empty, new ones in full
    again = {"update_id": 2, REDELIVERED: True}, {"update_id": 3, REDELIVERED: True}
    assert j.record([update(2), update(3), update(4)]) == [*again, update(4)]
    j.done(3)
    j.done(4)
    j.close()
    assert Journal(path).unfinished() == []


def test_an_answered_update_keeps_only_its_id(tmp_path):
    j = Journal(tmp_path / "updates.sqlite3")
    j.record([update(7, "мои личные слова")])
    j.done(7)
    j.close()
    with sqlite3.connect(tmp_path / "updates.sqlite3") as db:
        assert db.execute("SELECT update_id, body FROM updates").fetchall() == [(7, "")]


def test_old_answered_ids_are_forgotten(tmp_path):
    now = [1000.0]
    j = Journal(tmp_path / "u.sqlite3", clock=lambda: now[0])
    j.record([update(1), update(2)])
    j.done(1)
    j.close()
    now[0] += 3 * 24 * 3600
    j = Journal(tmp_path / "u.sqlite3", clock=lambda: now[0])
    # id 1 (answered) is gone, so a copy of it would be new; id 2 was never answered and is kept
    assert j.record([update(1)]) == [update(1)]
    assert [u["update_id"] for u in j.unfinished()] == [1, 2]


def test_a_journal_that_cannot_open_names_its_file(tmp_path):
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(JournalError, match="file/updates.sqlite3"):
        Journal(tmp_path / "file" / "updates.sqlite3")


def test_a_journal_that_breaks_while_running_says_so_once(tmp_path):
    # the bot passes its health status here: `health` then reports the journal as degraded
    seen = []
    journal = Journal(tmp_path / "updates.sqlite3", on_broken=seen.append)
    journal._db.close()  # any later write fails, as on a full or vanished disk
    journal.record([{"update_id": 1, "message": {"text": "/alpha"}}])
    journal.record([{"update_id": 2, "message": {"text": "/alpha"}}])
    assert len(seen) == 1 and "updates.sqlite3" in seen[0] and journal.broken == seen[0]


def test_updates_sqlite_cannot_take_are_handed_over_and_the_rest_journaled(tmp_path, caplog):
    # issue 24: one such update failed the whole batch, which was then fetched again ~400 times a second
    path = tmp_path / "updates.sqlite3"
    j = Journal(path)
    odd = [update(1, "/alpha \ud800"), update(2**63), update(3)]
    assert j.record(odd) == odd
    assert j.broken is None
    j.sending(2**63)
    j.done(2**63)
    j.close()
    # the lone surrogate was stored escaped and reads back the same; the id beyond int64 was logged, once
    assert Journal(path).unfinished() == [update(1, "/alpha \ud800"), update(3)]
    assert len([r for r in caplog.records if str(2**63) in r.getMessage()]) == 1


def test_a_journal_failing_on_a_batch_for_another_reason_degrades_and_hands_it_over(tmp_path):
    seen = []
    j = Journal(tmp_path / "updates.sqlite3", on_broken=seen.append)
    j.clock = lambda: 1 / 0  # anything the journal itself cannot do
    assert j.record([update(1)]) == [update(1)]
    assert len(seen) == 1 and "updates.sqlite3" in seen[0] and j.broken == seen[0]


# -- issue 24: update ids are per bot ----------------------------------------------------------------------


def test_update_ids_are_kept_apart_per_bot_and_a_skipped_duplicate_is_logged_once(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    path = tmp_path / "updates.sqlite3"
    test_bot = Journal(path, bot_id=111)
    test_bot.record([update(5), update(6)])
    test_bot.done(5)
    test_bot.done(6)
    test_bot.close()
    real = Journal(path, bot_id=222)  # the same DATA_DIR, another token
    # before the fix: both handed over empty (REDELIVERED), so never answered
    assert real.record([update(5), update(6)]) == [update(5), update(6)]
    real.done(5)
    assert real.record([update(5), update(6), update(7)]) == [
        {"update_id": 5, REDELIVERED: True}, {"update_id": 6, REDELIVERED: True}, update(7)]
    lines = [r.getMessage() for r in caplog.records if "delivered again" in r.getMessage()]
    assert lines == ["2 update(s) delivered again, already journaled, are skipped (ids 5, 6)"]
    assert real.unfinished() == [update(6), update(7)]  # (what a restart would answer: never done)
    real.close()


def test_a_journal_of_the_old_schema_is_migrated_and_taken_over_by_the_first_bot(tmp_path):
    path = tmp_path / "updates.sqlite3"
    with sqlite3.connect(path) as db:  # as the bot wrote it before issue 24
        db.execute("CREATE TABLE updates (update_id INTEGER PRIMARY KEY, body TEXT NOT NULL, "
                   "state INTEGER NOT NULL DEFAULT 0, fetched REAL NOT NULL)")
        db.execute("INSERT INTO updates VALUES (1, '', 2, 1e12)")  # answered
        db.execute("INSERT INTO updates VALUES (2, ?, 0, 1e12)", (json.dumps(update(2)),))  # fetched, not answered
    db.close()
    j = Journal(path, clock=lambda: 1e12)
    j.bind(4242)
    assert j.unfinished() == [update(2)]
    assert j.record([update(1), update(3)]) == [{"update_id": 1, REDELIVERED: True}, update(3)]
    j.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        assert db.execute("SELECT DISTINCT bot_id FROM updates").fetchall() == [(4242,)]
    db.close()
    assert Journal(path, bot_id=1).record([update(1)]) == [update(1)]  # another bot's ids are its own


def test_a_journal_of_a_newer_bot_names_its_file_and_the_fix(tmp_path):
    path = tmp_path / "updates.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA user_version = 7")
    db.close()
    with pytest.raises(JournalError, match=r"updates.sqlite3 was written by a newer version.*delete the file"):
        Journal(path)
