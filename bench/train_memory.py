"""Peak memory of training, side by side: our pipeline (one epoch, measured) and the ancestor's one-hot data prep.

    python bench/train_memory.py [CORPUS] [--steps-per-epoch N] [--quick] [--slice 0.02] [-- TRAIN OPTIONS ...]

CORPUS defaults to data/indian.txt (the largest reference corpus, ~461 K characters).

Ours: `python -m training.train --corpus CORPUS --epochs 1 --no-export` (training defaults, or the options
after `--`) runs in a child process with a temporary checkpoint folder: reading and splitting the corpus,
ids, the model, one epoch of training (or --steps-per-epoch batches), validation, the checkpoint. Its peak
RSS is the child's own `ru_maxrss` from os.wait4, TensorFlow included; a second child that only imports
TensorFlow and Keras shows how much of that is the framework.

The ancestor: every window one-hot encoded up front, X and y both (windows, 80, vocab) float64 (its
TimeDistributed recipe: y is X shifted by one character), windows every 3 characters of the whole file.
Its need is computed (windows × 80 × vocab × 8 bytes, twice), and measured: a child process builds exactly
those arrays for the first --slice of the file (capped at ~1 GB), its peak RSS minus that of the same
child with no windows gives bytes per window, extrapolated linearly to the whole file. The ancestor's
figure is data only, before any framework or model is loaded. For reference the table also computes the
script as published (lstm_for_generating_text.py: non-overlapping windows, step 80, int64 arrays).

Nothing here allocates more than ~1 GB; the whole run takes one training epoch (--quick: 5 batches).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WINDOW, STEP = 80, 3  # the ancestor's window and step
SLICE_CAP = 1.0e9  # bytes the measured slice of the ancestor's arrays may take
TARGET = 1.5e9  # issue 3: our peak under 1.5 GB

# The ancestor's preparation for the first `n` windows of `path` (X and y one-hot float64), run in a child.
ANCESTOR = r"""
import sys
import numpy as np
path, n = sys.argv[1], int(sys.argv[2])
data = open(path, encoding="utf-8").read()
chars = sorted(set(data))
index = {c: i for i, c in enumerate(chars)}
W, S, V = {window}, {step}, len(chars)
ids = np.array([index[c] for c in data[: (n - 1) * S + W + 1]] if n else [], dtype=np.int64)
X = np.zeros((n, W, V), dtype=np.float64)  # (windows, 80, vocab)
y = np.zeros((n, W, V), dtype=np.float64)  # (windows, 80, vocab): the next character at every position
if n:
    cols = np.arange(W)
    starts = np.arange(n) * S
    rows = np.arange(n)[:, None]
    X[rows, cols, ids[starts[:, None] + cols]] = 1.0  # writes every row of every window: all pages touched
    y[rows, cols, ids[starts[:, None] + cols + 1]] = 1.0
print(X.nbytes + y.nbytes)
""".replace("{window}", str(WINDOW)).replace("{step}", str(STEP))

FRAMEWORK = "import tensorflow, keras; print(0)"


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("corpus", nargs="?", default="data/indian.txt", help="UTF-8 corpus, one text per line")
    p.add_argument("--steps-per-epoch", type=int, default=0, help="cap our epoch at N batches (0: the whole epoch)")
    p.add_argument("--quick", action="store_true", help="smoke run: 5 batches, a 0.5%% slice for the ancestor")
    p.add_argument("--slice", type=float, default=0.02, help="share of the ancestor's windows really allocated")
    p.epilog = "Options after -- go to python -m training.train (e.g. -- --units 512 --batch-size 128)."
    argv = list(sys.argv[1:] if argv is None else argv)
    cut = argv.index("--") if "--" in argv else len(argv)
    a = p.parse_args(argv[:cut])
    a.train_args = argv[cut + 1 :]
    if a.quick:
        a.steps_per_epoch = a.steps_per_epoch or 5
        a.slice = min(a.slice, 0.005)
    return a


def peak_rss(cmd: list[str], echo: bool = False) -> tuple[int, str, float]:
    """Run `cmd`; -> (its peak RSS in bytes, its stdout, seconds). The rusage is this child's alone."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = []
    for line in proc.stdout:
        out.append(line)
        if echo and line.startswith(("corpus:", "memory:", "epoch")):  # training's own report, not TF's noise
            print("  | " + line.rstrip().rsplit("\r", 1)[-1], file=sys.stderr, flush=True)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.exit(f"error: {' '.join(cmd[:4])}… failed ({proc.returncode}): {''.join(out)[-800:]}")
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return usage.ru_maxrss * scale, "".join(out), time.perf_counter() - t0


