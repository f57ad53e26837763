"""`python -m bot chat`: the same Application and handlers as on Telegram, with the terminal as the chat.

Each line typed becomes a Telegram update (a message, an inline query when it starts with `@`, a press of
the button with that number under the last proverb when it is a number) and
goes through `Application.process_update`; the Bot API calls the handlers make are answered here by
ConsoleRequest, which prints messages instead of sending them. No token, no network.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import queue
import sys
import threading
import time
from pathlib import Path
from typing import Awaitable, Callable, TextIO

from telegram import Update
from telegram.request import BaseRequest, RequestData

from .app import build_application
from .commands import command_entity_length
from .settings import BotSettings

CONSOLE_TOKEN = "0:console"  # never leaves the process: ConsoleRequest answers every call
# "bot": no real bot can be called that (Telegram's bot names are 5 to 32 characters), so the help's
# "@bot alpha" reads as a placeholder, and here it works as typed (any "@word query" line is an inline query)
BOT_USER = {"id": 1, "is_bot": True, "first_name": "Proverbs", "username": "bot",
            "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": True}
CHAT_ID = 10
# the console's own database (votes, subscriptions) in DATA_DIR: what is typed here never reaches the bot's
# database (DATA_DIR/bot.sqlite3 or DATABASE_URL), so `python -m bot stats` counts Telegram readers only, and
# the bot never sends a daily proverb to the console's made-up chat
CONSOLE_DB = "console.sqlite3"
SHARE_NOTE = {
    "ru": "↗ {command}\n(по этой команде бот пришлёт ту же притчу — здесь или в чате с ботом; в Telegram кнопка "
          "предлагает притчу в любом чате)",
    "en": "↗ {command}\n(this command brings the same parable back — here or in a chat with the bot; in Telegram the "
          "button offers the parable in any chat)",
}


class ConsoleRequest(BaseRequest):
    """A Bot API "server" in the process: sendMessage prints (with its buttons), the rest answers what Telegram would."""

    def __init__(self, out: TextIO):
        self.out = out
        self._message_id = 0
        self.keyboard_message: dict | None = None  # the last message with buttons: a number typed presses one

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
            markup = params.get("reply_markup")
            if isinstance(markup, str):
                markup = json.loads(markup)
            self._print(params.get("text", "") + ("\n\n" + keyboard_line(markup) if markup else ""))
            self._message_id += 1
            result = {"message_id": self._message_id, "date": int(time.time()), "text": params.get("text", ""),
                      "chat": {"id": params.get("chat_id", CHAT_ID), "type": "private"}, "from": BOT_USER}
            if markup:
                result["reply_markup"] = markup
                self.keyboard_message = result
            if endpoint == "editMessageText" and "inline_message_id" in params:
                result = True
        elif endpoint == "answerCallbackQuery":
            if params.get("text"):
                self._print(f"({params['text']})")
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


def buttons_of(markup: dict | None) -> list[dict]:
    """The buttons of an inline keyboard, row by row, left to right."""
    return [b for row in (markup or {}).get("inline_keyboard", []) for b in row]


def keyboard_line(markup: dict) -> str:
    """`[1 🔄 Ещё]  [2 👍]  [3 👎]  [4 ↗ Поделиться]`: the buttons, numbered for typing."""
    return "  ".join(f"[{i} {b['text']}]" for i, b in enumerate(buttons_of(markup), 1))


def line_to_update(line: str, n: int, lang: str) -> dict:
    """A typed line -> Bot API update JSON: `@bot query` is an inline query, anything else a message."""
    user = {"id": CHAT_ID, "is_bot": False, "first_name": "you", "language_code": lang}
    if line.startswith("@"):
        query = line.split(maxsplit=1)[1] if len(line.split(maxsplit=1)) > 1 else ""
        return {"update_id": n, "inline_query": {"id": str(n), "from": user, "query": query, "offset": ""}}
    message = {"message_id": n, "date": int(time.time()), "chat": {"id": CHAT_ID, "type": "private", "first_name": "you"},
               "from": user, "text": line}
    length = command_entity_length(line)  # marked as Telegram marks it
    if length:
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": length}]
    return {"update_id": n, "message": message}


def press_to_update(message: dict, data: str, n: int, lang: str) -> dict:
    """A press of the button with callback `data` under `message` -> Bot API update JSON."""
    user = {"id": CHAT_ID, "is_bot": False, "first_name": "you", "language_code": lang}
    return {"update_id": n, "callback_query": {"id": str(n), "from": user, "message": message,
                                               "chat_instance": str(CHAT_ID), "data": data}}


QUIT = ("/quit", "/exit")
HISTORY = Path.home() / ".proverb_bot_history"


def _line_editing() -> None:
    """Line editing and history (the Up arrow) for input(), kept in ~/.proverb_bot_history; none where readline is missing."""
    try:
        import readline
    except ImportError:  # Windows without pyreadline: plain input
        return
    readline.set_history_length(1000)
    with contextlib.suppress(OSError):
        readline.read_history_file(HISTORY)

    def save() -> None:
        with contextlib.suppress(OSError):
            readline.write_history_file(HISTORY)

    atexit.register(save)


def _reader(stdin: TextIO, interactive: bool) -> Callable[[str], Awaitable[str]]:
    """-> `await next_line(prompt)`: the next line ("" at the end), read by a daemon thread, so Ctrl-C never
    waits for a pending read. On a terminal it is read with input() (line editing, history) and the prompt
    is shown only once the previous line is answered."""
    loop = asyncio.get_running_loop()
    asks: queue.Queue = queue.Queue()

    def read() -> None:
        while True:
            prompt, future = asks.get()
            try:
                line = input(prompt) + "\n" if interactive else stdin.readline()
            except EOFError:
                line = ""
            except (OSError, ValueError):
                line = ""
            with contextlib.suppress(RuntimeError):  # the loop is closed: we are exiting
                loop.call_soon_threadsafe(lambda f=future, v=line: f.done() or f.set_result(v))
            if not line:
                return

    threading.Thread(target=read, name="console-stdin", daemon=True).start()

    async def next_line(prompt: str) -> str:
        future = loop.create_future()
        asks.put((prompt, future))
        return await future

    return next_line


def console_settings(settings: BotSettings) -> BotSettings:
    """The settings for one person at a keyboard: no heartbeat, no per-user limit, generation in a thread (it
    starts faster than a worker process), and the console's own database, DATA_DIR/console.sqlite3."""
    database = f"sqlite+aiosqlite:///{Path(settings.data_dir).resolve() / CONSOLE_DB}"
    return settings.model_copy(update={"heartbeat_file": None, "user_rate_limit": 0, "generation_processes": 0,
                                       "database_url": database})


