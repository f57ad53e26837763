#!/usr/bin/env bash
# Set up a virtual environment with everything (bot, training, dev tools) and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# pip only when pyproject.toml differs from the one last installed (kept in .venv): reinstalling an unchanged
# project took ~14 s of every run. PYTHONWARNINGS=ignore: no setuptools "Editable installation" banner.
STAMP=.venv/.installed-pyproject.toml
if ! cmp -s pyproject.toml "$STAMP"; then
  echo "setting up .venv (pyproject.toml changed since the last install)" >&2
  export PYTHONWARNINGS=ignore
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  .venv/bin/python -m pip install -q -e '.[train,dev]'
  .venv/bin/python -m pip install -q --no-deps "tf-keras==2.21.*"  # real Keras 2 for the legacy-import tests only
  cp pyproject.toml "$STAMP"
  unset PYTHONWARNINGS
fi
export TF_CPP_MIN_LOG_LEVEL=3
exec .venv/bin/python -m pytest "$@"
