"""The committed notebooks as lessons: a concept section with figures computed in the notebook, exercises in
otter-grader's master-notebook format (their blanked student cells still valid Python), a questionnaire,
and the before/after comparison that works for a notebook opened alone."""
from __future__ import annotations

import ast
import re

import nbformat
import yaml
from helpers import NOTEBOOKS

from utils.models import STEPS

BOUNDARY = re.compile(r"#\s+(BEGIN|END)\s+(QUESTION|SOLUTION|TESTS|PROMPT)\b", re.I)


def headings(nb) -> list[str]:
    return [line.lstrip("#").strip() for c in nb.cells if c.cell_type == "markdown"
            for line in c.source.splitlines() if line.startswith("#")]


def sections(nb) -> list[tuple[str, list]]:
    """(## heading, the cells under it) in order; ### headings stay inside their ## section."""
    found: list[tuple[str, list]] = [("", [])]
    for cell in nb.cells:
        first = cell.source.lstrip().splitlines()[0] if cell.source.strip() else ""
        if cell.cell_type == "markdown" and first.startswith("## "):
            found.append((first[3:], []))
        found[-1][1].append(cell)
    return found


def has_figure(cell) -> bool:
    return any("image/png" in o.get("data", {}) for o in cell.get("outputs", []))


def test_a_concept_section_with_at_least_three_stored_figures(committed_notebook):
    stem, nb = committed_notebook
    concept = [c for title, cells in sections(nb) if title.startswith(("Concept", "Design")) for c in cells]
    figures = [c for c in concept if c.cell_type == "code" and has_figure(c)]
    assert len(figures) >= 3, f"{stem}: {len(figures)} figures computed in its concept sections"


