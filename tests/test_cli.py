"""The command lines: one clear line for bad arguments, and evaluate on a real run."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_help():
    r = run("utils.train", "--help")
    assert r.returncode == 0 and "--resume" in r.stdout and "--holdout" in r.stdout


@pytest.fixture(scope="module")
def gap_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "gap"
    r = run("utils.train", "--model", "gap", "--epochs", "1", "--train-subset", "512", "--no-progress",
            "--out", str(out))
    assert r.returncode == 0, r.stderr
    return out


@pytest.mark.parametrize("args, words", [
    (["--model", "resnet"], "invalid choice"),
    (["--epochs", "0"], "positive integer"),
    (["--batch-size", "-1"], "positive integer"),
    (["--resume", "no/such/folder"], "no such run folder"),
])
def test_bad_arguments_fail_with_one_line(args, words):
    r = run("utils.train", *args, "--no-progress")
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "error" in lines[0] and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_resume_of_another_model_fails_with_one_line(gap_run):
    r = run("utils.train", "--resume", str(gap_run), "--model", "final", "--no-progress")
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and "'gap'" in lines[0] and "Traceback" not in r.stderr


def test_evaluate_reports_accuracy_and_confusion_matrix(gap_run):
    metrics = json.loads((gap_run / "metrics.json").read_text())
    r = run("utils.evaluate", str(gap_run))
    assert r.returncode == 0, r.stderr
    assert f"test accuracy {metrics['final_test_accuracy']:.2f}%" in r.stdout
    rows = [line.split() for line in r.stdout.splitlines()[2:12]]
    counts = [[int(v) for v in row[1:]] for row in rows]
    assert len(counts) == 10 and all(len(c) == 10 for c in counts)
    assert sum(map(sum, counts)) == 10_000
    assert sum(counts[i][i] for i in range(10)) == round(metrics["final_test_accuracy"] * 100)


def test_evaluate_bad_path_fails_with_one_line(tmp_path):
    r = run("utils.evaluate", str(tmp_path / "nothing"))
    assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_killed_cli_run_resumes_to_the_same_result(tmp_path):
    common = ["utils.train", "--epochs", "3", "--train-subset", "1024", "--no-progress"]
    full = run(*common, "--out", str(tmp_path / "full"))
    assert full.returncode == 0, full.stderr

    out = tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, "-m", *common, "--out", str(out)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            if json.loads((out / "metrics.json").read_text())["epochs"] >= 1:
                break
        except (FileNotFoundError, json.JSONDecodeError):
            pass
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = json.loads((out / "metrics.json").read_text())["epochs"]
    assert 1 <= done <= 3
    resumed = run("utils.train", "--resume", str(out), "--no-progress")
    assert resumed.returncode == 0, resumed.stderr
    a = json.loads((tmp_path / "full" / "metrics.json").read_text())
    b = json.loads((out / "metrics.json").read_text())
    strip = lambda h: [{k: v for k, v in row.items() if k != "seconds"} for row in h]  # noqa: E731
    assert strip(b["history"]) == strip(a["history"]) and b["final_test_accuracy"] == a["final_test_accuracy"]
    assert not [p for p in out.iterdir() if p.name.startswith(".")], "no temporary files left behind"
