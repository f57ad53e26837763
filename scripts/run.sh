#!/usr/bin/env bash
# Set up the bot's environment (no TensorFlow) and run the bot: with BOT_TOKEN set (environment or .env)
# it serves Telegram; without one it opens the console chat on the shipped models.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv-bot/bin/python ] || "$PY" -m venv .venv-bot
if [ ! -f .venv-bot/.installed ] || [ pyproject.toml -nt .venv-bot/.installed ]; then
  .venv-bot/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv-bot/bin/python -m pip install -q -e .
  touch .venv-bot/.installed
fi
exec .venv-bot/bin/python -m bot "$@"
