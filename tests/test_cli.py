"""The command lines: one clear line for bad arguments, evaluate on a real run, and a training run
killed with SIGKILL that resumes to the same numbers. The killed run is a subprocess, as a user starts it;
the rest call each tool's main() in this process (the same parser and code, without paying torch's
import for each)."""
import contextlib
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import ROOT, cli_env, one_error_line, tiny_config, without_timing

from utils import predict, runs
from utils.train import main as train_main


def test_train_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for option in ("--model", "--epochs", "--batch-size", "--resume", "--out", "--train-subset", "--no-progress"):
        assert option in out, option
    # one formatter: each option states its default once, and never as "None"
    for entry in re.split(r"\n  (?=-)", out.split("options:", 1)[1]):
        assert entry.count("default") <= 1, entry
    assert "None" not in out


@pytest.mark.parametrize("kind, text, ok", [
    ("positive_int", "3", 3), ("positive_int", "0", None), ("positive_int", "2.5", None),
    ("non_negative_int", "0", 0), ("non_negative_int", "-1", None),
    ("positive_float", "0.05", 0.05), ("positive_float", "0", None), ("positive_float", "nan", None),
    ("positive_float", "inf", None)])
def test_shared_argument_types(kind, text, ok):
    import argparse

    from utils import settings as cli
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError):
            getattr(cli, kind)(text)
    else:
        assert getattr(cli, kind)(text) == ok


@pytest.fixture(scope="module")
def gap_run(tmp_path_factory):
    """``python -m utils.train --model gap ...`` through train_main in this process, its output captured as
    a pipe or a log file would take it (not a terminal)."""
    out = tmp_path_factory.mktemp("cli") / "gap"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = train_main(["--model", "gap", "--epochs", "1", "--train-subset", "512", "--device", "cpu",
                         "--out", str(out)])
    assert code == 0, stderr.getvalue()
    assert "final test accuracy" in stdout.getvalue()
    assert "step/s" not in stderr.getvalue(), "no progress bar redrawn into a pipe or a log file"
    return out


@pytest.mark.parametrize("terminal, flags, shown", [
    (True, [], True), (True, ["--no-progress"], False), (False, [], False)])
def test_progress_bar_only_on_a_terminal_and_only_when_asked(monkeypatch, terminal, flags, shown):
    seen = []

    def record_and_stop(cfg, out, resume=None, progress=True):
        seen.append(progress)
        raise runs.RunError("stopped by the test")

    monkeypatch.setattr("utils.train.train", record_and_stop)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    with pytest.raises(SystemExit):
        train_main(["--epochs", "1", *flags])
    assert seen == [shown]


@pytest.mark.parametrize("args, words", [
    (["--model", "resnet"], ["invalid choice", "resnet"]),
    (["--epochs", "0"], ["--epochs", "positive integer"]),
    (["--batch-size", "-1"], ["--batch-size", "positive integer"]),
    (["--resume", "no/such/folder"], ["no/such/folder", "no such run folder"]),
    (["--holdout", "60000"], ["--holdout 60000", "no training images"]),
    (["--lr", "-1"], ["--lr", "positive number"]),
    (["--lr", "nan"], ["--lr", "positive number"]),
])
def test_bad_arguments_fail_with_one_line(args, words, tmp_path, capsys, no_training):
    one_error_line(capsys, train_main, [*args, "--no-progress", "--out", str(tmp_path / "run")], *words)
    assert not (tmp_path / "run").exists(), "nothing is trained or written"


def test_a_tuning_run_reports_validation_accuracy(tmp_path, capsys, one_cpu_thread):
    assert train_main(["--holdout", "2000", "--train-subset", "512", "--epochs", "1", "--device", "cpu",
                     "--no-progress", "--out", str(tmp_path / "tune")]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "tune" / "metrics.json").read_text())
    assert f"final validation accuracy {metrics['final_val_accuracy']:.2f}%" in out
    assert not re.search(r"test (acc|accuracy)\s+[\d.]+%", out), "no test number on screen while tuning"


def test_resume_of_another_model_fails_with_one_line(gap_run, capsys, no_training):
    before = (gap_run / "checkpoint.pt").read_bytes()
    argv = ["--resume", str(gap_run), "--model", "final", "--no-progress"]
    one_error_line(capsys, train_main, argv, "'gap'", "'final'")
    assert (gap_run / "checkpoint.pt").read_bytes() == before


def test_predict_reports_accuracy_and_confusion_matrix(gap_run, capsys):
    metrics = json.loads((gap_run / "metrics.json").read_text())
    assert predict.main([str(gap_run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {metrics['final_test_accuracy']:.2f}%" in out
    # The matrix: ten lines of eleven integers (the true class, then ten counts).
    rows = [[int(v) for v in line.split()] for line in out.splitlines()
            if re.fullmatch(r"\s*\d+(\s+\d+){10}\s*", line)]
    assert len(rows) == 10 and [row[0] for row in rows] == list(range(10))
    counts = [row[1:] for row in rows]
    assert sum(map(sum, counts)) == 10_000
    assert sum(counts[i][i] for i in range(10)) == round(metrics["final_test_accuracy"] * 100)


def test_predict_accepts_the_checkpoint_file_too(gap_run, capsys):
    metrics = json.loads((gap_run / "metrics.json").read_text())
    assert predict.main([str(gap_run / "checkpoint.pt"), "--device", "cpu"]) == 0
    assert f"test accuracy {metrics['final_test_accuracy']:.2f}%" in capsys.readouterr().out


def test_predict_bad_path_fails_with_one_line(tmp_path, capsys):
    one_error_line(capsys, predict.main, [str(tmp_path / "nothing")], "nothing")


def test_killed_cli_run_resumes_to_the_same_result(tmp_path, tiny_run, capsys, one_cpu_thread):
    """SIGKILL after epoch 1 was saved, then --resume: the numbers and weights of an uninterrupted run
    (the session's run of the same settings: 3 epochs of the final recipe on 1,024 images)."""
    full_dir, a = tiny_run(tiny_config())
    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", "utils.train", "--epochs", "3", "--train-subset", "1024",
                             "--device", "cpu", "--no-progress", "--out", str(out)], cwd=ROOT, env=cli_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        done, give_up = 0, time.monotonic() + 300  # a guard against a hung run, not a speed test
        while proc.poll() is None and done < 1 and time.monotonic() < give_up:  # epoch 1 on disk
            try:
                done = json.loads((out / "metrics.json").read_text())["epochs"]
            except (FileNotFoundError, json.JSONDecodeError):
                time.sleep(0.02)
        assert done >= 1 and proc.poll() is None, "the run should be alive after saving epoch 1"
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()  # no-op when already dead; never leaves a stray trainer behind
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    done = json.loads((out / "metrics.json").read_text())["epochs"]
    assert done in (1, 2), "killed part-way"

    assert train_main(["--resume", str(out), "--no-progress"]) == 0
    b = json.loads((out / "metrics.json").read_text())
    assert b["epochs"] == 3
    assert without_timing(b["history"]) == without_timing(a["history"])
    assert b["final_test_accuracy"] == a["final_test_accuracy"]
    assert f"{a['final_test_accuracy']:.2f}%" in capsys.readouterr().out
    wa, wb = (torch.load(d / "checkpoint.pt", weights_only=True)["model_state"] for d in (full_dir, out))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json"], "no temporary files left"