def gb(x: float) -> str:
    return f"{x / 1e9:.2f} GB"


def main(argv=None) -> int:
    a = parse_args(argv)
    path = Path(a.corpus)
    if not path.is_file():
        sys.exit(f"error: {path}: no such file; pass the corpus path (e.g. data/indian.txt)")
    try:
        data = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        sys.exit(f"error: {path}: not UTF-8")
    V = len(set(data))
    n_full = len(range(0, len(data) - WINDOW, STEP))  # the ancestor's windows: range(0, len - maxlen, step)
    per_window = 2 * WINDOW * V * 8  # X and y rows of one window, float64
    computed = n_full * per_window
    published = 2 * (len(data) // WINDOW) * WINDOW * V * 8  # step 80, np.int (int64): the same 8 bytes a cell

    # ancestor, measured on a slice
    n_slice = max(1, min(int(n_full * a.slice), int(SLICE_CAP // per_window)))
    print(f"ancestor: allocating one-hot X and y for {n_slice:,} of {n_full:,} windows...", file=sys.stderr, flush=True)
    base, _, _ = peak_rss([sys.executable, "-c", ANCESTOR, str(path), "0"])
    peak, out, _ = peak_rss([sys.executable, "-c", ANCESTOR, str(path), str(n_slice)])
    measured_per_window = (peak - base) / n_slice
    extrapolated = base + measured_per_window * n_full

    # ours, one epoch in a child process
    with tempfile.TemporaryDirectory(prefix="train-memory-") as tmp:
        cmd = [sys.executable, "-m", "training.train", "--culture", "membench", "--corpus", str(path.resolve()),
               "--epochs", "1", "--no-export", "--checkpoint-dir", str(Path(tmp) / "ckpt"), "--sample-every", "0"]
        if a.steps_per_epoch:
            cmd += ["--steps-per-epoch", str(a.steps_per_epoch)]
        cmd += a.train_args
        print(f"ours: {' '.join(cmd[1:])}", file=sys.stderr, flush=True)
        ours, log, secs = peak_rss(cmd, echo=True)
    framework, _, _ = peak_rss([sys.executable, "-c", FRAMEWORK])
    epoch = next((l.split("(")[0].replace("epochs of ", "").strip() for l in log.splitlines() if l.startswith("epochs of")),
                 "one epoch")

    rows = [
        ("ours: python -m training.train, 1 epoch, everything included", f"measured: {epoch}, {secs:.0f} s", ours),
        ("  of which Python + TensorFlow + Keras, imported", "measured", framework),
        (f"ancestor: one-hot X and y float64, window {WINDOW}, step {STEP}, {n_full:,} windows", "computed", computed),
        (f"ancestor: the same, built for {n_slice:,} windows ({n_slice / n_full:.1%})", f"measured {gb(peak)}, extrapolated",
         extrapolated),
        ("ancestor as published: step 80 (non-overlapping), int64 X and y", "computed", published),
    ]
    w0 = max(len(r[0]) for r in rows)
    w1 = max(len(r[1]) for r in rows)
    print(f"\n{path}: {len(data):,} characters, {V} distinct; peak RSS in GB (10^9 bytes)\n")
    print(f"| {'what':<{w0}} | {'how':<{w1}} | {'peak RSS':>9} |")
    print(f"|{'-' * (w0 + 2)}|{'-' * (w1 + 2)}|{'-' * 10}:|")
    for what, how, b in rows:
        print(f"| {what:<{w0}} | {how:<{w1}} | {gb(b):>9} |")
    print(f"\nancestor (step {STEP}, computed, data only) / ours (everything): {computed / ours:.1f}x; "
          f"measured bytes per window {measured_per_window:,.0f} vs computed {per_window:,}")
    print(f"target: ours under {gb(TARGET)}: {'met' if ours < TARGET else 'MISSED'}"
          + ("" if not a.steps_per_epoch else f" (epoch capped at {a.steps_per_epoch} batches)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
