"""The bot's Telegram client: getUpdates that survives an update it cannot read, and stops for good on
a revoked token (401/404) or a second poller (409) instead of idling with a fresh heartbeat."""

from __future__ import annotations

import datetime as dtm
import logging
from typing import Callable, Sequence

from telegram import Update
from telegram._utils.defaultvalue import DEFAULT_NONE, DefaultValue
from telegram._utils.types import ODVInput
from telegram.error import Conflict, InvalidToken, TelegramError
from telegram.ext import ExtBot

log = logging.getLogger(__name__)


class PollingBot(ExtBot):
    """ExtBot whose get_updates reads each update on its own.

    python-telegram-bot parses a getUpdates answer as a whole: one update it cannot read (a poll from an
    older self-hosted Bot API server, say) fails the whole batch, the offset never moves past it, and the
    same batch is fetched again at once, forever (measured in the probe: ~560 getUpdates/s and 5 MB/s of
    CRITICAL lines holding users' messages). Here such an update is logged once, by id and field names
    only, and stands in the batch as an empty Update with its id, so the offset moves past it and no
    handler answers it. An answer that cannot be read at all is a TelegramError, which the polling loop
    retries with backoff (1 s, growing to 30 s).

    `_on_fatal(message)` (set by bot.app) is called when polling can never succeed again: 401/404 (the token was revoked
    or is wrong) or 409 (another process polls with this token, or a webhook is set).
    """

    _on_fatal: Callable[[str], None] | None = None
    # raw updates go through here before they are handed over (the journal records them); -> the ones to hand over
    _on_fetched: Callable[[list[dict]], list[dict]] | None = None

    async def get_updates(
        self,
        offset: int | None = None,
        limit: int | None = None,
        timeout: int | dtm.timedelta | None = None,
        allowed_updates: Sequence[str] | None = None,
        *,
        read_timeout: ODVInput[float] = DEFAULT_NONE,
        write_timeout: ODVInput[float] = DEFAULT_NONE,
        connect_timeout: ODVInput[float] = DEFAULT_NONE,
        pool_timeout: ODVInput[float] = DEFAULT_NONE,
        api_kwargs: dict | None = None,
    ) -> tuple[Update, ...]:
        data = {"timeout": timeout, "offset": offset, "limit": limit, "allowed_updates": allowed_updates}
        # as Bot.get_updates: the long-poll time is added to the read timeout
        base = (self._request[0].read_timeout or 0) if isinstance(read_timeout, DefaultValue) else (read_timeout or 0)
        seconds = timeout.total_seconds() if isinstance(timeout, dtm.timedelta) else (timeout or 0)
        try:
            raw = await self._post("getUpdates", data, read_timeout=base + seconds, write_timeout=write_timeout,
                                   connect_timeout=connect_timeout, pool_timeout=pool_timeout, api_kwargs=api_kwargs)
        except (InvalidToken, Conflict) as e:
            self._fatal(e)
            raise
        if not isinstance(raw, list) or not all(isinstance(u, dict) and isinstance(u.get("update_id"), int) for u in raw):
            raise TelegramError("getUpdates answered something that is not a list of updates")
        try:
            if self._on_fetched is not None:
                raw = self._on_fetched(raw)
            updates = tuple(read_update(u, self) for u in raw)
            for update in updates:
                self.insert_callback_data(update)
        except Exception as e:  # noqa: BLE001 - anything else: python-telegram-bot would log a CRITICAL
            # traceback and fetch the batch again at once, forever (issue 24: ~400 getUpdates/s); as a
            # TelegramError it is retried with backoff instead
            log.error("could not process a batch of %d update(s) (ids %s): %s", len(raw),
                      ", ".join(str(u["update_id"]) for u in raw[:5]), type(e).__name__)
            raise TelegramError(f"could not process a batch of updates ({type(e).__name__})") from None
        return updates

    def _fatal(self, e: TelegramError) -> None:
        if isinstance(e, InvalidToken):
            why = f"Telegram rejected BOT_TOKEN while polling ({e.message}); was it revoked? Get the current one from @BotFather"
        else:
            why = (f"Telegram refused polling: {e.message} (another process polls with this token, or a webhook is "
                   f"set); stop the other instance")
        if self._on_fatal is not None:
            self._on_fatal(why)


def read_update(data: dict, bot: ExtBot) -> Update:
    """`data` as an Update; one that python-telegram-bot cannot read -> an empty Update with its id (logged once)."""
    try:
        return Update.de_json(data, bot)
    except Exception as e:  # noqa: BLE001 - any parse failure: the update is skipped, polling goes on
        # field names only: the values hold users' messages and names
        fields = sorted(k for k in data if k != "update_id")
        inner = sorted(data[fields[0]]) if len(fields) == 1 and isinstance(data[fields[0]], dict) else []
        log.error("skipped update %d: python-telegram-bot cannot read it (%s); fields: %s%s", data["update_id"],
                  type(e).__name__, ", ".join(fields) or "none", f" ({', '.join(inner)})" if inner else "")
        update = Update(update_id=data["update_id"])
        update.set_bot(bot)
        return update
