"""`python -m bot chat`: the same Application and handlers as on Telegram, with the terminal as the chat.

Each line typed becomes a Telegram update (a message, or an inline query when it starts with `@`) and
goes through `Application.process_update`; the Bot API calls the handlers make are answered here by
ConsoleRequest, which prints messages instead of sending them. No token, no network.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
from typing import TextIO

from telegram import Update
from telegram.request import BaseRequest, RequestData

from .app import Plugin, build_application
from .services import Services
from .settings import Settings

CONSOLE_TOKEN = "0:console"  # never leaves the process: ConsoleRequest answers every call
BOT_USER = {"id": 1, "is_bot": True, "first_name": "Proverbs", "username": "proverbs_bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": True}
CHAT_ID = 10


class ConsoleRequest(BaseRequest):
    """A Bot API "server" in the process: sendMessage prints, the rest answers what Telegram would."""

    def __init__(self, out: TextIO):
        self.out = out
        self._message_id = 0

    @property
    def read_timeout(self) -> float | None:
        return None

    async def initialize(self) -> None:
        pass

    async def shutdown(self) -> None:
        pass

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None, read_timeout=None,
                         write_timeout=None, connect_timeout=None, pool_timeout=None) -> tuple[int, bytes]:
        endpoint = url.rsplit("/", 1)[-1]
        params = request_data.parameters if request_data else {}
        result: object = True
        if endpoint == "getMe":
            result = BOT_USER
        elif endpoint in ("sendMessage", "editMessageText"):
            self._print(params.get("text", ""))
            self._message_id += 1
            result = {"message_id": self._message_id, "date": int(time.time()), "text": params.get("text", ""),
                      "chat": {"id": params.get("chat_id", CHAT_ID), "type": "private"}, "from": BOT_USER}
        elif endpoint == "answerInlineQuery":
            results = params.get("results") or []
            if isinstance(results, str):
                results = json.loads(results)
            if not results:
                self._print("(no results)")
            for i, r in enumerate(results, 1):
                content = r.get("input_message_content", {}).get("message_text", "")
                self._print(f"[{i}] {r.get('title', '')}\n{content}")
        elif endpoint == "getUpdates":
            result = []
        return 200, json.dumps({"ok": True, "result": result}).encode()

    def _print(self, body: str) -> None:
        self.out.write(body.rstrip() + "\n\n")
        self.out.flush()


def line_to_update(line: str, n: int, lang: str) -> dict:
    """A typed line -> Bot API update JSON: `@bot query` is an inline query, anything else a message."""
    user = {"id": CHAT_ID, "is_bot": False, "first_name": "you", "language_code": lang}
    if line.startswith("@"):
        query = line.split(maxsplit=1)[1] if len(line.split(maxsplit=1)) > 1 else ""
        return {"update_id": n, "inline_query": {"id": str(n), "from": user, "query": query, "offset": ""}}
    message = {"message_id": n, "date": int(time.time()), "chat": {"id": CHAT_ID, "type": "private", "first_name": "you"},
               "from": user, "text": line}
    if line.startswith("/"):
        head = line.split(maxsplit=1)[0]
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(head)}]
    return {"update_id": n, "message": message}


def _reader(stdin: TextIO) -> asyncio.Queue:
    """Lines of `stdin` ("" at the end) from a daemon thread, so Ctrl-C never waits for a pending read."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue()

    def read() -> None:
        while True:
            try:
                line = stdin.readline()
            except (OSError, ValueError):
                line = ""
            loop.call_soon_threadsafe(queue.put_nowait, line)
            if not line:
                return

    threading.Thread(target=read, name="console-stdin", daemon=True).start()
    return queue


async def chat(settings: Settings, services: Services, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout,
               lang: str = "ru", plugins: tuple[Plugin, ...] = ()) -> int:
    """Read lines until end of input, answering each through the bot's own handlers; -> exit status."""
    settings = settings.model_copy(update={"heartbeat_file": None})
    services.settings = settings
    services.generator.processes = 0  # one person typing: a thread starts faster than a worker process
    app = build_application(settings, services, plugins, request=ConsoleRequest(stdout), token=CONSOLE_TOKEN)
    interactive = stdin.isatty()
    lines = _reader(stdin)
    await app.initialize()
    try:
        await app.post_init(app)
        if interactive:
            names = ", ".join(f"/{n}" for n in services.names)
            stdout.write(f"{names} — /help for more, @bot {services.names[0]} for inline mode, Ctrl-D to quit\n\n")
        n = 0
        while True:
            if interactive:
                stdout.write("> ")
                stdout.flush()
            line = await lines.get()
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            n += 1
            await app.process_update(Update.de_json(line_to_update(line, n, lang), app.bot))
    finally:
        await app.post_stop(app)
        await app.shutdown()
    return 0
