"""`--strategy mirrored` and `--strategy multiworker` without GPUs: two logical CPU devices, two local workers."""

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.bot.conftest import bot_env
from tests.training.test_train import TINY, env, run

pytestmark = pytest.mark.timeout(1800)
TIMEOUT = 900  # seconds for one training process: under load a first traced step has taken 80 s here
# 2 epochs of 6 batches, no dropout (replicas draw their dropout masks differently from one device)
SMALL = [*TINY[:-2], "--dropout", "0", "--epochs", "2", "--steps-per-epoch", "6", "--culture", "toy"]
# Summing a batch's gradients in two halves changes only float rounding: measured here, the weights after
# 5 steps differ by 3e-8 and the printed bits/char not at all. The tolerance is far below what a wrong
# split shows (a loss divided by the local instead of the global batch, or a per-replica clip: 0.01-0.02).
TOLERANCE = 2e-4  # bits/char

# A process with two logical CPU devices (set before TensorFlow touches a device), then the real CLI.
TWO_CPUS = textwrap.dedent("""
    import sys
    from training.cli import quiet_tensorflow
    quiet_tensorflow()
    import tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    from training.train import main
    for argv in sys.argv[1:]:
        status = main(argv.split())
        if status:
            sys.exit(status)
""")


def history(run_dir: Path) -> list[dict]:
    return json.loads((run_dir / "checkpoint" / "state.json").read_text())["history"]


def test_mirrored_over_two_cpus_matches_one_device_and_resumes(tmp_path, corpus):
    run([*SMALL, "--run-dir", "one", "--no-export"], tmp_path)
    # the mirrored run stops after epoch 1 and resumes (a new Trainer on the checkpoint) for epoch 2
    first = " ".join([*SMALL, "--run-dir", "two", "--no-export", "--strategy", "mirrored", "--epochs", "1"])
    p = subprocess.run([sys.executable, "-c", TWO_CPUS, first, first.replace("--epochs 1", "--epochs 2") + " --resume"],
                       cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=2 * TIMEOUT)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("strategy mirrored: 2 replicas") == 2, p.stdout
    assert "4 windows each per batch of 8" in p.stdout and "resumed from" in p.stdout
    one, two = history(tmp_path / "one"), history(tmp_path / "two")
    assert [h["epoch"] for h in two] == [1, 2]
    for a, b in zip(one, two):
        assert abs(a["train_bpc"] - b["train_bpc"]) <= TOLERANCE, (one, two)
        assert abs(a["val_bpc"] - b["val_bpc"]) <= TOLERANCE, (one, two)
    assert one[1]["train_bpc"] < one[0]["train_bpc"] - 0.05  # it learns: the comparison is not of two untrained runs


def test_a_batch_that_does_not_split_is_one_line(tmp_path, corpus):
    p = subprocess.run([sys.executable, "-c", TWO_CPUS, " ".join([*SMALL, "--batch-size", "7", "--strategy", "mirrored"])],
                       cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [
        "error: --batch-size 7 does not split evenly across 2 replicas (/device:CPU:0, /device:CPU:1); use a multiple of 2"]


def test_multiworker_without_tf_config_is_one_line(tmp_path, corpus):
    e = env()
    e.pop("TF_CONFIG", None)
    p = subprocess.run([sys.executable, "-m", "training.train", *SMALL, "--strategy", "multiworker"], cwd=tmp_path, env=e,
                       capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "needs TF_CONFIG" in p.stderr


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_workers(tmp_path: Path) -> list[tuple[subprocess.Popen, tuple[str, str]]]:
    """Train SMALL on two local workers (ports free now) in tmp_path; -> (process, (stdout, stderr)) each."""
    cluster = {"worker": [f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"]}
    args = [sys.executable, "-m", "training.train", *SMALL, "--strategy", "multiworker", "--models-dir", "models"]
    procs = []
    for i in range(2):
        e = {**env(), "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})}
        procs.append(subprocess.Popen(args, cwd=tmp_path, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        outs = [p.communicate(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:  # a worker whose peer died waits in a collective forever: bounded here
            if p.poll() is None:
                p.kill()
                p.wait()
    return list(zip(procs, outs))


# What TensorFlow's coordination service says when a worker was too slow to answer (a machine under load,
# not a fault of the run): the whole two-worker run is tried once more on exactly these.
LOAD_FAILURES = ("heartbeat timeout", "UNAVAILABLE")


def test_the_coordination_service_waits_out_a_loaded_machine(tmp_path):
    """The heartbeat timeout is HEARTBEAT_TIMEOUT_S, not TensorFlow's 10 s that a loaded machine missed."""
    code = textwrap.dedent("""
        from training.cli import quiet_tensorflow
        quiet_tensorflow()
        from tensorflow.python.eager import context
        from training.distribute import place
        place("multiworker", 8)
        print(context.context().coordination_service.heartbeat_timeout_in_ms)
    """)
    e = {**env(), "TF_CONFIG": json.dumps({"cluster": {"worker": [f"127.0.0.1:{free_port()}"]},
                                           "task": {"type": "worker", "index": 0}})}
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=e, capture_output=True, text=True, timeout=TIMEOUT)
    assert p.returncode == 0, p.stderr[-2000:]
    from training.distribute import HEARTBEAT_TIMEOUT_S

    assert HEARTBEAT_TIMEOUT_S >= 120 and int(p.stdout.split()[-1]) == HEARTBEAT_TIMEOUT_S * 1000


def test_two_workers_train_one_bundle_the_bot_serves(tmp_path, corpus):
    results = two_workers(tmp_path)
    if any(p.returncode and any(f in err for f in LOAD_FAILURES) for p, (_, err) in results):
        for leftover in ("runs", "models"):  # (the corpus stays)
            shutil.rmtree(tmp_path / leftover, ignore_errors=True)
        results = two_workers(tmp_path)
    procs, outs = [p for p, _ in results], [o for _, o in results]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-2000:]
    chief, other = outs[0][0], outs[1][0]
    assert "2 replicas (2 workers, this one worker 0 (chief" in chief and "installed (there was none)" in chief
    assert "the chief writes" in other and "installed" not in other and "bundle written" not in other
    # both workers trained the same model: the same epoch lines (seconds aside)
    epochs = [[l.rsplit(",", 1)[0] for l in o.splitlines() if l.startswith("epoch ")] for o in (chief, other)]
    assert len(epochs[0]) == 2 and epochs[0] == epochs[1]
    assert [p.name for p in (tmp_path / "models").iterdir()] == ["toy"]
    manifest = json.loads((tmp_path / "models" / "toy" / "manifest.json").read_text())
    assert manifest["training"]["strategy"] == {"name": "multiworker", "replicas": 2}
    check = subprocess.run([sys.executable, "-m", "bot", "check"], cwd=tmp_path, env=bot_env(None, tmp_path / "models", tmp_path),
                           capture_output=True, text=True, timeout=TIMEOUT)
    assert check.returncode == 0 and check.stdout.startswith("ok   toy:"), check.stdout + check.stderr
