"""tools.parallel: how many runs a sweep trains side by side, and on how many threads each. That the runs give
the same numbers side by side is tests/test_steps.py's; what the tables say about it, test_seeds.py's and
test_report.py's."""
import os

import pytest
import torch

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
