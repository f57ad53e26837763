"""Daily proverb subscriptions: the database (SQLAlchemy + Alembic), the commands, and delivery on
python-telegram-bot's JobQueue. bot.app builds and registers them; `python -m bot.subscriptions` migrates by hand."""
