"""Make the student edition of the course with otter-grader: ``make student`` (python -m tools.student).

    .venv-otter/bin/python -m tools.student                 # all five notebooks into build/student/
    .venv-otter/bin/python -m tools.student notebooks/02_batchnorm.ipynb --out /tmp/student

The notebooks in notebooks/ are otter's master notebooks (raw cells ``# BEGIN QUESTION`` /
``# BEGIN SOLUTION`` / ``# BEGIN TESTS`` and one ``# ASSIGNMENT CONFIG``). For each one this runs
``otter assign`` and collects what it writes into one folder a teacher hands out or publishes:

    build/student/NAME.ipynb                      the student edition: solutions replaced, no outputs
    build/student/tests/NAME/QUESTION.py          the checks grader.check("QUESTION") runs
    build/student/autograder/NAME-autograder.zip  for `otter grade` / `otter run` (the course code inside)

Before ``otter assign`` reads a notebook, one code cell is added after the course's set-up cell (the
notebook's second code cell): it imports otter (installing the missing packages of
requirements/student.txt with --no-deps where they are missing, as on Colab), fetches the checks on
Colab, and makes ``grader``. otter's own first-cell init cell cannot be used: it would run before the
set-up cell that finds (or, on Colab, clones) the course. Each master is read from a staging folder
(.stage/NAME/ in the folder being built) where copies of utils/, the results the notebooks read and the
autograder's requirements sit beside it, because otter copies only files below the master notebook into
the autograder.

The new edition is built in build/.student.new/ (beside the output, on its file system), with what this run
does not rebuild copied from the previous edition, and takes its place by two renames only when complete:
a failure (otter, a full disk) removes it and leaves the previous edition as it was.

Runs in .venv-otter (otter's own pins); of the course it imports only utils.settings, which needs no torch.
"""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

from utils.settings import Parser  # the standard library only: .venv-otter has no torch

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build" / "student"
OTTER = Path(sys.executable).parent / "otter"
STUDENT_BRANCH = "student"  # where .github/workflows/pages.yml publishes build/student (notebooks + tests)
# copied beside the staged master: otter puts only files below the master (no links) into the autograder
STAGED = ("utils", "results/steps.json", "results/exercises.json", "results/lessons", "requirements/student.txt",
          "requirements/autograder.txt")  # what the notebooks read; the lesson networks all five
BADGE = re.compile(r"(https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/)main/notebooks/([\w.-]+\.ipynb)")
OTTER_CELL_MARK = "# The exercises' checks (otter-grader)"
ANSWER_KEY = "answer-key"  # the tag of the cells that hold a questionnaire's answers: not in the student edition
# What a student edition folder holds, and what running its notebooks there leaves (otter's log, Jupyter's
# checkpoints): a rebuild replaces the whole folder, these included.
EDITION = ("*.ipynb", "tests", "autograder", ".stage", ".OTTER_LOG", ".ipynb_checkpoints")


class StudentEditionError(Exception):
    """One line saying what is wrong with a master notebook or with otter's output."""


def otter_cell(stem: str) -> str:
    """The code cell that gives the notebook ``grader``; it runs after the set-up cell (ROOT, ON_COLAB, REPO).

    Without its checks beside it (a notebook downloaded alone) otter's ``grader.check`` raises and Run All stops
    at the first exercise: then the cell says so once, and ``grader`` is a stand-in whose checks say they did
    not run."""
    return f'''{OTTER_CELL_MARK}: grader.check("name") runs the checks of one exercise.
import importlib, importlib.util, types

requirements = [line.split("#") for line in (ROOT / "requirements/student.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]
missing = [spec.strip() for spec, module in requirements if importlib.util.find_spec(module.strip()) is None]
if missing:  # e.g. on Colab: otter's few packages, --no-deps, so Colab's torch and the rest stay as they are
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", *missing], check=True)
    importlib.invalidate_caches()
checks = Path("tests/{stem}")
if ON_COLAB and not checks.is_dir():  # the checks, from the published student edition
    subprocess.run(["git", "clone", "-q", "--depth", "1", "--branch", "{STUDENT_BRANCH}",
                    f"https://github.com/{{REPO}}", "/content/student-edition"], check=True)
    os.symlink("/content/student-edition/tests", "tests")
import otter

if checks.is_dir() or otter.Notebook._grading_mode:  # (when otter grades it, it brings the checks)
    grader = otter.Notebook("{stem}.ipynb" if os.path.isfile("{stem}.ipynb") else None, tests_dir=str(checks))
else:  # the notebook without its tests/ folder: the exercises still run, their checks cannot
    print(f"The checks of the exercises were not found: expected in {{checks.resolve()}}. Keep the tests/ folder "
          "handed out with this notebook beside it, or open the notebook in a clone of the course after "
          "`make student` (build/student/).")
    grader = types.SimpleNamespace(check=lambda name: print(f"checks for {{name}} not run: no {{checks}}/ here"))'''


