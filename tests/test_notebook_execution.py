"""The notebooks executed: nbval re-runs every one in quick mode (MNIST_COURSE_QUICK=1) and the cells
tagged ``nbval-check-output`` must print exactly what is stored; papermill runs
notebooks/05_augmentation.ipynb with its full parameters (the real final training) and the run must
reach the goal at its last epoch (tests named ``papermill``: minutes of CPU). Both are slow.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys

import nbformat
import pytest
from helpers import EPOCH_LINE, NOTEBOOKS, ROOT, code_cells, stdout_of

from utils import GOAL, MAX_EPOCHS, course
from utils.config import Config
from utils.models import STEPS, build_model
from utils.summary import count_parameters

BUILD = ROOT / "build"
FINAL_RUN = BUILD / "final_run"
FINAL_OUT = BUILD / "05_augmentation.out.ipynb"


@pytest.mark.slow
def test_nbval_quick_mode_reproduces_the_checked_cells():
    """Every notebook re-runs top to bottom in quick mode (one epoch on 2,000 images, into build/quick/);
    no cell may fail, and cells tagged nbval-check-output must print exactly what is stored."""
    env = {**os.environ, course.QUICK_ENV: "1"}
    shutil.rmtree(BUILD / "quick", ignore_errors=True)
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "-q", "-o", "addopts=", *(str(NOTEBOOKS / f"{stem}.ipynb") for stem in STEPS)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    summary = r.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "failed" not in summary and "error" not in summary, summary
    for stem in STEPS:  # quick runs land under build/quick, never in runs/
        metrics = json.loads((BUILD / "quick" / stem / "metrics.json").read_text())
        assert metrics["epochs"] == course.QUICK_EPOCHS and metrics["config"]["train_subset"] == course.QUICK_SUBSET


@pytest.fixture(scope="session")
def final_notebook_run():
    """Execute 05_augmentation.ipynb with its full parameters into build/ (never quick mode)."""
    import papermill

    BUILD.mkdir(exist_ok=True)
    shutil.rmtree(FINAL_RUN, ignore_errors=True)  # nothing stale can be read back
    FINAL_OUT.unlink(missing_ok=True)
    quick = os.environ.pop(course.QUICK_ENV, None)  # the kernel inherits this process's environment
    try:
        papermill.execute_notebook(str(NOTEBOOKS / "05_augmentation.ipynb"), str(FINAL_OUT), kernel_name="python3",
                                   cwd=str(NOTEBOOKS), parameters={"out_dir": str(FINAL_RUN)}, progress_bar=False)
    finally:
        if quick is not None:
            os.environ[course.QUICK_ENV] = quick
    return nbformat.read(FINAL_OUT, as_version=4), json.loads((FINAL_RUN / "metrics.json").read_text())


@pytest.mark.slow
def test_papermill_final_notebook_runs_cleanly(final_notebook_run):
    nb, _ = final_notebook_run
    assert not [o for c in code_cells(nb) for o in c.outputs if o.output_type == "error"]
    assert all(c.execution_count for c in code_cells(nb)), "every cell executed"
    assert "QUICK MODE" not in stdout_of(nb)


@pytest.mark.slow
def test_papermill_final_run_reaches_the_goal_at_its_last_epoch(final_notebook_run):
    nb, metrics = final_notebook_run
    assert metrics["model"] == "final" and metrics["complete"]
    assert metrics["config"]["train_subset"] == 0 and metrics["config"]["augment"]
    assert metrics["epochs"] == Config().epochs <= MAX_EPOCHS
    assert metrics["final_test_accuracy"] == metrics["history"][-1]["test_accuracy"] >= GOAL == 99.40
    assert metrics["params"] == count_parameters(build_model("final")) <= 8_000
    log = EPOCH_LINE.findall(stdout_of(nb))
    assert float(log[-1][4]) == pytest.approx(metrics["final_test_accuracy"], abs=0.005)
    assert float(log[-1][3]) == pytest.approx(metrics["final_clean_train_accuracy"], abs=0.005)
    reloaded = re.search(r"reloaded checkpoint: test accuracy ([\d.]+)%", stdout_of(nb))
    assert reloaded and float(reloaded.group(1)) == pytest.approx(metrics["final_test_accuracy"], abs=0.005)
    assert "Goal (99.40% at the last epoch, <= 15 epochs, <= 8,000 parameters): met" in stdout_of(nb)
