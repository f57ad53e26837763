"""bench/replicas.py's bookkeeping: reading nginx's access log and the routing-by-chat check; and that the nginx
config it measures is the one docs/scaling.md shows (and that nginx accepts it, where nginx is installed)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bench.replicas import NGINX_LOCATION, NGINX_ROUTING, nginx_conf, parse_access_log, replicas_per_chat, split_chats

ROOT = Path(__file__).resolve().parents[1]


def test_a_chat_that_reached_two_replicas_is_counted():
    log = [
        "1796122646.427 1 chat=33 up=127.0.0.1:5001 status=200 up_status=200",
        "1796122646.428 2 chat=231 up=127.0.0.1:5002 status=200 up_status=200",
        "1796122646.485 3 chat=33 up=127.0.0.1:5001 status=200 up_status=200",
        # nginx moved on from the first replica (refused) to the second: the update reached the second
        "1796122647.001 4 chat=33 up=127.0.0.1:5001, 127.0.0.1:5002 status=200 up_status=502, 200",
        "1796122647.002 5 chat=- up=- status=403 up_status=-",
        "1796122647.003 - chat=- up=127.0.0.1:5001 status=200 up_status=200",  # not the bench's: no update id
    ]
    routed = parse_access_log(log)
    assert [r.update for r in routed] == [1, 2, 3, 4, 5]
    assert routed[3].upstreams == ["127.0.0.1:5001", "127.0.0.1:5002"]
    assert routed[4].key == "" and routed[4].upstreams == []
    chat_of = {1: 33, 2: 231, 3: 33, 4: 33}
    per_chat = replicas_per_chat((chat_of[r.update], r.upstreams[-1]) for r in routed if r.upstreams)
    assert per_chat == {33: {"127.0.0.1:5001", "127.0.0.1:5002"}, 231: {"127.0.0.1:5002"}}
    assert split_chats(per_chat) == 1
    assert split_chats(replicas_per_chat([(33, "a"), (33, "a"), (231, "b")])) == 0


def test_the_docs_show_the_nginx_config_the_bench_measures():
    docs = (ROOT / "docs" / "scaling.md").read_text(encoding="utf-8")
    for line in (NGINX_ROUTING + "\n" + NGINX_LOCATION).splitlines():
        if "SERVERS" not in line:
            assert line.strip() in docs, f"docs/scaling.md lacks the line of bench/replicas.py's nginx config: {line.strip()}"


@pytest.mark.skipif(not (shutil.which("nginx") or Path("/usr/sbin/nginx").is_file()), reason="nginx is not installed")
def test_nginx_accepts_the_config(tmp_path):
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    (tmp_path / "nginx.conf").write_text(nginx_conf(tmp_path, 8080, [8081, 8082]))
    p = subprocess.run([nginx, "-t", "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
