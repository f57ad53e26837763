"""`python -m bot` as a real process: startup failures, SIGTERM during a burst, no token in any log line."""

from __future__ import annotations

import shutil
import signal
import subprocess

from .conftest import PYTHON, ROOT, TOKEN, bot_env
from .fakeapi import FakeBotAPI


def run_bot(env: dict, cwd, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "bot"], env=env, cwd=cwd, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one line, got:\n{proc.stderr}"
    assert lines[0].startswith("error: ")
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


def test_no_token_fails_fast_with_one_line(tiny_models, tmp_path):
    env = bot_env(None, tiny_models, tmp_path)
    proc = run_bot(env, tmp_path)
    assert proc.returncode == 2
    assert "BOT_TOKEN is not set" in one_error_line(proc)


def test_no_bundles_fails_fast_with_one_line(tmp_path):
    with FakeBotAPI() as api:
        (tmp_path / "empty").mkdir()
        proc = run_bot(bot_env(api, tmp_path / "empty", tmp_path), tmp_path)
        assert proc.returncode == 1
        assert "no bundles" in one_error_line(proc)
        assert not api.calls, "it should fail before talking to Telegram"


def test_broken_bundle_fails_fast_naming_the_file(tiny_models, tmp_path):
    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    with open(models / "beta" / "model.weights.h5", "ab") as f:
        f.write(b"\0")
    with FakeBotAPI() as api:
        proc = run_bot(bot_env(api, models, tmp_path), tmp_path)
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "broken bundle" in line and "model.weights.h5" in line and "sha256" in line


def test_a_model_the_runtime_cannot_run_fails_before_telegram_with_one_line(tiny_models, tmp_path):
    # its files match the manifest, so only loading the model finds it: the workers do (the bot process leaves
    # the models to them), and the bot waits for their verdict before it talks to Telegram
    import json

    from charlm.bundle import sha256_file

    models = tmp_path / "models"
    shutil.copytree(tiny_models, models)
    beta = models / "beta"
    spec = json.loads((beta / "model.json").read_text())
    spec["config"]["layers"][2]["class_name"] = "Bidirectional"
    (beta / "model.json").write_text(json.dumps(spec))
    manifest = json.loads((beta / "manifest.json").read_text())
    manifest["files"]["model.json"] = sha256_file(beta / "model.json")
    (beta / "manifest.json").write_text(json.dumps(manifest))
    with FakeBotAPI() as api:
        proc = run_bot(bot_env(api, models, tmp_path, GENERATION_PROCESSES="2"), tmp_path)
        assert not api.calls, "it should fail before talking to Telegram"
    assert proc.returncode == 1
    line = one_error_line(proc)
    assert "broken bundle" in line and "model.json" in line and "Bidirectional" in line


def test_rejected_token_ends_with_one_clear_line(tiny_models, tmp_path):
    with FakeBotAPI(token="999:other") as api:
        proc = run_bot(bot_env(api, tiny_models, tmp_path), tmp_path)
    assert proc.returncode == 1
    assert "rejected BOT_TOKEN" in one_error_line(proc)
    assert TOKEN not in proc.stderr


def test_sigterm_during_a_burst_answers_every_accepted_update(tiny_models, tmp_path):
    with FakeBotAPI() as api:
        proc = subprocess.Popen([PYTHON, "-m", "bot"], env=bot_env(api, tiny_models, tmp_path), cwd=tmp_path,
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            api.wait_for(lambda: api.calls_of("getUpdates"), 60, "the bot to poll")
            api.fail("sendMessage", status=0, delay=0.3, times=1000)  # replies take a while: many in flight
            chats = {api.send_text(2000 + i, "/alpha" if i % 2 else "/beta"): 2000 + i for i in range(40)}
            api.wait_for(lambda: len(api.messages) >= 3, 30, "the first replies")
            proc.send_signal(signal.SIGTERM)
            at_signal = len(api.messages)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 0, err
        assert at_signal < len(chats), "the burst was over before SIGTERM; the test shows nothing"
        answered = {m["chat"]["id"] for m in api.messages}
        accepted = [uid for uid in chats if uid < api.confirmed]  # the bot confirmed it took them
        assert len(accepted) > at_signal
        missing = [chats[uid] for uid in accepted if chats[uid] not in answered]
        assert not missing, f"accepted but never answered: {missing}"
        # the rest were never confirmed, so Telegram keeps them for the next start: nothing is lost
        pending = {u["update_id"] for u in api._updates}
        assert all(uid in pending or chats[uid] in answered for uid in chats)
        assert len(api.sent()) == len(answered), "an update was answered twice"


def test_debug_log_never_shows_the_token(tiny_models, tmp_path):
    with FakeBotAPI() as api:
        proc = subprocess.Popen([PYTHON, "-m", "bot"], env=bot_env(api, tiny_models, tmp_path, LOG_LEVEL="DEBUG"),
                                cwd=tmp_path, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        try:
            api.wait_for(lambda: api.calls_of("getUpdates"), 60, "the bot to poll")
            api.fail("sendMessage", status=500)  # an error path with a traceback
            api.send_text(3001, "/alpha")
            api.send_text(3002, "/start")
            api.send_inline(3003, "beta")
            api.wait_for(lambda: api.sent(3001) and api.sent(3002) and api.calls_of("answerInlineQuery"), 30)
            proc.send_signal(signal.SIGTERM)
            out, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0
    assert "DEBUG" in out and "sendMessage" in out  # it did log at DEBUG
    secret = TOKEN.split(":", 1)[1]
    assert TOKEN not in out and secret not in out
    assert "[REDACTED]" in out  # the request URLs were logged, scrubbed


def test_the_bot_never_imports_tensorflow(tmp_path):
    code = ("import bot.app, bot.__main__, bot.console, charlm; import sys; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'training')]; "
            "assert not bad, bad")
    subprocess.run([PYTHON, "-c", code], check=True, cwd=ROOT, timeout=60)
