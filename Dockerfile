# Proverb bot images.
#
#   docker build -t proverbs .                        the bot (default, last stage): no TensorFlow
#   docker build -t proverbs-train --target train .   training: TensorFlow + training/
#
# Stages: base (Python, environment, the non-root user) -> requirements (read from pyproject.toml) ->
# bot-deps (a venv with the bot's dependencies only) and train-deps (a venv with the `train` extra too)
# -> train (the training image) and bot (the last stage, so the default: the bot-deps venv + the code).

# The base is a build argument so another Python (python:3.12-slim) or a mirror can stand in for it.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    LANG=C.UTF-8 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
# A fixed numeric uid/gid: `runAsNonRoot` can verify it, and a host folder can be chowned to it.
RUN groupadd --system --gid 10001 bot \
 && useradd --system --uid 10001 --gid bot --home-dir /app --no-create-home --shell /usr/sbin/nologin bot
WORKDIR /app

# requirements-bot.txt: [project].dependencies of pyproject.toml; requirements-train.txt: plus the `train`
# extra. Read from pyproject.toml alone, so editing code does not reinstall the dependencies.
FROM base AS requirements
COPY pyproject.toml /tmp/pyproject.toml
RUN python -c "import importlib, sys; toml = importlib.import_module('tomllib' if sys.version_info >= (3, 11) else 'pip._vendor.tomli'); p = toml.load(open('/tmp/pyproject.toml', 'rb'))['project']; bot = p['dependencies']; open('/tmp/requirements-bot.txt', 'w').write('\\n'.join(bot) + '\\n'); open('/tmp/requirements-train.txt', 'w').write('\\n'.join(bot + p['optional-dependencies']['train']) + '\\n')"

FROM base AS bot-deps
COPY --from=requirements /tmp/requirements-bot.txt /tmp/
# Fail the build if TensorFlow or Keras ever sneak into the bot's dependencies. Then, in the same layer so
# they cost nothing, drop what the running bot never uses: pip and setuptools, and numpy's own test suite
# (26 MB of the venv's 154 MB).
RUN python -m venv /opt/venv \
 && pip install --no-cache-dir -r /tmp/requirements-bot.txt \
 && if pip show tensorflow tensorflow-cpu keras >/dev/null 2>&1; then echo "TensorFlow/Keras in the bot's venv" >&2; exit 1; fi \
 && pip uninstall --yes --quiet pip setuptools \
 && find /opt/venv/lib -path '*/site-packages/numpy/*' -type d -name tests -prune -exec rm -rf {} +

FROM base AS train-deps
COPY --from=requirements /tmp/requirements-train.txt /tmp/
RUN python -m venv /opt/venv \
 && pip install --no-cache-dir -r /tmp/requirements-train.txt

# Training: run it in your clone, mounted at /project, as yourself, so that what it writes (data/, runs/,
# models/, base/) is yours:
#   docker run --rm --user "$(id -u):$(id -g)" -v "$PWD:/project" proverbs-train \
#     python -m training.train --culture kurdish --corpus kurdish.txt --init-from base
# fortunes-ru: the sayings `python -m training.corpora fortunes` (and so the recipe) builds a corpus from.
FROM base AS train
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends fortunes-ru \
 && rm -rf /var/lib/apt/lists/*
COPY --from=train-deps /opt/venv /opt/venv
COPY charlm/ charlm/
COPY training/ training/
# Keras and matplotlib want a writable config dir; any uid (--user) can write /tmp. PYTHONPATH: the code in
# /app runs from any working folder (a mounted clone's own code, first on the path, takes precedence).
ENV MPLCONFIGDIR=/tmp/matplotlib \
    KERAS_HOME=/tmp/keras \
    TF_CPP_MIN_LOG_LEVEL=3 \
    PYTHONPATH=/app
# No VOLUME: an anonymous volume would only hide a forgotten -v (what training writes would vanish with the
# container). Without a mount, /project is not writable and training says so before the first batch.
WORKDIR /project
USER 10001:10001
# SIGTERM (docker stop) makes training save a checkpoint and exit; give it time: docker stop -t 120.
STOPSIGNAL SIGTERM
CMD ["python", "-m", "training.train", "--help"]

# The bot (the default stage): numpy, h5py, python-telegram-bot, pydantic-settings, SQLAlchemy; no TensorFlow.
FROM base AS bot
COPY --from=bot-deps /opt/venv /opt/venv
RUN mkdir -p /data && chown bot:bot /data
COPY charlm/ charlm/
COPY bot/ bot/
COPY models/ models/
# MODELS_DIR: mount another folder here (or set it) to add cultures without rebuilding.
# DATA_DIR: the bot's own state (the subscriptions database); a volume, writable by the bot user.
# HEARTBEAT_FILE: the running bot rewrites it; HEALTHCHECK reads its age (no Telegram call).
ENV MODELS_DIR=/app/models \
    DATA_DIR=/data \
    HEARTBEAT_FILE=/tmp/proverb-bot.heartbeat
VOLUME ["/data"]
USER 10001:10001
# The webhook server's port (WEBHOOK_PORT), used only when WEBHOOK_URL is set.
EXPOSE 8443
# Exec form: python is PID 1 and gets docker stop's SIGTERM itself; python-telegram-bot then stops
# polling, finishes the updates in hand and exits.
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=90s --retries=3 \
    CMD ["python", "-m", "bot", "health"]
CMD ["python", "-m", "bot"]
