"""The course notebooks: papermill runs the final one for real, nbval re-runs all in quick mode,
and the committed outputs must agree with the code."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from utils.models import build_model
from utils.report import STEPS, notebook_result
from utils.summary import count_parameters, describe

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"
FINAL_RUN = BUILD / "final_run"


def outputs_text(cell) -> str:
    parts = []
    for out in cell.get("outputs", []):
        if out.get("output_type") == "stream":
            parts.append(out["text"])
        elif "text/plain" in out.get("data", {}):
            parts.append(out["data"]["text/plain"])
    return "".join(parts)


@pytest.fixture(scope="session")
def final_notebook_run():
    """Execute 05_augmentation.ipynb with its full default parameters: the real final training."""
    import papermill

    BUILD.mkdir(exist_ok=True)
    out_nb = BUILD / "05_augmentation.out.ipynb"
    env_quick = os.environ.pop("MNIST_COURSE_QUICK", None)
    try:
        papermill.execute_notebook(
            str(NOTEBOOKS / "05_augmentation.ipynb"), str(out_nb), kernel_name="python3",
            cwd=str(NOTEBOOKS), parameters={"out_dir": str(FINAL_RUN), "progress": False}, progress_bar=False,
        )
    finally:
        if env_quick is not None:
            os.environ["MNIST_COURSE_QUICK"] = env_quick
    return nbformat.read(out_nb, as_version=4), json.loads((FINAL_RUN / "metrics.json").read_text())


def test_final_notebook_has_no_error_cell(final_notebook_run):
    nb, _ = final_notebook_run
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", []) if o.output_type == "error"]
    assert not errors


def test_final_run_reaches_the_goal_at_its_last_epoch(final_notebook_run):
    _, metrics = final_notebook_run
    assert metrics["model"] == "final" and metrics["complete"]
    assert metrics["epochs"] <= 15 and len(metrics["history"]) == metrics["epochs"]
    assert metrics["final_test_accuracy"] == metrics["history"][-1]["test_accuracy"]
    assert metrics["final_test_accuracy"] >= 99.40


def test_final_run_parameters(final_notebook_run):
    _, metrics = final_notebook_run
    assert metrics["params"] == count_parameters(build_model("final")) <= 8_000
    assert (FINAL_RUN / "checkpoint.pt").is_file()


def test_final_notebook_result_cell_matches_its_metrics(final_notebook_run):
    _, metrics = final_notebook_run
    result = notebook_result(BUILD / "05_augmentation.out.ipynb")
    assert result["final_test_accuracy"] == metrics["final_test_accuracy"]
    assert result["params"] == metrics["params"] and result["epochs"] == metrics["epochs"]


@pytest.mark.parametrize("stem, model", [(s, m) for s, m, _ in STEPS])
def test_committed_notebook_agrees_with_the_code(stem, model):
    path = NOTEBOOKS / f"{stem}.ipynb"
    assert path.stat().st_size < 1_000_000
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    assert all(counts) and counts == sorted(counts), "every cell executed, in order"
    assert not [o for c in code for o in c.outputs if o.output_type == "error"]
    assert sum("parameters" in c.metadata.get("tags", []) for c in nb.cells) == 1
    text = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    for heading in ("## Target", "## Result", "## Analysis"):
        assert heading in text
    # The parameter count and layer table printed in the notebook are what the model has now.
    assert describe(build_model(model)) in "".join(outputs_text(c) for c in code)
    result = notebook_result(path)
    assert result["model"] == model and result["params"] == count_parameters(build_model(model))
    assert result["epochs"] == 15, "committed notebooks hold full runs, not quick ones"
    assert f"Final test accuracy:  {result['final_test_accuracy']:.2f}%" in "".join(outputs_text(c) for c in code)


def test_committed_final_notebook_reaches_the_goal():
    result = notebook_result(NOTEBOOKS / "05_augmentation.ipynb")
    assert result["final_test_accuracy"] >= 99.40 and result["epochs"] <= 15 and result["params"] <= 8_000


def test_nbval_quick_mode_reproduces_the_checked_cells():
    """Every notebook re-runs top to bottom (1 epoch on 2,000 images); cells marked
    NBVAL_CHECK_OUTPUT (parameter counts, summaries, receptive-field tables) must match the stored ones."""
    env = {**os.environ, "MNIST_COURSE_QUICK": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "--nbval-lax", "--nbval-current-env", "-p", "no:cacheprovider",
         "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg"), "-q", "-o", "addopts=",
         *sorted(str(p) for p in NOTEBOOKS.glob("0*.ipynb"))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "passed" in r.stdout
