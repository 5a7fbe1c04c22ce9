"""A sweep's runs side by side: one worker process per core, one torch thread in each.

A training step of these small networks keeps two threads poorly busy, while two one-thread runs side by
side do more work than one two-thread run (two seeds: 246 s side by side against 411 s one after the other on
two threads, AMD EPYC, results/sweep-walls/20261203-1128-amd.json).
The stored sweeps were trained on one thread per run (``OMP_NUM_THREADS=1``), and a run's float sums follow
its thread count, not how many runs share the machine: a run trained beside others gives the numbers it
gives alone. Only its wall time grows, so a summary says how many ran at once.
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_EXCEPTION, ProcessPoolExecutor, wait

import torch

from utils.config import device_name, resolve_device
from utils.settings import positive_int, sigterm_as_interrupt


def usable_cores() -> int:
    """The cores this process may run on (a container or ``taskset`` may allow fewer than the machine has)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def default_jobs(device: str) -> int:
    """One run per core on the CPU; one at a time on a GPU, whose runs would share the one device."""
    return usable_cores() if resolve_device(device).type == "cpu" else 1


def add_jobs_argument(parser, what: str = "runs") -> None:
    """The ``--jobs`` option every sweep takes (``what``: what it trains side by side)."""
    parser.add_argument("--jobs", type=positive_int, default=None,
                        help=f"{what} side by side, each on its share of the threads (default: one per core on the "
                             "CPU, one on a GPU); the numbers do not depend on it, see tools.parallel")


def jobs_for(requested: int | None, device: str, calls: int) -> int:
    """How many of ``calls`` runs train at once: ``--jobs`` or default_jobs, never more than there are runs."""
    return max(1, min(requested or default_jobs(device), calls))


def threads_per_job(jobs: int) -> int:
    """torch's thread count (``OMP_NUM_THREADS``, else one per core) shared out among ``jobs`` runs, at least one."""
    return max(1, torch.get_num_threads() // jobs)


def worker_device_name(device: str, jobs: int) -> str:
    """utils.runs.device_name as each run sees it when ``jobs`` train side by side (its thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(threads_per_job(jobs) if jobs > 1 else before)
    try:
        return device_name(resolve_device(device))
    finally:
        torch.set_num_threads(before)


def run_all(fn, calls: list[dict], jobs: int) -> list:
    """``[fn(**c) for c in calls]``, in order. With ``jobs`` > 1 the calls run in that many fresh processes
    (``fn`` must be importable), each on threads_per_job(jobs) threads (jobs_for says how many); the first error
    stops the calls that have not started, waits for the ones running (each saves its epochs, so a re-run reuses
    them) and is raised. Ctrl-C or SIGTERM (KeyboardInterrupt here) stops the running calls as it stops a single
    run: each worker gets SIGTERM, its run saves nothing more and lets go of its folder."""
    jobs = min(jobs, len(calls))
    if jobs <= 1:
        return [fn(**c) for c in calls]
    spawn = multiprocessing.get_context("spawn")  # not fork: a forked OpenMP runtime can hang
    with ProcessPoolExecutor(jobs, mp_context=spawn, initializer=start_worker,
                             initargs=(threads_per_job(jobs),)) as pool:
        futures = [pool.submit(interruptible_call, fn, c) for c in calls]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
        except KeyboardInterrupt:
            for worker in multiprocessing.active_children():
                worker.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        failed = [f for f in futures if f in done and f.exception() is not None]
        if failed:
            pool.shutdown(wait=True, cancel_futures=True)
            raise failed[0].exception()
        return [f.result() for f in futures]


def start_worker(threads: int) -> None:
    """A worker's threads, and Ctrl-C left to the sweep, which stops the workers itself (with SIGTERM)."""
    torch.set_num_threads(threads)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


STOPPING = False  # in a worker: a call was stopped, so the calls already queued behind it must not start


def interruptible_call(fn, kwargs: dict):
    """``fn(**kwargs)`` in a worker, SIGTERM raising KeyboardInterrupt meanwhile (a run then ends as on Ctrl-C,
    its lock and temporaries gone); an idle worker just ends. Once stopped, the worker starts nothing more: the
    pool hands it the call queued next, which the sweep's shutdown can no longer cancel."""
    global STOPPING
    if STOPPING:
        raise KeyboardInterrupt
    with sigterm_as_interrupt():
        try:
            return fn(**kwargs)
        except KeyboardInterrupt:
            STOPPING = True
            raise


@contextlib.contextmanager
def interrupted_in_one_line(prog: str, then: str):
    """Ctrl-C or SIGTERM during a tool's work ends in one line on stderr, ``then`` saying what is kept and how to
    go on, exit status 130, instead of a traceback from each process."""
    with sigterm_as_interrupt():
        try:
            yield
        except KeyboardInterrupt:
            print(f"{prog}: interrupted; {then}", file=sys.stderr)
            raise SystemExit(130) from None
