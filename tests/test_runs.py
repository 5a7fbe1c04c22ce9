"""utils.runs, the records office: what a run leaves in its folder, what the door refuses before anything is
written, one writer per folder, runs stopped by Ctrl-C, SIGTERM, SIGKILL, a full disk or divergence and resumed
to the numbers of an uninterrupted run, what --resume may change, and the checkpoint read as untrusted input.

Each refusal is one clear line (``prog: error: ...`` for the command lines) and loses no file. The command lines
run in-process through their ``main()`` where that suffices (no torch start-up per case); the runs that are
signalled are subprocesses, as a user starts them.
"""
import dataclasses
import errno
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile

import pytest
import torch
from helpers import (
    ROOT,
    RUN_FILES,
    cli_env,
    copy_run,
    edited_checkpoint,
    files_in,
    one_error_line,
    quiet,
    same_weights,
    small,
    snapshot,
    stop_after_saving,
    tiny_config,
    weights,
    without_timing,
)

from utils import data, fsutil, predict, runs
from utils.config import Config
from utils.models import build_model
from utils.runs import read_checkpoint
from utils.settings import sigterm_as_interrupt
from utils.summary import count_parameters
from utils.train import evaluate, load_device_data, train, train_epoch
from utils.train import main as train_main

COMMON = ["--train-subset", "1024", "--device", "cpu", "--no-progress"]  # with --epochs 3: tiny_config()


@pytest.fixture
def tiny(tiny_run):
    """An uninterrupted run of tiny_config() (3 epochs on 1,024 images): (folder, metrics), shared by the session."""
    return tiny_run(tiny_config())


@pytest.fixture
def small_run(tiny_run):
    """A complete run of small() (2 epochs on 256 images): (folder, metrics), shared by the session; tests that
    change it work on a copy."""
    return tiny_run(small())


@pytest.fixture
def half(stopped_run, tmp_path):
    """A run of small() stopped after its first epoch: what --resume continues (this test's own copy)."""
    return stopped_run(small(), tmp_path / "half")


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


# --------------------------------------------------------------------------------------------------
# What a run leaves in its folder
# --------------------------------------------------------------------------------------------------

def test_metrics_json_holds_the_run_and_its_last_epoch_as_the_result(tiny):
    ref_dir, ref = tiny
    on_disk = json.loads((ref_dir / "metrics.json").read_text())
    assert on_disk == ref
    for key in ("model", "params", "epochs", "final_test_accuracy", "history", "wall_seconds", "device",
                "seed", "versions", "config"):
        assert key in on_disk, key
    assert on_disk["model"] == "final" and on_disk["seed"] == 1 and on_disk["device"].startswith("cpu")
    assert on_disk["epochs"] == 3 and [row["epoch"] for row in on_disk["history"]] == [1, 2, 3]
    assert on_disk["params"] == count_parameters(build_model("final"))
    assert on_disk["final_test_accuracy"] == on_disk["history"][-1]["test_accuracy"]
    assert 10 < on_disk["final_test_accuracy"] <= 100, "a percentage, and better than chance after 3 epochs"
    assert on_disk["wall_seconds"] > 0
    assert on_disk["peak_memory_mb"] > 100, "this process's peak resident memory, torch and MNIST included"
    assert on_disk["versions"]["torch"] == torch.__version__
    assert on_disk["config"] == dataclasses.asdict(tiny_config())


