#!/usr/bin/env bash
# Set up a virtual environment with everything (bot, training, dev tools) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[train,dev]'
.venv/bin/python -m pip install -q --no-deps "tf-keras==2.21.*"  # real Keras 2 for the legacy-import tests only
export TF_CPP_MIN_LOG_LEVEL=3
exec .venv/bin/python -m pytest "$@"
