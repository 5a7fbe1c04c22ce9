"""tools.parallel: how many runs a sweep trains side by side, and on how many threads each. That the runs give
the same numbers side by side is tests/test_steps.py's; what the tables say about it, test_seeds.py's and
test_report.py's."""
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT

from tools import parallel


def test_one_run_per_usable_core_on_the_cpu_and_one_at_a_time_on_a_gpu(monkeypatch):
    assert parallel.default_jobs("cpu") == parallel.usable_cores() >= 1
    if hasattr(os, "sched_getaffinity"):
        assert parallel.usable_cores() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(parallel, "resolve_device", lambda name: torch.device("cuda"))
    assert parallel.default_jobs("auto") == 1


@pytest.mark.parametrize(("threads", "jobs", "each"), [(2, 2, 1), (1, 2, 1), (16, 4, 4), (16, 3, 5), (2, 1, 2)])
def test_the_threads_are_shared_out_among_the_runs_at_least_one_each(monkeypatch, threads, jobs, each):
    monkeypatch.setattr(parallel.torch, "get_num_threads", lambda: threads)
    assert parallel.threads_per_job(jobs) == each


def test_a_sweep_never_starts_more_workers_than_it_has_runs(monkeypatch):
    monkeypatch.setattr(parallel, "usable_cores", lambda: 4)
    assert parallel.jobs_for(None, "cpu", 10) == 4, "default: one per core"
    assert parallel.jobs_for(None, "cpu", 3) == 3 and parallel.jobs_for(8, "cpu", 5) == 5
    assert parallel.jobs_for(2, "cpu", 10) == 2 and parallel.jobs_for(None, "cpu", 0) == 1


def test_jobs_must_be_a_positive_number():
    from utils.settings import Parser

    parser = Parser(prog="sweep")
    parallel.add_jobs_argument(parser, "seeds")
    assert parser.parse_args(["--jobs", "3"]).jobs == 3 and parser.parse_args([]).jobs is None
    with pytest.raises(SystemExit):
        parser.parse_args(["--jobs", "0"])


def test_the_device_of_side_by_side_runs_names_their_thread_count_and_leaves_this_process_alone():
    before = torch.get_num_threads()
    expected = parallel.threads_per_job(2)
    assert parallel.worker_device_name("cpu", 2).endswith(f", {expected} threads)")
    assert parallel.worker_device_name("cpu", 1).endswith(f", {before} threads)")
    assert torch.get_num_threads() == before


def test_one_call_or_one_job_runs_in_this_process():
    pid = os.getpid()
    assert parallel.run_all(os.getpid, [{}], jobs=4) == [pid], "one call: no worker process is started"
    assert parallel.run_all(os.getpid, [{}, {}], jobs=1) == [pid, pid]


SWEEP = '''
import sys, time
from pathlib import Path
from tools import parallel

def call(folder, name):
    Path(folder, name + ".started").touch()
    time.sleep(60)

if __name__ == "__main__":
    with parallel.interrupted_in_one_line("sweep", "the same command goes on"):
        parallel.run_all(call, [dict(folder=sys.argv[1], name=str(i)) for i in range(4)], jobs=2)
'''


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_a_stopped_sweep_starts_none_of_its_queued_calls(tmp_path, sig):
    """The pool queues a call behind the running ones where its shutdown cannot cancel it: a stopped sweep
    must not start it (it trained a whole run before it ended), nor hang."""
    script = tmp_path / "sweep.py"
    script.write_text(SWEEP)
    sweep = subprocess.Popen([sys.executable, str(script), str(tmp_path)], cwd=ROOT, stderr=subprocess.PIPE,
                             text=True, start_new_session=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.started"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert len(list(tmp_path.glob("*.started"))) == 2, "two calls running side by side"
    if sig == signal.SIGINT:
        os.killpg(sweep.pid, sig)  # Ctrl-C in a terminal reaches every process of the group
    else:
        sweep.send_signal(sig)  # `kill` reaches the sweep only; it stops its workers
    _, stderr = sweep.communicate(timeout=30)
    time.sleep(1)
    assert (sweep.returncode, stderr.strip()) == (130, "sweep: interrupted; the same command goes on")
    assert sorted(p.name for p in tmp_path.glob("*.started")) == ["0.started", "1.started"]