def test_the_checkpoint_holds_the_weights_that_scored_the_reported_accuracy(tiny):
    ref_dir, ref = tiny
    ckpt = torch.load(ref_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["model"] == "final" and ckpt["config"] == ref["config"]
    model = build_model(ckpt["model"])
    model.load_state_dict(ckpt["model_state"])  # strict: a complete state_dict of the named model
    cfg = Config(**ckpt["config"])
    dd = load_device_data(cfg, torch.device("cpu"))
    result = evaluate(model, dd.test_x, dd.test_y)
    assert result["accuracy"] == ref["final_test_accuracy"]


def test_a_run_folder_holds_only_the_checkpoint_and_the_metrics(tiny):
    assert files_in(tiny[0]) == RUN_FILES  # no temporary files left


def test_the_checkpoint_loads_with_plain_torch_load_and_scores_the_same_in_torchvisions_pipeline(small_run):
    """Our checkpoint, loaded the way other people will: plain torch.load and torchvision's pipeline."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    ref_dir, ref = small_run
    state = torch.load(ref_dir / "checkpoint.pt")  # PyTorch's default: weights_only=True
    model = build_model(state["model"])
    model.load_state_dict(state["model_state"])
    model.eval()
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((data.MEAN,), (data.STD,))])
    test_set = datasets.MNIST(str(data.DEFAULT_ROOT), train=False, transform=tf)
    correct = 0
    with torch.inference_mode():
        for x, y in DataLoader(test_set, batch_size=1000):
            correct += (model(x).argmax(1) == y).sum().item()
    theirs = 100.0 * correct / len(test_set)
    assert theirs == ref["final_test_accuracy"] == predict.evaluate_checkpoint(ref_dir, "cpu")["accuracy"]
    assert dataclasses.asdict(Config(**state["config"])) == state["config"]


# --------------------------------------------------------------------------------------------------
# The door: what is refused before anything is written, and what overwrite may replace
# --------------------------------------------------------------------------------------------------

def test_a_batch_larger_than_the_training_set_is_refused(capsys, tmp_path):
    with pytest.raises(runs.RunError, match="batch size 300 .* 256 training images"):
        train(small(batch_size=300), tmp_path / "r", progress=False, log=quiet)
    one_error_line(capsys, train_main, ["--batch-size", "100000", "--out", str(tmp_path / "r")], "--batch-size",
                   "60,000")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_an_out_folder_that_cannot_be_one_is_refused_before_training(tmp_path, capsys, no_training, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if where == "a file" else blocker / "run"
    one_error_line(capsys, train_main, ["--train-subset", "256", "--epochs", "1", "--device", "cpu", "--no-progress",
                                        "--out", str(out)], str(out))
    assert blocker.read_text() == "not a folder"


def test_a_folder_that_holds_a_run_is_not_overwritten(tiny):
    ref_dir, _ = tiny
    before = snapshot(ref_dir)
    with pytest.raises(runs.RunError, match="--resume"):
        train(tiny_config(), ref_dir, progress=False, log=quiet)
    assert snapshot(ref_dir) == before


@pytest.mark.parametrize("bad", [dict(epochs=-3), dict(batch_size=0), dict(device="tpu")])
def test_a_bad_parameter_with_overwrite_keeps_the_previous_run(small_run, tmp_path, bad):
    """A notebook re-run with a bad parameter must not delete the run it would replace."""
    run = copy_run(small_run, tmp_path)
    before = snapshot(run)
    with pytest.raises(runs.RunError):
        train(small(**bad), run, progress=False, overwrite=True, log=quiet)
    assert snapshot(run) == before


def test_overwrite_replaces_a_run_of_the_same_step_only(small_run, tmp_path, capsys):
    from tools import tune

    run = copy_run(small_run, tmp_path)  # a 'final' run
    before = snapshot(run)
    with pytest.raises(runs.RunError, match=f"{run} holds a 'final' run, and overwrite replaces only"):
        train(small(model="batchnorm"), run, progress=False, overwrite=True, log=quiet)
    one_error_line(capsys, tune.main, ["q10 12 16 d 16 16 d", "--epochs", "1", "--out", str(run)], "'final' run")
    assert snapshot(run) == before
    again = train(small(seed=2), run, progress=False, overwrite=True, log=quiet)  # its own step: replaced
    assert json.loads((run / "metrics.json").read_text()) == again and again["seed"] == 2


def test_overwrite_refuses_a_checkpoint_it_cannot_read(tmp_path):
    run = tmp_path / "foreign"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"someone else's file")
    with pytest.raises(runs.RunError, match="not a run of this course"):
        train(small(), run, progress=False, overwrite=True, log=quiet)
    assert (run / "checkpoint.pt").read_bytes() == b"someone else's file"


# --------------------------------------------------------------------------------------------------
# One writer per run folder: a second run or a --resume is refused with one line naming the folder and
# the holder; the lock dies with its process; stale temporaries are tidied by the next run there
# --------------------------------------------------------------------------------------------------

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
    assert files_in(out) == RUN_FILES, "lock and temporaries gone"


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
    assert files_in(out) == RUN_FILES


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
    assert files_in(out) == RUN_FILES


def test_a_fresh_run_removes_stale_temporaries_of_its_own_files_only(tmp_path):
    out = tmp_path / "stale"
    out.mkdir()
    for name in (".checkpoint.pt.k1ll3d.tmp", ".metrics.json.k1ll3d.tmp", ".write-test.k1ll3d.tmp"):
        (out / name).write_bytes(b"left by a kill during the first checkpoint write")
    (out / "notes.tmp").write_text("the user's own file")
    train(small(), out, progress=False, log=quiet)
    assert files_in(out) == [*RUN_FILES, "notes.tmp"]


# --------------------------------------------------------------------------------------------------
# Stopped runs: Ctrl-C, SIGTERM, SIGKILL, a kill inside a write, a full disk, divergence
# --------------------------------------------------------------------------------------------------

def interrupt_after_epoch_2(monkeypatch):
    """Ctrl-C right after epoch 2 was saved."""
    stop_after_saving(monkeypatch, 2)
    return 2  # epochs on disk afterwards


def interrupt_while_writing_checkpoint_2(monkeypatch):
    """Ctrl-C halfway through writing epoch 2's checkpoint: epoch 1's pair must survive intact."""
    real_torch_save = torch.save

    def half_save_then_stop(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and len(obj.get("history", ())) == 2:
            with open(f, "wb") as fh:
                fh.write(b"PK\x03\x04 half a checkpoint")
            raise KeyboardInterrupt("stopped while writing checkpoint 2")
        return real_torch_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", half_save_then_stop)
    return 1


@pytest.mark.parametrize("interrupt", [interrupt_after_epoch_2, interrupt_while_writing_checkpoint_2])
def test_resume_after_interruption_ends_like_an_uninterrupted_run(tiny, tmp_path, monkeypatch, interrupt):
    ref_dir, ref = tiny
    cut = tmp_path / "cut"
    with monkeypatch.context() as patch:
        saved_epochs = interrupt(patch)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config(), cut, progress=False, log=quiet)
    assert files_in(cut) == RUN_FILES, "no temporary file left behind"
    on_disk = json.loads((cut / "metrics.json").read_text())
    assert on_disk["epochs"] == saved_epochs and len(on_disk["history"]) == saved_epochs
    assert len(torch.load(cut / "checkpoint.pt", weights_only=True)["history"]) == saved_epochs

    resumed = train(None, resume=cut, progress=False, log=quiet)
    assert resumed["epochs"] == 3
    assert without_timing(resumed["history"]) == without_timing(ref["history"])
    assert resumed["final_test_accuracy"] == ref["final_test_accuracy"]
    assert same_weights(weights(cut), weights(ref_dir))
    assert json.loads((cut / "metrics.json").read_text()) == resumed
    assert files_in(cut) == RUN_FILES


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupted_run_says_how_to_continue_and_resumes_to_the_same_result(tmp_path, sig, tiny):
    out = tmp_path / "cut"
    _, full = tiny  # the same settings as COMMON + --epochs 3, uninterrupted
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
    assert files_in(out) == RUN_FILES, "no temporary, no lock"
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


def test_a_run_killed_with_sigkill_resumes_to_the_same_numbers_and_weights(tmp_path, tiny, capsys):
    """SIGKILL after epoch 1 was saved, then --resume: the numbers and weights of the uninterrupted run of the
    same settings (3 epochs of the final recipe on 1,024 images)."""
    full_dir, a = tiny
    out = tmp_path / "killed"
    proc = start(*COMMON, "--epochs", "3", "--out", str(out))
    try:
        wait_for(lambda: epochs_on_disk(out) >= 1, proc, "saved epoch")
        assert proc.poll() is None, "the run should be alive after saving epoch 1"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()  # no-op when already dead; never leaves a stray trainer behind
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    done = json.loads((out / "metrics.json").read_text())["epochs"]
    assert done in (1, 2), "killed part-way"

    assert train_main(["--resume", str(out), "--no-progress"]) == 0
    b = json.loads((out / "metrics.json").read_text())
    assert b["epochs"] == 3
    assert without_timing(b["history"]) == without_timing(a["history"])
    assert b["final_test_accuracy"] == a["final_test_accuracy"]
    assert f"{a['final_test_accuracy']:.2f}%" in capsys.readouterr().out
    assert same_weights(weights(full_dir), weights(out))
    assert files_in(out) == RUN_FILES, "no temporary files left"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_while_an_epoch_is_saved_waits_until_both_files_are_written(tmp_path, monkeypatch, sig):
    """Ctrl-C (or SIGTERM) arriving as epoch 1's checkpoint starts to be written stops the run only once its
    metrics.json is written too, with the epoch counted: never a checkpoint without its metrics.json."""
    cut = tmp_path / "cut"
    real_write = runs.atomic_write

    def signalled(path, write):
        os.kill(os.getpid(), sig)  # delivered at once, here, in the middle of Run.save
        return real_write(path, write)

    monkeypatch.setattr(runs, "atomic_write", signalled)
    with sigterm_as_interrupt(), pytest.raises(runs.Interrupted) as stopped:
        train(small(), cut, progress=False, log=quiet)
    assert files_in(cut) == RUN_FILES
    assert json.loads((cut / "metrics.json").read_text())["epochs"] == 1 and stopped.value.epochs_saved == 1
    assert f"{cut} keeps epoch 1" in str(stopped.value)


KILL_POINTS = ["while writing checkpoint.pt", "between checkpoint.pt and metrics.json", "while writing metrics.json"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_at_any_write_of_the_last_epoch_is_repaired_on_resume(small_run, tmp_path, monkeypatch, point):
    """A kill between (or during) the two saves of the last epoch must not leave a stale result."""
    ref_dir, ref = small_run
    cut = tmp_path / "cut"
    real_write, real_write_json = runs.atomic_write, runs.atomic_write_json
    checkpoints = []

    def killed(path):
        """What a SIGKILL in the middle of a write leaves: a half temporary file, nothing renamed."""
        (path.parent / f".{path.name}.killed.tmp").write_bytes(b"half a file")
        raise KeyboardInterrupt(f"killed {point}")

    def write_checkpoint(path, write):
        checkpoints.append(path)
        if len(checkpoints) == 2 and point == KILL_POINTS[0]:
            killed(path)
        return real_write(path, write)

    def write_metrics(path, obj):
        if obj["epochs"] == 2 and point == KILL_POINTS[1]:
            raise KeyboardInterrupt(f"killed {point}")
        if obj["epochs"] == 2 and point == KILL_POINTS[2]:
            killed(path)
        return real_write_json(path, obj)

    with monkeypatch.context() as patch:
        patch.setattr(runs, "atomic_write", write_checkpoint)
        patch.setattr(runs, "atomic_write_json", write_metrics)
        with pytest.raises(KeyboardInterrupt):
            train(small(), cut, progress=False, log=quiet)
    assert json.loads((cut / "metrics.json").read_text())["epochs"] == 1, "metrics.json still says epoch 1"

    resumed = train(None, resume=cut, progress=False, log=quiet)
    on_disk = json.loads((cut / "metrics.json").read_text())
    assert on_disk == resumed
    assert resumed["complete"] and resumed["epochs"] == 2
    assert resumed["final_test_accuracy"] == resumed["history"][-1]["test_accuracy"]
    assert without_timing(resumed["history"]) == without_timing(ref["history"])
    assert resumed["final_test_accuracy"] == ref["final_test_accuracy"]
    assert len(torch.load(cut / "checkpoint.pt", weights_only=True)["history"]) == 2
    assert same_weights(weights(cut), weights(ref_dir))
    assert files_in(cut) == RUN_FILES, "no leftovers"


@pytest.mark.parametrize("damage", ["deleted", "cut in half"])
def test_a_finished_run_with_a_lost_metrics_json_is_repaired(small_run, tmp_path, capsys, damage):
    run = copy_run(small_run, tmp_path)
    metrics = run / "metrics.json"
    if damage == "deleted":
        metrics.unlink()
    else:
        metrics.write_text(metrics.read_text()[: len(metrics.read_text()) // 2])
    assert train_main(["--resume", str(run), "--no-progress"]) == 0
    assert f"final test accuracy {small_run[1]['final_test_accuracy']:.2f}%" in capsys.readouterr().out
    assert json.loads(metrics.read_text()) == small_run[1]


def test_resuming_a_complete_run_changes_nothing(tiny):
    ref_dir, ref = tiny
    before = (ref_dir / "checkpoint.pt").read_bytes()
    assert train(None, resume=ref_dir, progress=False, log=quiet) == ref
    assert (ref_dir / "checkpoint.pt").read_bytes() == before


def shutil_usage(**sizes):
    return shutil._ntuple_diskusage(**sizes)


def test_a_full_disk_is_one_line_and_the_run_resumes(small_run, tmp_path, capsys, monkeypatch):
    """The files stay intact, and the run resumes to the same numbers."""
    run, real_save = tmp_path / "full", torch.save

    def disk_fills_in_epoch_2(obj, f, *args, **kwargs):
        """torch.save on a full device: it writes what fits, then fails with a message that names no disk."""
        if len(obj.get("history", ())) < 2:
            return real_save(obj, f, *args, **kwargs)
        f.write_bytes(b"PK\x03\x04 as much as fitted")
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 64 vs 0")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", disk_fills_in_epoch_2)
        patch.setattr(fsutil.shutil, "disk_usage", lambda path: shutil_usage(total=100_000, used=100_000, free=0))
        one_error_line(capsys, train_main, ["--train-subset", "256", "--epochs", "2", "--device", "cpu",
                                            "--no-progress", "--out", str(run)],
                       f"no space left on the device of {run} while saving epoch 2", f"--resume {run}")
    assert files_in(run) == RUN_FILES
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1
    resumed = train(None, resume=run, progress=False, log=quiet)
    assert without_timing(resumed["history"]) == without_timing(small_run[1]["history"])


def test_a_full_tmpfs_is_one_line_and_the_run_resumes(small_run, tmp_path, capsys):
    """The real thing: a 100 kB tmpfs holds one checkpoint (80 kB) but not the next one beside it."""
    mount = tmp_path / "M"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mount)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({r.stderr.strip()}); "
                    "test_a_full_disk_is_one_line_and_the_run_resumes simulates the full disk instead")
    try:
        one_error_line(capsys, train_main, ["--train-subset", "256", "--epochs", "2", "--device", "cpu",
                                            "--no-progress", "--out", str(mount)], "no space left",
                       f"--resume {mount}")
        assert files_in(mount) == RUN_FILES
        shutil.copytree(mount, tmp_path / "moved")
    finally:  # lazily if a file there is still open (a failing run's traceback can hold one)
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)
    resumed = train(None, resume=tmp_path / "moved", progress=False, log=quiet)
    assert without_timing(resumed["history"]) == without_timing(small_run[1]["history"])


def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    """Every metrics.json stays strict JSON: a NaN is never written."""
    real_epoch = train_epoch

    def diverge_in_epoch_2(model, opt, sched, dd, cfg, epoch, *rest):
        loss, acc = real_epoch(model, opt, sched, dd, cfg, epoch, *rest)
        return (math.nan, acc) if epoch == 2 else (loss, acc)

    monkeypatch.setattr("utils.train.train_epoch", diverge_in_epoch_2)
    run = tmp_path / "diverged"
    with pytest.raises(runs.RunError, match="lower --lr"):
        train(small(), run, progress=False, log=quiet)
    metrics = json.loads((run / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert metrics["epochs"] == 1 and len(torch.load(run / "checkpoint.pt", weights_only=True)["history"]) == 1

    with pytest.raises(ValueError):
        runs.atomic_write_json(tmp_path / "nan.json", {"loss": math.nan})
    assert not (tmp_path / "nan.json").exists()


def test_a_huge_learning_rate_ends_in_one_line(tmp_path, capsys):
    argv = ["--model", "baseline", "--lr", "1000", "--epochs", "1", "--train-subset", "512", "--device", "cpu",
            "--no-progress", "--out", str(tmp_path / "run")]
    one_error_line(capsys, train_main, argv, "lower --lr")


# --------------------------------------------------------------------------------------------------
# What --resume may change: the device, the data root, the allocator; the network and every other setting
# are the saved run's, and its MNIST is read here, never where the checkpoint says
# --------------------------------------------------------------------------------------------------

def test_resume_may_change_the_device_and_refuses_any_other_setting(small_run, half, monkeypatch, capsys):
    _, ref = small_run
    state = torch.load(half / "checkpoint.pt", weights_only=True)
    edited_checkpoint(half, config={**state["config"], "device": "cuda"})  # as if saved on a GPU machine
    before = snapshot(half)
    for change, words in [(["--epochs", "5"], ()), (["--lr", "0.5"], ()), (["--batch-size", "64"], ()),
                          (["--seed", "7"], ()), (["--train-subset", "512"], ()), (["--holdout", "1000"], ()),
                          (["--no-augment"], ()), (["--model", "gap"], ("'gap'", "'final'"))]:
        argv = ["--resume", str(half), "--no-progress", "--device", "cpu", *change]
        one_error_line(capsys, train_main, argv, change[0], *words)
        assert snapshot(half) == before, change[0]

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine has no GPU
    assert train_main(["--resume", str(half), "--no-progress", "--device", "cpu", "--epochs", "2"]) == 0
    resumed = json.loads((half / "metrics.json").read_text())
    assert resumed["complete"] and resumed["config"]["device"] == "cpu" and resumed["device"].startswith("cpu")
    assert without_timing(resumed["history"]) == without_timing(ref["history"])


def test_resume_refuses_a_run_of_another_network(tiny, tmp_path, monkeypatch):
    """A checkpoint remembers its network's fingerprint: after utils/models.py changes, resuming fails
    with one clear error instead of mixing two networks in one run."""
    from utils.models import FinalNet

    ref_dir, ref = tiny
    assert ref["architecture"] == runs.architecture_id(build_model("final"))
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    monkeypatch.setattr("utils.runs.build_model", lambda name, dropout: FinalNet(dropout=0.3))  # the code changed
    with pytest.raises(runs.RunError, match="another 'final' network"):
        train(None, resume=copy, progress=False, log=quiet)


def test_resume_reads_mnist_here_not_at_the_checkpoints_data_root(small_run, half, tmp_path):
    elsewhere = tmp_path / "another-machine" / "data"
    state = torch.load(half / "checkpoint.pt", weights_only=True)
    edited_checkpoint(half, config={**state["config"], "data_root": str(elsewhere)})
    assert train_main(["--resume", str(half), "--no-progress"]) == 0
    assert not elsewhere.parent.exists(), "nothing written where the checkpoint's machine kept MNIST"
    resumed = json.loads((half / "metrics.json").read_text())
    assert without_timing(resumed["history"]) == without_timing(small_run[1]["history"])


def test_predict_reads_mnist_from_data_root_not_from_the_checkpoint(small_run, tmp_path, capsys):
    run = copy_run(small_run, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    edited_checkpoint(run, config={**state["config"], "data_root": str(elsewhere)})
    result = predict.evaluate_checkpoint(run, "cpu")
    assert result["accuracy"] == small_run[1]["final_test_accuracy"]
    assert predict.main([str(run), "--device", "cpu", "--data-root", str(data.DEFAULT_ROOT)]) == 0
    assert f"test accuracy {small_run[1]['final_test_accuracy']:.2f}%" in capsys.readouterr().out
    assert not elsewhere.exists(), "nothing downloaded to the checkpoint's path"


# --------------------------------------------------------------------------------------------------
# A checkpoint is untrusted input: nothing in it runs or is read before it is used, every part of it is
# checked before training uses it; anything else is one line naming the file, for predict and --resume
# --------------------------------------------------------------------------------------------------

class Payload:
    """What a hostile 'checkpoint' holds: unpickling it would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_a_pickle_payload_is_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    run = tmp_path / "hostile"
    run.mkdir()
    torch.save({"model": "final", "model_state": Payload(marker)}, run / "checkpoint.pt")
    with pytest.raises(runs.RunError, match="checkpoint.pt"):
        read_checkpoint(run)
    one_error_line(capsys, predict.main, [str(run / "checkpoint.pt"), "--device", "cpu"], "checkpoint.pt")
    one_error_line(capsys, train_main, ["--resume", str(run), "--no-progress"], "checkpoint.pt")
    assert not marker.exists(), "the payload ran"


FOREIGN = {
    "a plain state_dict": lambda state: state["model_state"],
    "a dict from another program": lambda state: {"epoch": 3, "weights": torch.zeros(3)},
    "an unknown model name": lambda state: {**state, "model": "resnet"},
    "a missing key": lambda state: {k: v for k, v in state.items() if k != "optimizer_state"},
    "weights of another network": lambda state: {**state, "model_state": build_model("baseline").state_dict()},
    "a config from another version": lambda state: {**state, "config": {**state["config"], "warp_factor": 0.8}},
}


@pytest.mark.parametrize("kind", FOREIGN)
def test_foreign_or_mismatched_checkpoints_give_one_line(small_run, tmp_path, capsys, kind):
    run = copy_run(small_run, tmp_path)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save(FOREIGN[kind](state), run / "checkpoint.pt")
    before = snapshot(run)
    one_error_line(capsys, predict.main, [str(run), "--device", "cpu"], str(run / "checkpoint.pt"))
    one_error_line(capsys, train_main, ["--resume", str(run), "--no-progress"], str(run / "checkpoint.pt"))
    assert snapshot(run) == before


def momentum_of_another_shape(state):
    opt = state["optimizer_state"]
    return {**opt, "state": {**opt["state"], 0: {"momentum_buffer": torch.zeros(3)}}}


CRAFTED = {  # what is planted -> the entry to change
    "history [1]": lambda s: {"history": [1]},
    "history [{}]": lambda s: {"history": [{}]},
    "history with an infinite loss": lambda s: {"history": [{**s["history"][0], "train_loss": math.inf}]},
    "metrics {}": lambda s: {"metrics": {}},
    "metrics of another run": lambda s: {"metrics": {**s["metrics"], "history": s["history"] * 2, "epochs": 2}},
    "a momentum buffer of the wrong shape": lambda s: {"optimizer_state": momentum_of_another_shape(s)},
    "a momentum buffer for no weight": lambda s: {"optimizer_state": {**s["optimizer_state"], "state": {
        **s["optimizer_state"]["state"], 99: {"momentum_buffer": torch.zeros(3)}}}},
    "_schedule_phases garbage": lambda s: {"scheduler_state": {**s["scheduler_state"], "_schedule_phases": "garbage"}},
    "a scheduler entry torch does not have": lambda s: {"scheduler_state": {**s["scheduler_state"], "get_lr": 1}},
    "lr 'abc'": lambda s: {"optimizer_state": {**s["optimizer_state"], "param_groups": [
        {**s["optimizer_state"]["param_groups"][0], "lr": "abc"}]}},
    "wall_seconds inf": lambda s: {"wall_seconds": math.inf},
    "NaN weights": lambda s: {"model_state": {k: torch.full_like(v, math.nan) if v.is_floating_point() else v
                                              for k, v in s["model_state"].items()}},
    "an unknown entry": lambda s: {"note": "hello"},
}


@pytest.mark.parametrize("kind", CRAFTED)
def test_a_crafted_checkpoint_is_refused_at_load_in_one_line(half, capsys, no_training, kind):
    state = torch.load(half / "checkpoint.pt", weights_only=True)
    edited_checkpoint(half, **CRAFTED[kind](state))
    before = snapshot(half)
    one_error_line(capsys, train_main, ["--resume", str(half), "--no-progress"], str(half / "checkpoint.pt"))
    assert snapshot(half) == before


def test_a_crafted_complete_checkpoint_is_refused_too(small_run, tmp_path, capsys):
    run = tmp_path / "complete"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((small_run[0] / "checkpoint.pt").read_bytes())
    edited_checkpoint(run, metrics={})
    one_error_line(capsys, train_main, ["--resume", str(run), "--no-progress"], "metrics")
    one_error_line(capsys, predict.main, [str(run), "--device", "cpu"], "metrics")
    assert files_in(run) == ["checkpoint.pt"], "no metrics.json written from it"


def deflated(path, extra_name, extra_bytes):
    """``path`` rewritten as a zip whose entries are compressed, plus an ``extra_name`` entry of zeros:
    a small file that would unpack to a large one."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    prefix = entries[0][0].split("/")[0]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, content in entries:
            dst.writestr(name, content)
        with dst.open(f"{prefix}/{extra_name}", "w", force_zip64=True) as fh:
            for _ in range(extra_bytes // 2**20):
                fh.write(bytes(2**20))


@pytest.mark.parametrize("how, why", [("an extra tensor", "unknown entries: blob"),
                                      ("a compressed entry of zeros", "compressed")])
def test_a_checkpoint_holding_more_than_a_run_writes_is_refused_without_reading_it(small_run, tmp_path, capsys, how,
                                                                                    why):
    """torch.load(mmap=True) maps tensors instead of reading them, so a large tensor costs nothing until used; an
    entry the run did not write is refused, and so is a compressed one, which would unpack to 64 MB (or be mapped
    as raw bytes)."""
    run = tmp_path / "large"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((small_run[0] / "checkpoint.pt").read_bytes())
    if how == "an extra tensor":
        edited_checkpoint(run, blob=torch.zeros(2**20))  # 4 MB; a real network here needs ~0.1 MB
    else:
        deflated(run / "checkpoint.pt", "data/999", 64 * 2**20)
        assert (run / "checkpoint.pt").stat().st_size < 2**20, "small on disk"
    line = one_error_line(capsys, predict.main, [str(run), "--device", "cpu"], str(run / "checkpoint.pt"))
    assert why in line
    one_error_line(capsys, train_main, ["--resume", str(run), "--no-progress"], why)