def with_otter_cell(nb, stem: str):
    """A copy of the master ``nb`` with the otter cell after its set-up cell (its second code cell), and without
    the cells tagged ``answer-key`` (the questionnaire's answers)."""
    nb = nbformat.from_dict(nb)
    code = [i for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    if len(code) < 2 or "import google.colab" not in nb.cells[code[1]].source:
        raise StudentEditionError(f"{stem}: the second code cell is not the course's set-up cell")
    if any(OTTER_CELL_MARK in c.source for c in nb.cells):
        raise StudentEditionError(f"{stem}: the master already has an otter cell; remove it, tools/student.py adds it")
    cell = nbformat.v4.new_code_cell(otter_cell(stem))
    cell.metadata["tags"] = ["otter-init"]
    nb.cells.insert(code[1] + 1, cell)
    nb.cells = [c for c in nb.cells if ANSWER_KEY not in c.metadata.get("tags", [])]  # the instructor's alone
    return nb


def stage(master: Path, folder: Path) -> Path:
    """The master (with its otter cell) in ``folder``, with copies of what the autograder must hold."""
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    for name in STAGED:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, folder / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(ROOT / name, folder / name)
    staged = folder / master.name
    nbformat.write(with_otter_cell(nbformat.read(master, as_version=4), master.stem), staged)
    return staged


def student_badge(nb) -> None:
    """Point the notebook's Colab badge at its student edition (the branch pages.yml publishes)."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            cell.source = BADGE.sub(rf"\g<1>{STUDENT_BRANCH}/\g<2>", cell.source)


def make(master: Path, out: Path) -> list[str]:
    """Run otter assign on one master; collect its student notebook, checks and autograder into ``out``."""
    stem = master.stem
    assigned = out / ".stage" / f"{stem}-assigned"
    staged = stage(master, out / ".stage" / stem)
    if assigned.exists():
        shutil.rmtree(assigned)
    done = subprocess.run([str(OTTER), "assign", "--no-pdfs", "--no-run-tests", staged.name, str(assigned)],
                          cwd=staged.parent, capture_output=True, text=True)
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise StudentEditionError(f"{stem}: otter assign failed: {last if len(last) < 300 else last[:300] + ' ...'}")
    student_nb = assigned / "student" / master.name
    tests = sorted((assigned / "student" / "tests").glob("*.py"))
    zips = sorted((assigned / "autograder").glob("*.zip"))
    if not student_nb.is_file() or not tests or len(zips) != 1:
        raise StudentEditionError(f"{stem}: otter assign wrote no student notebook, no checks or not one autograder")
    nb = nbformat.read(student_nb, as_version=4)
    student_badge(nb)
    nbformat.write(nb, out / master.name)
    (out / "tests" / stem).mkdir(parents=True, exist_ok=True)
    for test in tests:
        shutil.copy2(test, out / "tests" / stem / test.name)
    (out / "autograder").mkdir(exist_ok=True)
    shutil.copy2(zips[0], out / "autograder" / f"{stem}-autograder.zip")
    return [t.stem for t in tests]


def shown(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def carry_over(old: Path, new: Path, masters: list[Path]) -> None:
    """Copy into ``new`` what the previous edition ``old`` holds and this run does not rebuild."""
    rebuilt = {".stage"} | {name for m in masters for name in (m.name, m.stem, f"{m.stem}-autograder.zip")}
    try:
        shutil.copytree(old, new, dirs_exist_ok=True, ignore=lambda _, names: [n for n in names if n in rebuilt])
    except shutil.Error as exc:  # one (source, copy, why) per file that failed: the first says it all
        raise OSError(exc.args[0][0][2]) from exc


def swap(new: Path, out: Path, old: Path) -> None:
    """Put the complete edition ``new`` at ``out`` by renames (one file system); the previous one goes last."""
    if out.exists():
        os.rename(out, old)
    try:
        os.rename(new, out)
    except OSError:
        if old.exists():
            os.rename(old, out)
        raise
    shutil.rmtree(old, ignore_errors=True)  # none on a first build


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.student", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="master notebooks (default: notebooks/0*.ipynb)")
    parser.add_argument("--out", type=Path, default=OUT, help=f"output folder (default: {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    if not OTTER.is_file():
        parser.error(f"no otter beside {sys.executable}: run this with .venv-otter/bin/python (make student)")
    masters = [Path(p).resolve() for p in args.notebooks] or sorted(NOTEBOOKS.glob("0*.ipynb"))
    missing = [str(p) for p in masters if not p.is_file()]
    if missing:
        parser.error(f"no notebook at {', '.join(missing)}")
    out = args.out.resolve()
    new, old = out.with_name(f".{out.name}.new"), out.with_name(f".{out.name}.old")
    if old.is_dir() and not out.exists():  # a run killed between its two renames: the previous edition is back
        os.rename(old, out)
    if out.exists() and not out.is_dir():
        parser.error(f"--out {args.out}: is a file; give a folder")
    foreign = [p.name for p in out.iterdir() if not any(fnmatch.fnmatch(p.name, e) for e in EDITION)] \
        if out.is_dir() else []
    if foreign:  # the folder is replaced as a whole: never anything else's
        parser.error(f"--out {args.out}: holds {foreign[0]!r}, which is not part of a student edition; give a new "
                     "folder or one that make student wrote")
    done = []
    try:
        for leftover in (new, old):  # of a run that was killed
            shutil.rmtree(leftover, ignore_errors=True)
        new.mkdir(parents=True)
        if out.is_dir():
            carry_over(out, new, masters)
        for master in masters:
            questions = make(master, new)
            done.append(f"{shown(out / master.name)}: {len(questions)} exercises with checks ({', '.join(questions)})")
        shutil.rmtree(new / ".stage")
        swap(new, out, old)
    except (StudentEditionError, OSError) as exc:
        print(f"{parser.prog}: error: {exc}; {shown(out)} is left as it was: fix that (free disk space if it is "
              "full), then run this again", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(new, ignore_errors=True)
    print(*done, sep="\n")
    print(f"student edition in {shown(out)}/: notebooks, tests/ (the checks), autograder/ (one zip per notebook)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
