"""A fake Telegram Bot API server on 127.0.0.1 for end-to-end tests and the load bench.

It answers what the bot calls (getMe, deleteWebhook, setWebhook, setMyCommands, getUpdates,
sendMessage, sendChatAction, answerInlineQuery, answerCallbackQuery, editMessageText (of inline-mode messages),
getChatMember (statuses set in `members`), ...),
feeds scripted updates through long-polling getUpdates with Telegram's offset semantics (an update
stays until a later offset confirms it), records every call, and injects faults: 429 with
parameters.retry_after, 5xx, slow answers; optionally it
enforces Telegram's flood limits (429 when over N messages a second overall or per chat).

It runs its own event loop in a background thread (`with FakeBotAPI() as api:`), so the bot under test
may run in-process (in another thread) or as a subprocess pointed at `api.base_url`.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Callable

from aiohttp import web

# form fields python-telegram-bot sends as raw strings (everything else is JSON-encoded)
RAW_STRING_FIELDS = {"text", "query", "inline_query_id", "url", "secret_token", "caption", "action", "next_offset",
                     "callback_query_id", "inline_message_id"}
MESSAGE_METHODS = {"sendMessage", "sendPhoto", "sendDocument", "sendSticker", "copyMessage", "forwardMessage"}
ADMIN_RIGHTS = ("can_be_edited", "is_anonymous", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
                "can_edit_stories", "can_delete_stories")


@dataclass
class Call:
    """One request the bot made."""

    method: str
    params: dict
    t: float  # time.monotonic() on arrival
    status: int = 200
    token: str = ""


@dataclass
class Fault:
    """What to do to the next matching call instead of (or before) answering it."""

    status: int = 0  # 0: answer normally (after `delay`)
    retry_after: int | None = None
    delay: float = 0.0
    description: str = "Internal Server Error"
    body: str | None = None  # answer 200 with this raw body instead (malformed JSON, a result of the wrong shape)


@dataclass
class Load:
    """Closed-loop load: each chat sends its next command as soon as the previous one is answered."""

    chats: list[int]
    commands: int
    texts: list[str]  # chat i sends texts[i % len(texts)]
    # the n-th action of every chat is mix[n % len(mix)]: "text" sends its text, "more"/"up"/"down" presses that
    # button under the last proverb the bot sent to the chat (a vote is answered by answerCallbackQuery alone)
    mix: list[str] = field(default_factory=lambda: ["text"])
    kinds: dict[int, str] = field(default_factory=dict)  # chat -> the kind of action awaiting its answer
    by_kind: dict[str, list[float]] = field(default_factory=dict)  # kind -> latencies (s)
    sent: dict[int, int] = field(default_factory=dict)  # chat -> commands sent
    waiting: dict[int, int] = field(default_factory=dict)  # chat -> update_id awaiting its answer
    latencies: list[float] = field(default_factory=list)  # seconds, first delivery -> sendMessage
    answered: int = 0
    started: float = 0.0
    finished: float = 0.0
    cpu_start: float = 0.0  # this process's CPU time (s) at the start and the end of the load
    cpu_end: float = 0.0
    done: asyncio.Event | None = None


class FakeBotAPI:
    """The fake server; start with `with FakeBotAPI() as api:` or `api.start()` / `api.stop()`."""

    def __init__(self, token: str | None = None, flood_limits: bool = False, overall_rate: int = 30,
                 chat_rate: int = 1, group_rate_per_minute: int = 20, flood_retry_after: int = 1,
                 username: str = "fake_proverbs_bot"):
        self.token = token  # when set, any other token gets 401 Unauthorized
        self.flood_limits = flood_limits
        self.overall_rate = overall_rate
        self.chat_rate = chat_rate
        self.group_rate = group_rate_per_minute
        self.flood_retry_after = flood_retry_after
        self.username = username
        self.bot_id = 4242  # getMe's id (update ids are counted per bot)
        self.calls: list[Call] = []
        self.messages: list[dict] = []  # every message "sent", as Telegram would store it
        self.members: dict[tuple[int, int], str] = {}  # (chat, user) -> getChatMember status; "member" when unset
        self.webhook: dict | None = None
        self.flood_429s = 0
        self._updates: list[dict] = []  # not yet confirmed, in id order
        self.delivered: dict[int, float] = {}  # update_id -> first delivery (monotonic)
        self.confirmed = 0  # every update_id below this is confirmed by the bot
        self._ids = itertools.count(1)
        self._message_ids = itertools.count(1000)
        self._faults: dict[str, deque[Fault]] = {}
        self._holds: dict[str, asyncio.Event] = {}  # method -> set when its held calls may be answered
        self._sent_overall: deque[float] = deque()
        self._sent_chat: dict[int, deque[float]] = {}
        self.load: Load | None = None
        self._load_queries: dict[str, int] = {}  # callback query id -> the chat of the load that pressed
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._new_update: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self._closing = False
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """BOT_API_BASE_URL for the bot: the token is appended to it."""
        return f"http://127.0.0.1:{self.port}/bot"

    def start(self) -> "FakeBotAPI":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), name="fake-bot-api", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fake Bot API did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        self._in_loop(self._close)  # end long polls now, or cleanup waits for them
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "FakeBotAPI":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._new_update = asyncio.Event()
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0, backlog=1024)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        ready.set()
        self._loop.run_forever()

    def _close(self) -> None:
        self._closing = True
        self._new_update.set()

    def _in_loop(self, fn: Callable, *args):
        """Run `fn(*args)` in the server's loop and return its result (thread-safe control)."""
        async def call():
            return fn(*args)
        return asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    # -- scripting (call from any thread) -------------------------------------------------------

    def push(self, update_id: int | None = None, **update) -> int:
        """Queue one update (the fields after update_id, e.g. message={...}); -> its update_id. `update_id`
        sets the id (later ones follow it, as Telegram's grow)."""
        return self._in_loop(self._push, update, update_id)

    def _push(self, update: dict, update_id: int | None = None) -> int:
        if update_id is not None:
            self._ids = itertools.count(update_id)
        uid = next(self._ids)
        self._updates.append({"update_id": uid, **update})
        self._new_update.set()
        return uid

    def send_text(self, chat_id: int, text: str, user_id: int | None = None, lang: str = "ru",
                  chat_type: str = "private") -> int:
        """Queue a message from a user; a leading /command gets its bot_command entity; -> update_id."""
        return self.push(message=message(chat_id, text, user_id, lang, chat_type))

    def send_inline(self, user_id: int, query: str, lang: str = "ru") -> int:
        """Queue an inline query `@bot query`; -> update_id."""
        return self.push(inline_query={"id": f"iq{user_id}-{time.monotonic_ns()}", "from": user(user_id, lang),
                                       "query": query, "offset": "", "chat_type": "private"})

    def press(self, msg: dict, data: str, user_id: int | None = None, lang: str = "ru") -> str:
        """Queue a press of a button with callback `data` under the bot's message `msg` (from `messages`);
        -> the callback query's id (see `toast`)."""
        uid = user_id if user_id is not None else msg["chat"]["id"]
        qid = f"cq{uid}-{next(self._ids)}"
        self.push(callback_query={"id": qid, "from": user(uid, lang), "message": msg,
                                  "chat_instance": str(msg["chat"]["id"]), "data": data})
        return qid

    def press_inline(self, inline_message_id: str, data: str, user_id: int, lang: str = "ru") -> str:
        """Queue a press of a button under a message sent in inline mode (there is no message, only its id); -> query id."""
        qid = f"cq{user_id}-{next(self._ids)}"
        self.push(callback_query={"id": qid, "from": user(user_id, lang), "inline_message_id": inline_message_id,
                                  "chat_instance": "inline", "data": data})
        return qid

    def toast(self, query_id: str, timeout: float = 20.0) -> str:
        """Wait for the answerCallbackQuery of `query_id`; -> its text ("" when answered without a toast)."""
        return self.wait_for(lambda: next(((t or " ",) for q, t in self.toasts() if q == query_id), None),
                             timeout, f"the answer to callback query {query_id}")[0].strip()

    def toasts(self) -> list[tuple[str, str]]:
        """(callback_query_id, text) of every answerCallbackQuery, in order ("" when answered without a toast)."""
        return [(c.params.get("callback_query_id", ""), c.params.get("text", "")) for c in self.calls_of("answerCallbackQuery")]

    def fail(self, method: str, status: int = 500, times: int = 1, retry_after: int | None = None,
             delay: float = 0.0, description: str = "Internal Server Error", body: str | None = None) -> None:
        """Make the next `times` calls of `method` fail with `status` (429 with retry_after), be slow, or
        answer 200 with the raw `body` (a message method still "sends" the message then)."""
        if retry_after is not None:
            status, description = 429, f"Too Many Requests: retry after {retry_after}"
        fault = Fault(status, retry_after, delay, description, body)
        self._in_loop(lambda: self._faults.setdefault(method, deque()).extend([fault] * times))

    # -- reading (any thread) -------------------------------------------------------------------

    def hold(self, method: str) -> None:
        """Keep calls of `method` waiting (the message not yet sent) until release(method)."""
        self._in_loop(lambda: self._holds.setdefault(method, asyncio.Event()))

    def release(self, method: str) -> None:
        """Answer the held calls of `method` and the ones to come."""
        self._in_loop(lambda: self._holds.pop(method, asyncio.Event()).set())

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in list(self.calls) if c.method == method]

    def sent(self, chat_id: int | None = None) -> list[str]:
        """Texts of the messages sent (successfully), optionally to one chat, in order."""
        return [m["text"] for m in list(self.messages) if chat_id is None or m["chat"]["id"] == chat_id]

    def wait_for(self, predicate: Callable[[], object], timeout: float = 20.0, what: str = "condition"):
        """Poll `predicate` until it returns something truthy; AssertionError after `timeout` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.02)
        raise AssertionError(f"timed out after {timeout} s waiting for {what}; calls: "
                             f"{[(c.method, c.status) for c in self.calls[-20:]]}")

    def wait_sent(self, chat_id: int, count: int = 1, timeout: float = 20.0) -> list[str]:
        """Wait until `count` messages were sent to `chat_id`; -> their texts."""
        return self.wait_for(lambda: len(self.sent(chat_id)) >= count and self.sent(chat_id),
                             timeout, f"{count} message(s) to chat {chat_id}")

    # -- load (bench) -----------------------------------------------------------------------------

    def start_load(self, chats: list[int], commands: int, texts: list[str], mix: list[str] | None = None) -> None:
        """Start closed-loop load: chat i sends texts[i % len(texts)] `commands` times, each as soon as
        the previous one is answered (as fast as the bot can take them, one at a time per chat); with `mix`,
        some of those actions are presses of the buttons under the last proverb instead (see Load.mix)."""
        def begin():
            self.load = Load(chats, commands, texts, mix=list(mix or ["text"]), done=asyncio.Event(),
                             started=time.monotonic(), cpu_start=time.process_time())
            self._load_text = {c: texts[i % len(texts)] for i, c in enumerate(chats)}
            for c in chats:
                self._load_next(c)
        self._in_loop(begin)

    def _load_next(self, chat: int) -> None:
        load = self.load
        n = load.sent.get(chat, 0)
        if n >= load.commands:
            if all(load.sent.get(c, 0) >= load.commands for c in load.chats) and not load.waiting:
                load.finished = time.monotonic()
                load.cpu_end = time.process_time()
                load.done.set()
            return
        load.sent[chat] = n + 1
        kind = load.mix[n % len(load.mix)]
        last = next((m for m in reversed(self.messages) if m["chat"]["id"] == chat and m.get("reply_markup")), None)
        if kind == "text" or last is None:
            load.kinds[chat] = "text"
            load.waiting[chat] = self._push({"message": message(chat, self._load_text[chat])})
            return
        keys = [b for row in last["reply_markup"]["inline_keyboard"] for b in row if "callback_data" in b]
        data = keys[{"more": 0, "up": 1, "down": 2}[kind]]["callback_data"]
        qid = f"load{chat}-{n}"
        load.kinds[chat] = kind
        self._load_queries[qid] = chat
        load.waiting[chat] = self._push({"callback_query": {"id": qid, "from": user(chat), "message": last,
                                                            "chat_instance": str(chat), "data": data}})

    def _load_answered(self, chat: int, t: float) -> None:
        load = self.load
        uid = load.waiting.pop(chat)
        load.answered += 1
        latency = t - self.delivered.get(uid, t)
        load.latencies.append(latency)
        load.by_kind.setdefault(load.kinds.pop(chat, "text"), []).append(latency)
        self._load_next(chat)

    def load_stats(self) -> dict:
        """Answered count, latencies (s), elapsed (s) and 429s of the current load."""
        def read():
            load = self.load
            end = load.finished or time.monotonic()
            return {"answered": load.answered, "expected": len(load.chats) * load.commands,
                    "latencies": list(load.latencies), "elapsed": end - load.started,
                    "done": load.done.is_set(), "flood_429s": self.flood_429s,
                    "by_kind": {k: list(v) for k, v in load.by_kind.items()},
                    "cpu_s": (load.cpu_end or time.process_time()) - load.cpu_start,
                    "calls": dict(Counter(c.method for c in self.calls if c.t >= load.started))}
        return self._in_loop(read)

    # -- the server -------------------------------------------------------------------------------

    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        token = request.match_info["token"]
        params = await _params(request)
        call = Call(method, params, time.monotonic(), token=token)
        self.calls.append(call)
        if self.token is not None and token != self.token:
            return self._error(call, 401, "Unauthorized")
        gate = self._holds.get(method)
        if gate is not None:
            await gate.wait()
        faults = self._faults.get(method)
        if faults:
            fault = faults.popleft()
            if fault.delay:
                await asyncio.sleep(fault.delay)
            if fault.body is not None:
                call.status = 200
                if method in MESSAGE_METHODS:  # the message did go out; only the answer is broken
                    await self._api_sendMessage(Call(method, params, call.t))
                return web.Response(text=fault.body, content_type="application/json")
            if fault.status:
                return self._error(call, fault.status, fault.description,
                                   {"retry_after": fault.retry_after} if fault.retry_after else None)
        handler = getattr(self, f"_api_{method}", None)
        if handler is None:
            return self._ok(True)
        return await handler(call)

    def _ok(self, result) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    def _error(self, call: Call, status: int, description: str, parameters: dict | None = None) -> web.Response:
        call.status = status
        body = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    async def _api_getMe(self, call: Call) -> web.Response:
        return self._ok({"id": self.bot_id, "is_bot": True, "first_name": "Fake Proverbs", "username": self.username,
                         "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": True})

    async def _api_setWebhook(self, call: Call) -> web.Response:
        self.webhook = call.params
        return self._ok(True)

    async def _api_deleteWebhook(self, call: Call) -> web.Response:
        self.webhook = None
        return self._ok(True)

    async def _api_getUpdates(self, call: Call) -> web.Response:
        offset = int(call.params.get("offset") or 0)
        limit = int(call.params.get("limit") or 100)
        timeout = float(call.params.get("timeout") or 0)
        if offset:
            self.confirmed = max(self.confirmed, offset)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not self._updates and time.monotonic() < deadline and not self._closing:
            self._new_update.clear()
            try:
                await asyncio.wait_for(self._new_update.wait(), deadline - time.monotonic())
            except asyncio.TimeoutError:
                break
        batch = self._updates[:limit]
        now = time.monotonic()
        for u in batch:
            self.delivered.setdefault(u["update_id"], now)
        return self._ok(batch)

    async def _api_sendMessage(self, call: Call) -> web.Response:
        chat_id = int(call.params["chat_id"])
        if self.flood_limits and self._over_limit(chat_id, call.t):
            self.flood_429s += 1
            return self._error(call, 429, f"Too Many Requests: retry after {self.flood_retry_after}",
                               {"retry_after": self.flood_retry_after})
        msg = {"message_id": next(self._message_ids), "date": int(time.time()), "text": call.params.get("text", ""),
               "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
               "from": {"id": 4242, "is_bot": True, "first_name": "Fake Proverbs", "username": self.username}}
        if call.params.get("reply_markup"):
            msg["reply_markup"] = call.params["reply_markup"]
        self.messages.append(msg)
        load = self.load
        if load is not None and chat_id in load.waiting and load.kinds.get(chat_id) in ("text", "more"):
            self._load_answered(chat_id, call.t)
        return self._ok(msg)

    def _over_limit(self, chat_id: int, now: float) -> bool:
        """Telegram's flood limits as sliding windows: >overall_rate/s, >chat_rate/s per chat, >group_rate/min."""
        overall = self._sent_overall
        while overall and now - overall[0] >= 1.0:
            overall.popleft()
        per_chat = self._sent_chat.setdefault(chat_id, deque())
        period, limit = (60.0, self.group_rate) if chat_id < 0 else (1.0, self.chat_rate)
        while per_chat and now - per_chat[0] >= period:
            per_chat.popleft()
        if len(overall) >= self.overall_rate or len(per_chat) >= limit:
            return True
        overall.append(now)
        per_chat.append(now)
        return False

    async def _api_answerInlineQuery(self, call: Call) -> web.Response:
        return self._ok(True)

    async def _api_answerCallbackQuery(self, call: Call) -> web.Response:
        chat = self._load_queries.pop(call.params.get("callback_query_id", ""), None)
        load = self.load
        if load is not None and chat in load.waiting and load.kinds.get(chat) in ("up", "down"):
            self._load_answered(chat, call.t)
        return self._ok(True)

    async def _api_editMessageText(self, call: Call) -> web.Response:
        if call.params.get("inline_message_id"):
            return self._ok(True)  # an inline-mode message: Telegram answers True
        return self._error(call, 400, "Bad Request: message can't be edited")

    async def _api_getChatMember(self, call: Call) -> web.Response:
        chat_id, user_id = int(call.params["chat_id"]), int(call.params["user_id"])
        status = self.members.get((chat_id, user_id), "member")
        member = {"status": status, "user": user(user_id)}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(dict.fromkeys(ADMIN_RIGHTS, False), can_manage_chat=True)
        elif status == "kicked":
            member["until_date"] = 0
        return self._ok(member)


