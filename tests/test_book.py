"""tools.book: the pages a book is built from, in a small repository made here (jupyter-book itself is not run):
the chapters from the student edition with --student, their links still resolved from notebooks/, and the set-up
and otter cells tagged ``remove-cell`` so that the book leaves them out."""
from __future__ import annotations

import subprocess

import nbformat
import pytest

from tools import book

SETUP = "try:\n    import google.colab\n    ON_COLAB = True\nexcept ImportError:\n    ON_COLAB = False"
OTTER = "# The exercises' checks (otter-grader): grader.check(\"name\") runs the checks of one exercise.\nimport otter"


def notebook(text: str, *code_cells) -> nbformat.NotebookNode:
    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    return nbformat.v4.new_notebook(cells=[md(text + " Read [the page](../docs/page.md)."), *map(code, code_cells)])


@pytest.fixture
def repo(tmp_path, monkeypatch):
    """A repository with a README, one notebook, one page, a figure, and a student edition in build/student/ (two
    folders deep, as make student writes it: its links only resolve from notebooks/)."""
    (tmp_path / "docs" / "book").mkdir(parents=True)
    (tmp_path / "docs" / "book" / "_toc.yml").write_text(
        "format: jb-book\nroot: index\nchapters:\n  - file: notebooks/01_a\n  - file: docs/page\n")
    (tmp_path / "docs" / "page.md").write_text("Back to [the notebook](../notebooks/01_a.ipynb).\n")
    (tmp_path / "README.md").write_text("# Course\n\nStart with [01](notebooks/01_a.ipynb).\n")
    (tmp_path / "Makefile").write_text("REPO ?= alice/course\n")
    (tmp_path / "results" / "figures").mkdir(parents=True)
    (tmp_path / "results" / "figures" / "f.png").write_bytes(b"png")
    (tmp_path / "notebooks").mkdir()
    master = notebook("Master text.", "print('first cell')", SETUP, "answer = 42  # SOLUTION")
    master.cells[2].metadata["tags"] = ["nbval-ignore-output"]
    nbformat.write(master, tmp_path / "notebooks" / "01_a.ipynb")
    student = tmp_path / "build" / "student"
    student.mkdir(parents=True)
    edition = notebook("Student text.", "print('first cell')", SETUP, OTTER, "answer = ...")
    edition.cells[4].metadata["tags"] = ["otter_answer_cell"]
    nbformat.write(edition, student / "01_a.ipynb")
    monkeypatch.setattr(book, "ROOT", tmp_path)
    monkeypatch.setattr(book, "BOOK", tmp_path / "docs" / "book")
    monkeypatch.setattr(book, "OUT", tmp_path / "build" / "book")
    monkeypatch.setattr(book, "STUDENT", student)
    monkeypatch.setattr(book, "STUDENT_OUT", tmp_path / "build" / "book-student")
    return tmp_path


def tags_of(nb) -> list[list[str]]:
    return [cell.metadata.get("tags", []) for cell in nb.cells]


def test_the_pages_come_from_the_student_edition_only_for_the_notebooks(repo):
    assert book.pages() == {"index": repo / "README.md", "notebooks/01_a": repo / "notebooks" / "01_a.ipynb",
                            "docs/page": repo / "docs" / "page.md"}
    assert book.pages(repo / "build" / "student") == {
        "index": repo / "README.md", "notebooks/01_a": repo / "build" / "student" / "01_a.ipynb",
        "docs/page": repo / "docs" / "page.md"}


def test_a_student_edition_without_a_chapter_is_refused_with_what_to_run(repo):
    (repo / "build" / "student" / "01_a.ipynb").unlink()
    with pytest.raises(book.BookError, match=r"no build/student/01_a\.ipynb: run `make student` first"):
        book.pages(repo / "build" / "student")


def test_the_book_of_the_masters_hides_the_set_up_cell(repo):
    src = repo / "out" / "src"
    book.assemble(src)
    nb = nbformat.read(src / "notebooks" / "01_a.ipynb", as_version=4)
    assert "Master text." in nb.cells[0].source
    assert tags_of(nb) == [[], [], ["nbval-ignore-output", "remove-cell"], []], "only the set-up cell, tags kept"
    assert (src / "index.md").read_text().startswith("# Course")
    assert (src / "results" / "figures" / "f.png").read_bytes() == b"png"


def test_the_student_book_has_the_student_chapters_without_set_up_or_otter_cells(repo):
    src = repo / "out" / "src"
    book.assemble(src, repo / "build" / "student")
    nb = nbformat.read(src / "notebooks" / "01_a.ipynb", as_version=4)
    assert "Student text." in nb.cells[0].source and "answer = ..." in nb.cells[4].source
    assert tags_of(nb) == [[], [], ["remove-cell"], ["remove-cell"], ["otter_answer_cell"]]
    assert "[the page](../docs/page.md)" in nb.cells[0].source, "links resolve from notebooks/, where the master is"
    assert (src / "docs" / "page.md").read_text() == "Back to [the notebook](../notebooks/01_a.ipynb).\n"
    assert "[01](notebooks/01_a.ipynb)" in (src / "index.md").read_text()


def test_a_link_of_a_student_chapter_to_a_file_outside_the_book_points_at_github(repo):
    edition = nbformat.read(repo / "build" / "student" / "01_a.ipynb", as_version=4)
    edition.cells[0].source += " See [the Makefile](../Makefile)."
    nbformat.write(edition, repo / "build" / "student" / "01_a.ipynb")
    src = repo / "out" / "src"
    book.assemble(src, repo / "build" / "student")
    text = nbformat.read(src / "notebooks" / "01_a.ipynb", as_version=4).cells[0].source
    assert "[the Makefile](https://github.com/alice/course/blob/main/Makefile)" in text


class FakeJupyterBook:
    """Stands in for subprocess.run of jupyter-book: records the command, succeeds."""

    def __init__(self):
        self.commands = []

    def __call__(self, command, **kwargs):
        self.commands.append(command)
        return subprocess.CompletedProcess(command, 0, "", "")


@pytest.mark.parametrize("argv, out, chapter", [
    ([], "build/book", "Master text."),
    (["--student"], "build/book-student", "Student text."),
    (["--student", "--out", "elsewhere"], "elsewhere", "Student text."),
])
def test_main_builds_each_edition_into_its_own_folder(repo, monkeypatch, capsys, argv, out, chapter):
    fake = FakeJupyterBook()
    jupyter_book = repo / "bin" / "jupyter-book"
    jupyter_book.parent.mkdir()
    jupyter_book.write_text("")
    monkeypatch.setattr(book, "JUPYTER_BOOK", jupyter_book)
    monkeypatch.setattr(book.subprocess, "run", fake)
    monkeypatch.chdir(repo)
    assert book.main(argv) == 0
    folder = (repo / out).resolve()
    nb = nbformat.read(folder / "src" / "notebooks" / "01_a.ipynb", as_version=4)
    assert chapter in nb.cells[0].source
    [command] = fake.commands
    assert command[1:3] == ["build", str(folder / "src")] and command[command.index("--path-output") + 1] == \
        str(folder)
    assert f"book built: {folder.relative_to(repo)}/_build/html/index.html" in capsys.readouterr().out
