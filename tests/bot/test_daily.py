"""Daily delivery without Telegram: the store and the scheduler driven directly, with a fake bot and a clock the
test sets; and the my_chat_member handler's decision. (End to end, with the fake Bot API: test_subscriptions.py.)"""

from __future__ import annotations

from datetime import datetime, time, timezone
from types import SimpleNamespace

import pytest
from telegram import Update
from telegram.error import ChatMigrated

from bot.catalog import Catalog
from bot.generation import GenerationService
from bot.health import Status
from bot.subscriptions import handlers as daily
from bot.subscriptions.scheduler import Scheduler
from bot.subscriptions.store import Store

UTC = timezone.utc
BOT_USER = {"id": 4242, "is_bot": True, "first_name": "Fake Proverbs", "username": "fake_proverbs_bot"}


class FakeBot:
    """send_message records (chat, text), or raises the fault set for that chat (once)."""

    def __init__(self):
        self.sent: list[tuple[int, str]] = []
        self.faults: dict[int, Exception] = {}

    async def send_message(self, chat_id: int, text: str, **kwargs) -> None:
        fault = self.faults.pop(chat_id, None)
        if fault is not None:
            raise fault
        self.sent.append((chat_id, text))


class Clock:
    def __init__(self, *when: int):
        self.now = datetime(*when, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def world(tiny_models, tmp_path):
    """(scheduler with an open store, its clock, a fake bot): generation in a thread, SQLite in tmp_path."""
    catalog = Catalog.load(tiny_models, ())
    generator = GenerationService(catalog.bundles, processes=0)
    clock = Clock(2024, 5, 1, 8, 0)
    scheduler = Scheduler(f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}", catalog, generator, Status(), clock)
    scheduler.store = await Store.open(scheduler.url)  # what start() does, without a JobQueue
    yield scheduler, clock, FakeBot()
    await scheduler.store.close()
    await generator.stop()


async def test_a_chat_that_became_a_supergroup_gets_its_proverb_at_the_new_id(world):
    scheduler, clock, bot = world
    await scheduler.store.subscribe(-100, "alpha", time(9, 0), clock())
    clock.now = datetime(2024, 5, 1, 9, 0, tzinfo=UTC)
    bot.faults[-100] = ChatMigrated(-100200)
    await scheduler.deliver(bot)
    assert bot.sent == []
    assert await scheduler.store.of_chat(-100) == []
    [moved] = await scheduler.store.of_chat(-100200)
    assert moved.culture == "alpha" and moved.due_date.isoformat() == "2024-05-01"  # still due today
    await scheduler.deliver(bot)
    assert [chat for chat, _ in bot.sent] == [-100200]


async def test_a_new_time_zone_moves_the_next_delivery(world):
    scheduler, clock, _ = world
    await scheduler.store.subscribe(6, "alpha", time(9, 0), clock())  # 08:00 UTC: due today at 09:00 UTC
    [sub] = await scheduler.store.set_timezone(6, "Asia/Yerevan", clock())  # UTC+4: 09:00 there has passed
    assert sub.timezone == "Asia/Yerevan"
    assert sub.due_date.isoformat() == "2024-05-02"
    assert sub.next_due == datetime(2024, 5, 2, 5, 0, tzinfo=UTC)


ADMIN_RIGHTS = ("can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
                "can_edit_stories", "can_delete_stories")


def _membership(chat_id: int, status: str) -> Update:
    """The update Telegram sends when the bot's own membership in a group changes to `status`."""
    new = {"status": status, "user": BOT_USER}
    if status == "administrator":
        new.update(dict.fromkeys(ADMIN_RIGHTS, False))
    if status == "kicked":
        new["until_date"] = 0
    return Update.de_json({"update_id": 1, "my_chat_member": {
        "chat": {"id": chat_id, "type": "group", "title": "g"}, "from": {"id": 1, "is_bot": False, "first_name": "a"},
        "date": 0, "old_chat_member": {"status": "member", "user": BOT_USER}, "new_chat_member": new}}, None)


async def test_only_leaving_a_chat_drops_its_subscriptions(world):
    scheduler, clock, _ = world
    context = SimpleNamespace(subscriptions=scheduler)
    for chat in (-1, -2, -3):
        await scheduler.store.subscribe(chat, "alpha", time(9, 0), clock())
    await daily.my_chat_member(_membership(-1, "administrator"), context)  # promoted: stays
    await daily.my_chat_member(_membership(-2, "left"), context)  # removed from the group
    await daily.my_chat_member(_membership(-3, "kicked"), context)  # banned
    assert [len(await scheduler.store.of_chat(c)) for c in (-1, -2, -3)] == [1, 0, 0]
