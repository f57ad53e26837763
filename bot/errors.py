"""The bot's own error type: a reason not to start, said in one line."""

from __future__ import annotations


class StartupError(Exception):
    """The bot cannot start; the message is the one line the user sees."""