async def _params(request: web.Request) -> dict:
    """Form fields (JSON-encoded values, as PTB sends them), a JSON body, or the query string."""
    out: dict = dict(request.query)
    if request.content_type == "application/json":
        body = await request.json()
        out.update(body if isinstance(body, dict) else {})
        return out
    if request.can_read_body:
        form = await request.post()
        for k, v in form.items():
            if not isinstance(v, str):
                continue
            if k in RAW_STRING_FIELDS:
                out[k] = v
                continue
            try:
                out[k] = json.loads(v)
            except ValueError:
                out[k] = v
    return out


def user(user_id: int, lang: str = "ru") -> dict:
    return {"id": user_id, "is_bot": False, "first_name": f"user{user_id}", "language_code": lang}


_MSG_IDS = itertools.count(1)
COMMAND_ENTITY = re.compile(r"/[A-Za-z0-9_]{1,32}(@[A-Za-z0-9_]{3,32})?", re.ASCII)


def message(chat_id: int, text: str, user_id: int | None = None, lang: str = "ru", chat_type: str = "private") -> dict:
    """A Message as Telegram sends it in an update; a leading /command gets its bot_command entity."""
    uid = user_id if user_id is not None else abs(chat_id)
    chat = {"id": chat_id, "type": chat_type}
    chat.update({"first_name": f"user{uid}"} if chat_type == "private" else {"title": f"group {chat_id}"})
    msg = {"message_id": next(_MSG_IDS), "date": int(time.time()), "chat": chat, "from": user(uid, lang), "text": text}
    command = COMMAND_ENTITY.match(text)
    if command:  # as Telegram marks it: the entity ends at the first character a command cannot hold
        msg["entities"] = [{"type": "bot_command", "offset": 0, "length": command.end()}]
    return msg


def serve_over_pipe(conn, api_class: type[FakeBotAPI] | None = None, **options) -> None:
    """Run a FakeBotAPI (or `api_class`, a subclass with a load of its own) in this (child) process, controlled
    through a multiprocessing pipe.

    Sends its port first, then answers ("load", *args) (start_load), ("stats",) (load_stats), ("stop",).
    """
    with (api_class or FakeBotAPI)(**options) as api:
        conn.send(api.port)
        while True:
            cmd, *args = conn.recv()
            if cmd == "load":
                api.start_load(*args)
                conn.send(True)
            elif cmd == "stats":
                conn.send(api.load_stats())
            else:
                conn.send(True)
                return
