"""The repository slug lives in one place (REPO in the Makefile) and every copy agrees with it.

* README badges and each notebook's bootstrap ``REPO = "..."`` line and Colab badge name the Makefile's REPO;
* ``python -m tools.set_repo`` rewrites all of them on a copy of the repository, changes nothing else,
  and refuses bad input with one line, before writing anything; it changes every file or none.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import ROOT, one_error_line, tree

from tools import set_repo
from utils import fsutil

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
GITHUB_LINK = re.compile(r"(?:github\.com/|colab\.research\.google\.com/github/)([\w.-]+/[\w.-]+?)(?=[/)\s\"'#]|$)")
OTHER_PROJECTS = {"fastai/fastbook", "karpathy/nn-zero-to-hero"}  # further reading: other projects' links stay
COLAB_BADGE = re.compile(r"colab\.research\.google\.com/github/([\w.-]+/[\w.-]+)/blob/main/notebooks/([\w.-]+\.ipynb)")


def make_repo(root: Path = ROOT) -> str:
    return set_repo.makefile_repo((root / "Makefile").read_text())


CURRENT = make_repo()
NEW = "alice/fork-8k" if CURRENT != "alice/fork-8k" else "bob/fork-8k"  # a slug the copies do not name yet


def bootstrap_cell(nb):
    return next(c for c in nb.cells if c.cell_type == "code")


def test_makefile_names_one_valid_slug():
    assert set_repo.check_slug(make_repo()) == make_repo()  # OWNER/mnist-8k here, a fork's own after make repo


def test_readme_links_name_the_makefiles_repo():
    readme = (ROOT / "README.md").read_text()
    assert set(GITHUB_LINK.findall(readme)) == {make_repo()}
    assert f"https://github.com/{make_repo()}/actions/workflows/ci.yml/badge.svg" in readme
    badges = COLAB_BADGE.findall(readme)
    assert sorted(name for _, name in badges) == [p.name for p in NOTEBOOKS], "one Colab badge per notebook"
    for name in (name for _, name in badges):
        assert (ROOT / "notebooks" / name).is_file()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_names_the_makefiles_repo(path):
    nb = nbformat.read(path, as_version=4)
    first = bootstrap_cell(nb)
    assert "parameters" in first.metadata.get("tags", []), "the REPO cell is papermill's parameters cell"
    assert set_repo.notebook_repo_lines(nb) == [(nb.cells.index(first), make_repo())]
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    assert set(GITHUB_LINK.findall(markdown)) <= {make_repo()} | OTHER_PROJECTS
    assert COLAB_BADGE.findall(markdown) == [(make_repo(), path.name)], "its own Colab badge"


def repo_copy(tmp_path: Path, notebooks: list[Path]) -> Path:
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    for name in ("Makefile", "README.md"):
        shutil.copy2(ROOT / name, root / name)
    for path in notebooks:
        shutil.copy2(path, root / "notebooks" / path.name)
    return root


def small_notebook(path: Path, slug: str = CURRENT) -> None:
    """A notebook shaped like the course's: badge, bootstrap parameters cell with REPO, an output."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.cells = [
        nbformat.v4.new_markdown_cell(
            f"# Step\n\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
            f"(https://colab.research.google.com/github/{slug}/blob/main/notebooks/{path.name})\n"
            "See also https://github.com/pytorch/vision for the datasets."),
        nbformat.v4.new_code_cell(f'REPO = "{slug}"  # GitHub OWNER/NAME of the course\nepochs = 15',
                                  metadata={"tags": ["parameters"]}),
        nbformat.v4.new_code_cell('print("REPO = \'x\' in a string stays")', execution_count=1,
                                  outputs=[nbformat.v4.new_output("stream", name="stdout", text="hi\n")]),
    ]
    nbformat.write(nb, path)


def test_set_repo_rewrites_every_copy_and_nothing_else(tmp_path, capsys):
    root = repo_copy(tmp_path, [])
    small_notebook(root / "notebooks" / "01_step.ipynb")
    before = tree(root)
    assert set_repo.main([NEW, "--root", str(root)]) == 0
    assert "3 file(s) changed" in capsys.readouterr().out
    assert make_repo(root) == NEW
    readme = (root / "README.md").read_text()
    assert set(GITHUB_LINK.findall(readme)) == {NEW}
    for old_line, new_line in zip(before["README.md"].decode().splitlines(), readme.splitlines(), strict=True):
        linked = f"github.com/{CURRENT}" in old_line or f"github/{CURRENT}" in old_line
        assert new_line == (old_line.replace(CURRENT, NEW) if linked else old_line)
    nb = nbformat.read(root / "notebooks" / "01_step.ipynb", as_version=4)
    assert nb.cells[1].source == f'REPO = "{NEW}"  # GitHub OWNER/NAME of the course\nepochs = 15'
    assert f"github/{NEW}/blob/main/notebooks/01_step.ipynb" in nb.cells[0].source
    assert "https://github.com/pytorch/vision" in nb.cells[0].source, "another project's link is left alone"
    old = nbformat.reads(before["notebooks/01_step.ipynb"].decode(), as_version=4)
    assert nb.cells[2] == old.cells[2] and nb.metadata == old.metadata and nb.cells[1].metadata == old.cells[1].metadata
    # a second run changes nothing, and the original slug comes back exactly
    assert set_repo.main([NEW, "--root", str(root)]) == 0
    assert "0 file(s) changed" in capsys.readouterr().out
    assert set_repo.main([CURRENT, "--root", str(root)]) == 0
    assert tree(root) == before


