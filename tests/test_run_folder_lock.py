"""One writer per run folder (issue 17, cases 1, 16 and 19): a second run or a --resume is refused with one
line naming the folder and the holder; the lock dies with its process; stale temporaries are tidied by the
next run there; Ctrl-C and SIGTERM end in one line that says how to continue."""
import errno
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from hardening_helpers import small, snapshot
from helpers import ROOT, cli_env, one_error_line, quiet, tiny_config, without_timing

from utils import fsutil, runs
from utils.train import main as train_main
from utils.train import train

COMMON = ["--train-subset", "1024", "--device", "cpu", "--no-progress"]


def start(*args) -> subprocess.Popen:
    """``python -m utils.train`` in the background, with Ctrl-C's usual effect even where this process
    ignores SIGINT (a background job does), so that it can be interrupted like a run in a terminal."""
    return subprocess.Popen([sys.executable, "-m", "utils.train", *args], cwd=ROOT, env=cli_env(), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def wait_for(condition, proc, what):
    give_up = time.monotonic() + 300  # a guard against a hung run, not a speed test
    while not condition():
        assert proc.poll() is None, f"the run ended before {what}: {proc.communicate()}"
        assert time.monotonic() < give_up, f"no {what} after 300 s"
        time.sleep(0.02)


def epochs_on_disk(out) -> int:
    try:
        return json.loads((out / "metrics.json").read_text())["epochs"]
    except (FileNotFoundError, json.JSONDecodeError):
        return 0


def test_a_second_writer_or_resumer_is_refused_while_a_run_holds_the_folder(tmp_path, capsys, no_training):
    out = tmp_path / "X"
    first = start(*COMMON, "--epochs", "3", "--seed", "1", "--out", str(out))
    try:
        wait_for(lambda: epochs_on_disk(out) >= 1, first, "saved epoch")
        first.send_signal(signal.SIGSTOP)  # held wherever it is (mid-save, maybe): it keeps its lock
        held = snapshot(out)
        # the second writer and the resumer are this process (the lock is flock's, per open file, so a
        # second process would meet it the same way)
        second, resumer = [*COMMON, "--epochs", "3", "--seed", "2", "--out", str(out)], ["--resume", str(out)]
        for argv in (second, resumer):
            one_error_line(capsys, train_main, argv, f"{out} is in use by another run (PID {first.pid} on ")
        assert snapshot(out) == held, "nothing of the writer's touched, its temporary files included"
        first.send_signal(signal.SIGCONT)
        stdout, stderr = first.communicate(timeout=300)
    finally:
        first.kill()
        first.wait()
    assert first.returncode == 0, stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["seed"] == 1 and metrics["complete"], "the folder holds the first writer's run"
    assert f"final test accuracy {metrics['final_test_accuracy']:.2f}%" in stdout
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json"], "lock and temporaries gone"


def test_a_held_folder_is_refused_before_anything_in_it_changes(tmp_path, capsys, no_training):
    out = tmp_path / "held"
    out.mkdir()
    (out / ".checkpoint.pt.abc123.tmp").write_bytes(b"the holder's write in progress")
    before = snapshot(out)
    with fsutil.exclusive_lock(out / runs.RUN_LOCK):
        line = one_error_line(capsys, train_main, [*COMMON, "--epochs", "1", "--out", str(out)], str(out),
                              f"PID {os.getpid()} on ")
        assert "in use by another run" in line
        assert {k: v for k, v in snapshot(out).items() if k != runs.RUN_LOCK} == before, "its temporary is kept"
    assert snapshot(out) == before, "the lock file goes with its holder"


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    """SIGKILL leaves the lock file, unlocked (the kernel dropped the lock): the next run takes it over."""
    out = tmp_path / "after-kill"
    out.mkdir()
    (out / runs.RUN_LOCK).write_text("PID 999999 on elsewhere, since 2026-01-01 00:00:00\n")
    metrics = train(small(), out, progress=False, log=quiet)
    assert metrics["complete"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json"]


@pytest.mark.parametrize("where", ["no fcntl (Windows)", "a file system without flock"])
def test_where_there_are_no_locks_a_run_still_runs(tmp_path, monkeypatch, where):
    if where == "no fcntl (Windows)":
        monkeypatch.setattr(fsutil, "fcntl", None)
    else:
        def no_locks(fd, operation):
            raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(fsutil.fcntl, "flock", no_locks)
    out = tmp_path / "unlocked"
    assert train(small(), out, progress=False, log=quiet)["complete"]
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json"]


def test_a_fresh_run_removes_stale_temporaries_of_its_own_files_only(tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    for name in (".checkpoint.pt.k1ll3d.tmp", ".metrics.json.k1ll3d.tmp", ".write-test.k1ll3d.tmp"):
        (out / name).write_bytes(b"left by a kill during the first checkpoint write")
    (out / "notes.tmp").write_text("the user's own file")
    train(small(), out, progress=False, log=quiet)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json", "notes.tmp"]


@pytest.mark.usefixtures("one_cpu_thread")  # the resume runs here, on the subprocess's one thread
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_says_how_to_continue_and_resumes_to_the_same_result(tmp_path, sig, tiny_run):
    out = tmp_path / "cut"
    _, full = tiny_run(tiny_config())  # the same settings as COMMON + --epochs 3, uninterrupted
    proc = start(*COMMON, "--epochs", "3", "--out", str(out))
    try:
        wait_for(lambda: epochs_on_disk(out) >= 1, proc, "saved epoch")
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=300)
    finally:
        proc.kill()
        proc.wait()
    saved = epochs_on_disk(out)
    if saved == 3:
        pytest.skip("the run finished before the signal arrived (a very fast machine); nothing was interrupted")
    lines = stderr.strip().splitlines()
    assert proc.returncode == 130 and len(lines) == 1 and "Traceback" not in stderr, stderr
    kept = "epoch 1" if saved == 1 else "epochs 1-2"
    assert lines[0] == (f"python -m utils.train: interrupted at epoch {saved + 1}; {out} keeps {kept}; "
                        f"continue with --resume {out}")
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json"], "no temporary, no lock"
    assert train_main(["--resume", str(out), "--no-progress"]) == 0
    assert without_timing(json.loads((out / "metrics.json").read_text())["history"]) == without_timing(full["history"])


def test_an_interrupt_before_the_first_epoch_is_one_line_too(tmp_path, capsys, monkeypatch):
    def interrupted(*_):
        raise KeyboardInterrupt

    monkeypatch.setattr("utils.train.load_device_data", interrupted)
    out = tmp_path / "never"
    line = one_error_line(capsys, train_main, [*COMMON, "--epochs", "1", "--out", str(out)], status=130)
    assert line == "python -m utils.train: interrupted before the first epoch began; " + f"{out} is as it was"
    assert not out.exists()
