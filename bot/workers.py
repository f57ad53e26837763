"""The generation worker processes: starting them (`start_workers`, `process_pool`), and what runs inside them.

Kept apart from bot.generation, and importing charlm only inside a worker, so that the bot can start its
workers first thing, before it imports numpy, charlm, python-telegram-bot and the rest: the workers then
load the bundles while the bot process imports and builds its own parts (bench/startup.py).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Executor, ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from charlm import Bundle, Request, Result

log = logging.getLogger("bot.generation")


def start_workers(processes: int, models_dir: str | Path) -> ProcessPoolExecutor:
    """Start `processes` generation workers now, each loading every bundle in `models_dir`, and return at once:
    for `GenerationService(pool=...)`, whose start() waits until they have loaded, and checks they have each
    bundle of the catalog. If no service takes the pool (the bot fails to start), end it with `kill`.

    Why: the bot made its workers only once it had imported its modules and loaded its catalog, and they
    then took ~0.3 s to import charlm and load six 2 x 384 bundles while the bot waited; started first,
    they load alongside (bench/startup.py: see bench/README.md for the figures).
    """
    pool = process_pool(processes, models_dir=models_dir)
    for _ in range(processes):  # each submit starts one more process (spawn: on demand), up to `processes`
        pool.submit(_ping)
    return pool


def process_pool(processes: int, paths: Sequence[Path] = (), models_dir: str | Path | None = None) -> ProcessPoolExecutor:
    """A pool of `processes` workers (started on first use), each loading the bundles at `paths` and every
    bundle folder in `models_dir`."""
    return ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker,
                               initargs=([str(p) for p in paths], os.getpid(),
                                         None if models_dir is None else str(models_dir)))


def kill(executor: Executor | None, wait: bool = False) -> None:
    """Stop a pool now: SIGKILL its worker processes (they ignore SIGTERM); `wait`: until its thread is done.

    The standard library's shutdown of a broken pool sends SIGTERM and joins; our workers ignore
    SIGTERM (the bot stops them after the last batch), so that join would never end. Wait (a few ms) when
    the process may exit next: without it, the pool's exit hook sometimes wrote to a pipe its thread had
    just closed, and the bot ended with a traceback after its one error line (tests/bot/test_process.py).
    """
    if executor is None:
        return
    for process in list((getattr(executor, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.kill()
    executor.shutdown(wait=wait, cancel_futures=True)



def _run_jobs(jobs: list[tuple[Bundle, list[Request]]]) -> list[list[Result] | BaseException]:
    """In a worker: one batched generate per bundle; an error stays with its bundle's requests."""
    out: list[list[Result] | BaseException] = []
    for bundle, requests in jobs:
        try:
            out.append(bundle.generate(requests))
        except Exception as e:  # noqa: BLE001 - handed to the awaiting handlers, which report it
            log.exception("generation failed for bundle %s (%d requests)", bundle.name, len(requests))
            # a plain error: some exception types cannot be rebuilt on the other side of a process pipe
            out.append(RuntimeError(f"{type(e).__name__}: {e}"))
    return out


# -- in a worker process ----------------------------------------------------------------------------

_BUNDLES: dict[str, Bundle] = {}  # by bundle name
_PROBLEMS: dict[str, str] = {}  # absolute folder -> why this worker could not load the bundle there (one line)


WORKER_NICE = 5  # workers yield the CPU to the bot's event loop whenever it has something to do


def _init_worker(paths: list[str], parent: int | None = None, models_dir: str | None = None) -> None:
    """Worker start: die with the bot; load the bundles, by their names (one that cannot load is left out, and
    said by _ping: the bot's catalog says it too, and the bot does not start); leave SIGINT/SIGTERM to the
    bot, which stops us after the last batch."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    die_with_parent(parent)
    try:
        os.nice(WORKER_NICE)
    except (AttributeError, OSError):  # not on this platform, or not allowed: run at normal priority
        pass
    from charlm import BundleError, find_bundles, load_bundle  # (numpy: its BLAS must be loaded to be limited)

    one_blas_thread()
    for path in [*paths, *(find_bundles(models_dir) if models_dir is not None else [])]:
        try:
            bundle = load_bundle(path)
        except BundleError as e:
            _PROBLEMS[os.path.abspath(path)] = f"broken bundle: {e}"
            continue
        _BUNDLES[bundle.name] = bundle


def one_blas_thread() -> None:
    """Limit BLAS to one thread in this process: the workers are the parallelism (one per core).

    Why: OpenBLAS starts one thread per core in every process, so N workers ran N x cores threads on
    the cores, and its threads spin while they wait. Measured with `bench/bot_load.py --runs capacity
    --commands 4` (2 cores, shipped 2 x 384 bundles): 3.8 replies/s and 478 ms of worker CPU per reply
    with the default, 17.4 replies/s and 58 ms with one thread. The text does not change: charlm's
    exact products are the same bits at any BLAS thread count (tests/charlm: thread-count invariance).
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int | None) -> None:
    """Ask Linux to SIGKILL this process when the bot dies (kill -9 included): no orphan holds ~95 MB.

    Elsewhere (no prctl) a daemon thread watches the parent's pid instead.
    """
    if parent is None:
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
    except (OSError, AttributeError):
        threading.Thread(target=_watch_parent, args=(parent,), name="watch-parent", daemon=True).start()
    if os.getppid() != parent:  # it died before prctl took effect
        os._exit(1)


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    os._exit(1)


def _ping() -> tuple[list[str], dict[str, str]]:
    """-> (the names of the bundles this worker loaded, {absolute folder: a line} for each it could not)."""
    return sorted(_BUNDLES), dict(_PROBLEMS)


def _run_named(jobs: list[tuple[str, list[Request]]]) -> list[list[Result] | BaseException]:
    """In a worker: _run_jobs by bundle name; a bundle this worker could not load fails its requests (one line)."""
    missing = {name for name, _ in jobs if name not in _BUNDLES}
    if not missing:
        return _run_jobs([(_BUNDLES[name], requests) for name, requests in jobs])
    why = "; ".join(_PROBLEMS.values()) or "not in the models folder when this worker started"
    return [RuntimeError(f"this generation worker has no bundle {name!r}: {why}") if name in missing
            else _run_jobs([(_BUNDLES[name], requests)])[0] for name, requests in jobs]