def test_set_repo_on_a_copy_of_the_course(tmp_path):
    """The real README and notebooks, through the command line a fork would use."""
    root = repo_copy(tmp_path, NOTEBOOKS)
    r = subprocess.run([sys.executable, "-m", "tools.set_repo", NEW, "--root", str(root)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert f"({2 + len(NOTEBOOKS)} file(s) changed)" in r.stdout
    for path in NOTEBOOKS:
        nb = nbformat.read(root / "notebooks" / path.name, as_version=4)
        assert [slug for _, slug in set_repo.notebook_repo_lines(nb)] == [NEW]
        old = nbformat.read(path, as_version=4)
        assert [c.outputs for c in nb.cells if c.cell_type == "code"] == \
               [c.outputs for c in old.cells if c.cell_type == "code"], "outputs untouched"


@pytest.mark.parametrize("slug, says", [
    ("https://github.com/alice/fork", "not as a URL"),
    ("alice", "is not a GitHub OWNER/NAME"),
    ("alice/fork/extra", "is not a GitHub OWNER/NAME"),
    ("al!ce/fork", "is not a GitHub OWNER/NAME"),
    ("alice/fork.git", "not as a URL"),
])
def test_set_repo_refuses_a_bad_slug_and_writes_nothing(tmp_path, capsys, slug, says):
    root = repo_copy(tmp_path, [])
    small_notebook(root / "notebooks" / "01_step.ipynb")
    before = tree(root)
    assert set_repo.main([slug, "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert says in err and len(err.splitlines()) == 1
    assert tree(root) == before


def test_set_repo_needs_the_bootstrap_line_in_every_notebook_before_writing(tmp_path, capsys):
    root = repo_copy(tmp_path, [])
    small_notebook(root / "notebooks" / "01_step.ipynb")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, root / "notebooks" / "02_no_repo.ipynb")
    before = tree(root)
    assert set_repo.main(["alice/fork-8k", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "02_no_repo.ipynb" in err and 'REPO = "OWNER/NAME"' in err and len(err.splitlines()) == 1
    assert tree(root) == before, "README and the good notebook are untouched too"


def test_set_repo_reports_an_unreadable_notebook(tmp_path, capsys):
    root = repo_copy(tmp_path, [])
    (root / "notebooks" / "01_broken.ipynb").write_text("{not json")
    before = tree(root)
    assert set_repo.main(["alice/fork-8k", "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert "01_broken.ipynb: not a readable notebook" in err and len(err.splitlines()) == 1
    assert tree(root) == before


# What GitHub accepts, and nothing else: a copy-pasted name ending in a newline was accepted once (``$`` with
# ``match``) and split every link and every notebook's REPO line.
@pytest.mark.parametrize("slug", ["alice/mnist-8k\n", "alice/mnist-8k ", "alice/mnist-8k\t", " alice/mnist-8k",
                                  "-alice/mnist-8k", "alice-/mnist-8k", "al--ice/mnist-8k", "a" * 40 + "/mnist-8k",
                                  "alice/" + "n" * 101, "alice/", "/mnist-8k"])
def test_set_repo_refuses_what_github_does_not_accept_and_writes_nothing(tmp_path, capsys, slug):
    root = repo_copy(tmp_path, NOTEBOOKS)
    before = tree(root)
    assert set_repo.main([slug, "--root", str(root)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and repr(slug) in err and "OWNER/NAME" in err, err
    assert tree(root) == before


def test_set_repo_refuses_a_pasted_newline_on_the_command_line(tmp_path):
    root = repo_copy(tmp_path, NOTEBOOKS)
    before = tree(root)
    r = subprocess.run([sys.executable, "-m", "tools.set_repo", "alice/mnist-8k\n", "--root", str(root)],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.splitlines() == [r.stderr.strip()] and "'alice/mnist-8k\\n'" in r.stderr, r.stderr
    assert tree(root) == before


@pytest.mark.parametrize("slug", ["a/b", "a-b-c/x.y_z-1", "A" * 39 + "/mnist-8k", "alice/" + "n" * 100, "alice/.x"])
def test_set_repo_accepts_every_name_github_accepts(slug):
    assert set_repo.check_slug(slug) == slug


def test_set_repo_changes_nothing_when_one_file_cannot_be_written(tmp_path, capsys):
    root = repo_copy(tmp_path, NOTEBOOKS)
    locked = root / "notebooks" / "04_gap.ipynb"
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here (root on a file system with attributes is needed); "
                    "test_set_repo_puts_back_what_it_renamed_when_a_rename_fails covers the rollback")
    try:
        before = tree(root)
        one_error_line(capsys, set_repo.main, ["alice/fork-8k", "--root", str(root)], "04_gap.ipynb",
                       "nothing was changed")
        assert tree(root) == before
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)


def test_set_repo_puts_back_what_it_renamed_when_a_rename_fails(tmp_path, capsys, monkeypatch):
    root = repo_copy(tmp_path, NOTEBOOKS)
    before = tree(root)
    real_replace, calls = os.replace, []

    def fail_on_the_fourth(src, dst):
        calls.append(dst)
        if len(calls) == 4:
            raise PermissionError(1, "Operation not permitted", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", fail_on_the_fourth)
    one_error_line(capsys, set_repo.main, ["alice/fork-8k", "--root", str(root)], "nothing was changed")
    assert tree(root) == before, "the three files already renamed are back as they were; no temporary file"


@pytest.mark.parametrize("slug", ["alice/..", "alice/."])
def test_set_repo_refuses_dot_names(tmp_path, capsys, slug):
    """GitHub refuses these names, and the Colab clone target would become /content/.."""
    root = repo_copy(tmp_path, NOTEBOOKS)
    before = tree(root)
    one_error_line(capsys, set_repo.main, [slug, "--root", str(root)], repr(slug))
    assert tree(root) == before