async def chat(settings: BotSettings, stdin: TextIO = sys.stdin, stdout: TextIO = sys.stdout, lang: str = "ru") -> int:
    """Read lines until end of input or /quit, answering each through the bot's own handlers; -> exit status.

    A number presses that button under the last message that has buttons. StartupError (one line) when the
    bot cannot be built (no bundles, a broken one).
    """
    console = ConsoleRequest(stdout)
    app = build_application(console_settings(settings), request=console, token=CONSOLE_TOKEN)
    names = app.parts.catalog.names
    interactive = stdin.isatty() and stdin is sys.stdin
    if interactive:
        _line_editing()
    next_line = _reader(stdin, interactive)
    await app.initialize()
    try:
        await app.post_init(app)
        if interactive:
            commands = ", ".join(f"/{n}" for n in names)
            stdout.write(f"{commands} — /help for more, @{app.bot.username} {names[0]} for inline mode; "
                         f"a number presses a button; /quit or Ctrl-D to leave\n"
                         f"(votes and subscriptions made here stay in {Path(settings.data_dir) / CONSOLE_DB}, "
                         f"apart from the bot's)\n\n")
        n = 0
        while True:
            line = await next_line("> " if interactive else "")
            if not line:
                break
            line = line.strip()
            if not line:
                continue
            if line.split()[0].lower() in QUIT:
                break
            n += 1
            update = _update_for(line, n, lang, console)
            if update is not None:
                await app.process_update(Update.de_json(update, app.bot))
    finally:
        await app.post_stop(app)
        await app.shutdown()
    return 0


def _update_for(line: str, n: int, lang: str, console: ConsoleRequest) -> dict | None:
    """The update a typed line stands for: a number presses a button of the last keyboard, the rest is a message."""
    if line.isdigit() and console.keyboard_message is not None:
        keys = buttons_of(console.keyboard_message.get("reply_markup"))
        i = int(line) - 1
        if not 0 <= i < len(keys):
            console._print(f"(there are buttons 1 to {len(keys)})" if lang == "en" else f"(кнопки: от 1 до {len(keys)})")
            return None
        key = keys[i]
        if "switch_inline_query" in key:  # [Share]: Telegram opens the inline query in a chat of your choice;
            # here there is no chat to choose: show what a reader would paste, the proverb's replay command
            console._print(SHARE_NOTE.get(lang, SHARE_NOTE["ru"]).format(command="/" + key["switch_inline_query"]))
            return None
        return press_to_update(console.keyboard_message, key["callback_data"], n, lang)
    return line_to_update(line, n, lang)
