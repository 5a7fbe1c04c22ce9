"""tools.student: the student edition leaves out the questionnaire's answer key (the master's cells tagged
``answer-key``) and keeps every other cell, in order, the otter cell added after the set-up cell. At the level of
the function that prepares each master for otter (no otter run here)."""
from __future__ import annotations

import nbformat

from tools import student as student_tool

SETUP = "try:\n    import google.colab\n    ON_COLAB = True\nexcept ImportError:\n    ON_COLAB = False"


def master() -> nbformat.NotebookNode:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    cells = [md("# 09 test"), code("import torch"), code(SETUP), md("## Questionnaire\n\n1. Why?"),
             md("**Answers.** 1. Because."), code("answers = {1: 'because'}"),
             md("## Further reading"), code("print('last')")]
    cells[4].metadata["tags"] = ["answer-key"]
    cells[5].metadata["tags"] = ["nbval-skip", "answer-key"]  # among other tags
    cells[6].metadata["tags"] = ["answer-keys-elsewhere"]  # a tag that only starts the same
    cells[7].metadata["tags"] = ["nbval-ignore-output"]
    return nbformat.v4.new_notebook(cells=cells)


def test_the_answer_key_cells_are_left_out_and_every_other_cell_kept_in_order():
    nb = master()
    edition = student_tool.with_otter_cell(nb, "09_test")
    sources = [cell.source for cell in edition.cells]
    assert sources[:3] == ["# 09 test", "import torch", SETUP]
    assert sources[3].startswith(student_tool.OTTER_CELL_MARK), "the otter cell after the set-up cell"
    assert sources[4:] == ["## Questionnaire\n\n1. Why?", "## Further reading", "print('last')"]
    assert [cell.metadata.get("tags", []) for cell in edition.cells][-2:] == [["answer-keys-elsewhere"],
                                                                              ["nbval-ignore-output"]]
    assert not any("answer-key" in cell.metadata.get("tags", []) for cell in edition.cells)


def test_the_master_itself_keeps_its_answer_key():
    nb = master()
    before = nbformat.writes(nb)
    student_tool.with_otter_cell(nb, "09_test")
    assert nbformat.writes(nb) == before


def test_a_master_without_an_answer_key_loses_nothing():
    nb = master()
    for cell in nb.cells:
        cell.metadata.pop("tags", None)
    edition = student_tool.with_otter_cell(nb, "09_test")
    assert len(edition.cells) == len(nb.cells) + 1


def test_the_staged_master_otter_reads_has_no_answer_key(tmp_path, monkeypatch):
    """stage() writes what otter assign reads: the answer key is already gone there."""
    path = tmp_path / "09_test.ipynb"
    nbformat.write(master(), path)
    monkeypatch.setattr(student_tool, "STAGED", ())  # the course files beside it play no part here
    staged = nbformat.read(student_tool.stage(path, tmp_path / "stage"), as_version=4)
    assert "**Answers.** 1. Because." not in [cell.source for cell in staged.cells]
    assert len(staged.cells) == len(master().cells) - 2 + 1

