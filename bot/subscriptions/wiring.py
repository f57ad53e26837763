"""Wiring: the scheduler in bot_data, the commands, and the startup/shutdown hooks."""

from __future__ import annotations

from datetime import datetime
from typing import Callable

from telegram.ext import Application

from ..errors import StartupError
from ..services import Services
from . import handlers
from .scheduler import Scheduler
from .store import database_url, prepare
from .timing import utcnow


def register(app: Application, services: Services, clock: Callable[[], datetime] | None = None) -> None:
    """Add the subscriptions to `app`: migrate the database now; it opens for good in post_init."""
    if app.job_queue is None:
        raise StartupError("daily subscriptions need python-telegram-bot's JobQueue: "
                           "pip install 'python-telegram-bot[job-queue]'")
    settings = services.settings
    url = database_url(settings.data_dir, settings.database_url)
    scheduler = Scheduler(
        url, services, clock or utcnow,
        poll_interval=settings.subscription_poll_interval, concurrency=settings.subscription_concurrency,
        chunk=settings.batch_size, delivery=settings.subscription_delivery,
    )
    app.bot_data["subscriptions"] = scheduler
    try:
        prepare(url)  # migrate now, before the bot talks to Telegram
    except StartupError as e:  # a corrupt, full or read-only database: proverbs still flow
        scheduler.degrade(str(e))
    handlers.register(app, services)
    services.on_startup.append(scheduler.start)
    services.on_shutdown.append(scheduler.stop)
