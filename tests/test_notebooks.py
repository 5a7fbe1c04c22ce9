"""The committed course notebooks as files: metadata as JupyterLab writes it, the parameters cell,
nbval tags instead of comments, no error / stderr / absolute path / ``RESULT`` line in the outputs,
the code they display equal to the code now, and every number their Target/Result/Analysis quotes
backed by data (tools/quoted_numbers.py). Their stored training runs: test_notebook_runs.py; the Colab
bootstrap: test_notebook_bootstrap.py; executing them (nbval, papermill): test_notebook_execution.py.
"""
from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import nbformat
from helpers import NOTEBOOKS, ROOT, code_cells, copy_of, markdown_outputs, stdout_of, tags

from tools import quoted_numbers
from utils import GOAL, course
from utils.models import MODELS, STEPS, build_model
from utils.summary import describe
from utils.train import evaluate, train_epoch

KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
# notebook stem -> the previous step's model
PREVIOUS = dict(zip(list(STEPS)[1:], list(STEPS.values())[:-1], strict=True))


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
    if [s.split(":")[0] for s in sections] not in (["## Target", "## Result", "## Analysis"],
                                                   ["## Target", "## Result", "## Analysis", "## Answer key"]):
        bad.append(f"sections are {sections}, not Target, Result, Analysis (and an Answer key) in that order")
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



def test_one_notebook_per_step_in_course_order():
    assert sorted(p.stem for p in NOTEBOOKS.glob("*.ipynb")) == list(STEPS)
    assert list(STEPS.values()) == list(MODELS)



def test_committed_notebook_has_no_problems(committed_notebook):
    stem, nb = committed_notebook
    assert notebook_problems(nb, stem) == []
    assert (NOTEBOOKS / f"{stem}.ipynb").stat().st_size < 1_000_000


def test_editing_a_markdown_cell_in_jupyterlab_breaks_nothing(committed_notebook):
    """An instructor rewords the Analysis and saves: the notebook still passes every check."""
    stem, nb = committed_notebook
    edited = copy_of(nb)
    analysis = next(c for c in edited.cells if c.cell_type == "markdown" and c.source.startswith("## Analysis"))
    analysis.source += "\n\nA sentence added by hand in JupyterLab, with a step reference (step 2) and a 3x3 kernel."
    assert notebook_problems(nbformat.reads(nbformat.writes(edited), as_version=4), stem) == []


def test_the_notebook_checks_can_fail(committed_notebook):
    """notebook_problems can fail: a papermill cell, the old kernelspec, stderr and a typed number."""
    stem, nb = committed_notebook
    broken = copy_of(nb)
    broken.metadata["kernelspec"]["display_name"] = "Python 3"
    broken.cells.insert(2, nbformat.v4.new_code_cell("progress = False", metadata={"tags": ["injected-parameters"]}))
    code_cells(broken)[-1].outputs.append(nbformat.v4.new_output("stream", name="stderr", text="67%|██████▋| 62/92"))
    next(c for c in broken.cells if c.source.startswith("## Analysis")).source += "\n\nIt reached 12.3456%."
    found = " | ".join(notebook_problems(broken, stem))
    for words in ("kernelspec", "injected-parameters", "stderr output", "12.3456"):
        assert words in found


def test_parameters_cell_holds_the_repository_and_no_recipe(committed_notebook):
    """The recipe comes from utils.train.Config: the notebook only says which epochs (None: the recipe's)."""
    stem, nb = committed_notebook
    params = {}
    exec(code_cells(nb)[0].source, {}, params)
    assert set(params) == {"REPO", "epochs", "seed", "out_dir"}
    assert params["epochs"] is None and params["seed"] == 1 and params["out_dir"] == f"../runs/{stem}"
    assert course.run_folder(params["out_dir"]) == ROOT / "runs" / stem


def test_stored_code_is_the_code_now(committed_notebook):
    """The model class, diff, training step and recipe a notebook displays are what utils/ holds today
    (nbval checks the same in quick mode; this reads the stored outputs directly)."""
    stem, nb = committed_notebook
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


def test_checker_covers_the_committed_text():
    """The committed Target cells quote the budget and the goal, so the number checker has work to do."""
    nb = nbformat.read(NOTEBOOKS / "05_augmentation.ipynb", as_version=4)
    quoted = [q for c in quoted_numbers.checked_cells(nb) for q in quoted_numbers.quoted_numbers(c.source)]
    assert f"{GOAL:.2f}" in quoted and "8000" in quoted
