#!/usr/bin/env bash
# Before a release: build both images on a real Docker engine and show that the bot image works as deployed.
#
#   ./scripts/docker-smoke.sh              build both images, run the bot image's checks, the train image's --help,
#                                          validate compose.yaml (if a Compose is installed)
#   ./scripts/docker-smoke.sh --no-train   skip the training image (it installs TensorFlow: minutes)
#
# Needs a running engine (`docker info` works; on the project's dev machine: ../shared/tools/docker-engine)
# and the test venv (.venv, made by ./scripts/test.sh) for the fake Bot API of tests/bot/fakeapi.py, which
# scripts/docker_smoke.py starts on 127.0.0.1: the containers use host networking to reach it. What is shown
# and why: scripts/docker_smoke.py; its output as of the last release: docs/docker.md.
# Leaves the images `proverbs` and `proverbs-train` (override: BOT_IMAGE, TRAIN_IMAGE); removes its containers
# and volume (proverbs-smoke-*). Exit 0 when every check passed; otherwise 1, with a line saying which.
set -euo pipefail
cd "$(dirname "$0")/.."
BOT_IMAGE=${BOT_IMAGE:-proverbs}
TRAIN_IMAGE=${TRAIN_IMAGE:-proverbs-train}
# `docker build --network host`: pip reaches the index on engines without a default bridge (this project's dev
# machine has none); on an ordinary engine it changes nothing. DOCKER_BUILD_NETWORK=default to drop it.
NET=${DOCKER_BUILD_NETWORK:-host}
train=1
[[ ${1:-} == --no-train ]] && train=0

fail() { echo "docker-smoke: FAILED: $*" >&2; exit 1; }
step() { printf '\n== %s\n' "$*"; }
size() { docker image inspect -f '{{.Size}}' "$1" | awk '{printf "%.0f MB", $1 / 1e6}'; }

docker info >/dev/null 2>&1 || fail "no Docker engine answers (docker info); start one (here: ../shared/tools/docker-engine)"
PY=.venv/bin/python
[[ -x $PY ]] || PY=python3
"$PY" -c 'import aiohttp' 2>/dev/null || fail "$PY lacks aiohttp (the fake Bot API's): run ./scripts/test.sh once to make .venv"
echo "docker-smoke: $(docker version -f 'engine {{.Server.Version}}, client {{.Client.Version}}'), storage $(docker info -f '{{.Driver}}')"

step "docker build -t $BOT_IMAGE ."
t=$SECONDS
docker build --network "$NET" -q -t "$BOT_IMAGE" . >/dev/null || fail "docker build -t $BOT_IMAGE . (run it without -q to see why)"
echo "built $BOT_IMAGE in $((SECONDS - t)) s: $(size "$BOT_IMAGE")"
docker image inspect python:3.11-slim >/dev/null 2>&1 && echo "(its base, python:3.11-slim: $(size python:3.11-slim))"
user=$(docker image inspect -f '{{.Config.User}}' "$BOT_IMAGE")
check=$(docker image inspect -f '{{json .Config.Healthcheck.Test}}' "$BOT_IMAGE")
echo "image user $user; HEALTHCHECK $check"
[[ $user == 10001:10001 ]] || fail "$BOT_IMAGE runs as '$user', not 10001:10001"
[[ $check == *'"bot","health"'* ]] || fail "$BOT_IMAGE has no HEALTHCHECK running 'python -m bot health' (buildah without --format docker?)"

step "the bot image against the fake Bot API (scripts/docker_smoke.py)"
"$PY" scripts/docker_smoke.py "$BOT_IMAGE"

if ((train)); then
  step "docker build -t $TRAIN_IMAGE --target train ."
  t=$SECONDS
  docker build --network "$NET" -q -t "$TRAIN_IMAGE" --target train . >/dev/null \
    || fail "docker build --target train (run it without -q to see why)"
  echo "built $TRAIN_IMAGE in $((SECONDS - t)) s: $(size "$TRAIN_IMAGE")"
  out=$(docker run --rm --network none --read-only --tmpfs /tmp "$TRAIN_IMAGE" python -m training.train --help 2>&1) \
    || fail "python -m training.train --help in $TRAIN_IMAGE: $out"
  echo "$out" | head -n 3
  tf=$(docker run --rm --network none "$TRAIN_IMAGE" python -c 'import tensorflow as tf, os; print(f"TensorFlow {tf.__version__}, uid {os.getuid()}")' 2>&1 | tail -n 1)
  [[ $tf == "TensorFlow "*", uid 10001" ]] || fail "TensorFlow does not import in $TRAIN_IMAGE as uid 10001: $tf"
  echo "$tf"
fi

step "compose.yaml"
if docker compose version >/dev/null 2>&1; then compose=(docker compose)
elif command -v docker-compose >/dev/null; then compose=(docker-compose)
else compose=()
fi
if ((${#compose[@]})); then
  echo "$("${compose[@]}" version | head -n 1)"
  made_env=0
  [[ -e .env ]] || { : >.env; made_env=1; }  # Compose reads .env; an empty one is what a training-only clone has
  ok=1
  "${compose[@]}" config -q || ok=0
  "${compose[@]}" --profile train config -q || ok=0
  ((made_env)) && rm -f .env
  ((ok)) || fail "compose.yaml does not validate with ${compose[*]}"
  echo "compose.yaml: valid (${compose[*]} config, with and without --profile train)"
else
  echo "no Compose here (docker compose / docker-compose): compose.yaml not checked"
fi
echo
echo "docker-smoke: all checks passed"