def test_at_least_two_exercises_and_a_questionnaire(committed_notebook):
    stem, nb = committed_notebook
    exercises = [h for h in headings(nb) if h.startswith("Exercise ")]
    assert len(exercises) >= 2, exercises
    assert "Questionnaire" in headings(nb)
    quiz = next(c for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Questionnaire"))
    assert len(re.findall(r"^\d+\. ", quiz.source, re.M)) >= 8


def otter_blocks(nb) -> list[dict]:
    """The questions of an otter-grader v1 master notebook, read the way ``otter assign`` reads them."""
    questions, stack, current = [], [], None
    for cell in nb.cells:
        match = BOUNDARY.match(cell.source) if cell.cell_type == "raw" else None
        if match:
            edge, kind = match.group(1).upper(), match.group(2).upper()
            if edge == "BEGIN":
                assert (kind == "QUESTION") == (not stack), f"{kind} block opened inside {stack}"
                stack.append(kind)
                if kind == "QUESTION":
                    current = {"config": yaml.safe_load(cell.source), "cells": [], "solutions": [], "tests": []}
                    questions.append(current)
            else:
                assert stack and stack[-1] == kind, f"END {kind} does not close {stack}"
                stack.pop()
            continue
        if stack:
            current["cells"].append(cell)
            if stack[-1] == "SOLUTION":
                current["solutions"].append(cell)
            if stack[-1] == "TESTS":
                assert cell.cell_type == "code", "a tests block holds code cells only"
                current["tests"].append(cell)
    assert not stack, f"unclosed {stack}"
    return questions


def blanked(source: str) -> str:
    """A solution cell as ``otter assign`` leaves it for the student: solution blocks become ``...``,
    ``x = value  # SOLUTION`` becomes ``x = ...``."""
    out, inside = [], False
    for line in source.splitlines():
        if line.strip() == "# END SOLUTION":
            inside = False
        elif line.strip() == "# BEGIN SOLUTION":
            inside = True
            out.append(line.replace("# BEGIN SOLUTION", "..."))
        elif not inside:
            out.append(re.sub(r"=.*# SOLUTION$", "= ...", line) if line.rstrip().endswith("# SOLUTION") else line)
    return "\n".join(out)


def test_every_exercise_is_an_otter_question_with_a_check(committed_notebook):
    stem, nb = committed_notebook
    questions = otter_blocks(nb)
    names = [q["config"]["name"] for q in questions]
    assert len(names) == len(set(names)) >= 2
    for q in questions:
        prompt = next(c for c in q["cells"] if c.cell_type == "markdown")
        assert prompt.source.startswith("### Exercise "), "each exercise under its own heading"
        assert q["solutions"] and q["tests"], f"{q['config']['name']}: a cell to edit and a check"
        assert all("assert " in t.source for t in q["tests"]), "the checks are plain asserts"
        for cell in q["solutions"]:
            student = blanked(cell.source)
            assert student != cell.source, f"{q['config']['name']}: nothing is left for the student to write"
            ast.parse(student)  # the student edition is still valid Python
    configs = [c for c in nb.cells if c.cell_type == "raw" and c.source.startswith("# ASSIGNMENT CONFIG")]
    assert len(configs) == 1 and yaml.safe_load(configs[0].source)["name"] == stem


def test_raw_cells_are_yaml_and_harmless_python(committed_notebook):
    """Colab has no raw cell type: were one run as code, it must do nothing (and otter reads it as YAML)."""
    _, nb = committed_notebook
    for cell in (c for c in nb.cells if c.cell_type == "raw"):
        assert isinstance(yaml.safe_load(cell.source) or {}, dict)
        compile(cell.source, "raw cell", "exec")
        assert not re.search(r":\s*(true|false)\b", cell.source), "Python's True/False read as YAML booleans too"


def test_exercises_come_after_the_analysis(committed_notebook):
    _, nb = committed_notebook
    titles = [t for t, _ in sections(nb)]
    assert titles.index("Exercises") > next(i for i, t in enumerate(titles) if t.startswith("Analysis"))
    assert titles[-3:] == ["Questionnaire", "Further reading", "Answer key"]


def test_the_answer_key_answers_every_question_and_is_the_instructors(committed_notebook):
    """One answer per question of the questionnaire, in a cell the student edition leaves out (tagged answer-key)."""
    _, nb = committed_notebook
    found = dict(sections(nb))
    asked = re.findall(r"^(\d+)\. ", found["Questionnaire"][0].source, re.M)
    key = [c for c in found["Answer key"] if c.cell_type == "markdown"]
    assert key and all("answer-key" in c.metadata.get("tags", []) for c in key)
    answered = re.findall(r"^(\d+)\. ", "\n".join(c.source for c in key), re.M)
    assert answered == asked and len(asked) >= 8
    assert "«" not in "".join(c.source for c in key), "an answer left to fill in"
    reading = found["Further reading"][0].source
    assert reading.count("* ") >= 4 and "](http" in reading, "papers and chapters, linked"


def test_the_before_and_after_works_for_a_notebook_opened_alone(committed_notebook):
    stem, nb = committed_notebook
    if stem == "01_baseline":
        return
    previous = list(STEPS)[list(STEPS).index(stem) - 1]
    cells = [c for c in nb.cells if c.cell_type == "code" and "course.previous_step(" in c.source]
    assert len(cells) == 1 and f'"{previous}"' in cells[0].source
    assert "earlier_metrics" not in "".join(c.source for c in nb.cells), "no comparison without the fallback"


def test_notebook_01_states_objectives_goal_and_roadmap():
    nb = nbformat.read(NOTEBOOKS / "01_baseline.ipynb", as_version=4)
    first = nb.cells[0].source
    assert "**In this notebook you will**" in first and "**The goal of the course:**" in first
    assert all(f"| {stem[:2]}" in first for stem in STEPS), "the roadmap names the five notebooks"
    assert nb.cells[1].cell_type == "code", "the lesson comes before any code but the set-up"


def test_notebook_02_asserts_its_batchnorm_equals_pytorchs():
    nb = nbformat.read(NOTEBOOKS / "02_batchnorm.ipynb", as_version=4)
    cell = next(c for c in nb.cells if c.cell_type == "code" and "def batchnorm_by_hand" in c.source)
    assert "nbval-check-output" in cell.metadata.get("tags", [])
    assert cell.source.count("assert torch.allclose(") >= 3 and "bn.running_var" in cell.source
    assert "training mode" in "".join(o.get("text", "") for o in cell.outputs)


def test_the_set_up_cell_says_what_it_is_and_colab_folds_it(committed_notebook):
    """JupyterLab shows it (a collapsed input has no prompt, and the browser test counts prompts); Colab
    shows a titled form."""
    _, nb = committed_notebook
    boot = [c for c in nb.cells if c.cell_type == "code"][1]
    assert boot.source.startswith("#@title Set-up") and boot.metadata.get("cellView") == "form"
    assert len(boot.source.splitlines()) <= 22
