"""The student edition that ``make student`` writes to build/student/ (otter assign on each notebook).

* fast: each exercise cell of the student edition against its solution in notebooks/ (no solution line
  left, otter's placeholder there, the rest of the cell kept), its ``grader.check`` cell and its test
  file (the master's own asserts), the otter cell after the set-up cell, and no stored output at all;
  tools.student itself (otter stubbed): a failed build leaves the previous edition as it was, and the otter
  cell of a notebook without its tests/ folder says so once and gives a ``grader`` whose checks do not raise;
* slow: the five student notebooks executed as handed out, in quick mode: no error, no stderr, and every
  ``grader.check`` reports its exercise as not passed; then, in the same kernel, each answer cell
  typed in with three or more plausible wrong answers (tests/wrong_answers.py), each run with its check,
  which must report a failure, then with its solution: every check passes; one of them run to the end
  without its tests/ folder; and the README's ``otter run`` command, run exactly as written, grades the
  unanswered edition with no point per exercise.

That the solutions pass every check is nbval's run of notebooks/ in quick mode (tests/test_notebooks.py):
there the checks are plain code cells that raise when a solution is wrong.
"""
from __future__ import annotations

import ast
import copy
import errno
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from helpers import NOTEBOOKS, ROOT, tree
from wrong_answers import WRONG

from tools import student as student_tool  # it runs in .venv-otter, but needs only nbformat (in .venv too)
from utils.course import QUICK_ENV
from utils.models import STEPS

STUDENT = ROOT / "build" / "student"
BOUNDARY = re.compile(r"#\s+(BEGIN|END)\s+(QUESTION|SOLUTION|TESTS)\b")
SOLUTION_LINE = re.compile(r"#\s*SOLUTION(\s+NO PROMPT)?\s*$")
CHECK = re.compile(r'^grader\.check\("([\w-]+)"\)$')
OTTER_CELL = "# The exercises' checks (otter-grader)"
pytestmark = pytest.mark.student  # every test here reads build/student/, which make test builds after the fast tests
STUDENT_RUN_S = 900  # one notebook in quick mode: under a minute here, generous for a loaded CI host


def questions(master) -> list[dict]:
    """Each otter question of a master notebook: its name, solution code cells and test code cells."""
    import yaml

    found, stack = [], []
    for cell in master.cells:
        match = BOUNDARY.match(cell.source) if cell.cell_type == "raw" else None
        if match:
            edge, kind = match.groups()
            if edge == "BEGIN":
                stack.append(kind)
                if kind == "QUESTION":
                    found.append({"name": yaml.safe_load(cell.source)["name"], "solutions": [], "tests": []})
            else:
                stack.pop()
        elif stack and cell.cell_type == "code" and stack[-1] in ("SOLUTION", "TESTS"):
            found[-1]["solutions" if stack[-1] == "SOLUTION" else "tests"].append(cell.source)
    return found


def split_solution(source: str) -> tuple[list[str], list[str]]:
    """(the solution's own lines, the lines otter keeps for the student) of one master cell."""
    solution, kept, inside = [], [], False
    for line in source.splitlines():
        if line.strip() == "# BEGIN SOLUTION":
            inside = True
        elif line.strip() == "# END SOLUTION":
            inside = False
        elif inside:
            solution.append(line)
        elif SOLUTION_LINE.search(line):
            solution.append(line[:SOLUTION_LINE.search(line).start()])
        else:
            kept.append(line)
    return solution, kept


def bare(line: str) -> str:
    """A line without its ``# SOLUTION`` marker and surrounding blanks, as compared here."""
    return SOLUTION_LINE.sub("", line).strip()


def telling(line: str) -> bool:
    """A solution line long enough to give something away (not a lone bracket)."""
    return len(re.sub(r"[\s()\[\],]", "", line)) >= 4


def case_code(test_file: Path) -> list[str]:
    """The code of each case of an otter test file (OK format), as Python source."""
    scope: dict = {}
    exec(test_file.read_text(), scope)
    cases = [case for suite in scope["test"]["suites"] for case in suite["cases"]]
    return ["\n".join(line[4:] for line in case["code"].splitlines()) for case in cases]


def same_code(a: str, b: str) -> bool:
    return ast.dump(ast.parse(a)) == ast.dump(ast.parse(b))


def bound_names(tree: ast.AST) -> set[str]:
    """Every name a piece of code binds: assignments, imports, defs, classes, loop and with targets."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.arg):
            names.add(node.arg)
    return names


def unbound_in_checks(master, student, tests_dir: Path) -> dict[str, set[str]]:
    """Names each check reads that neither the student edition's cells, nor a right answer (what the
    solutions define), nor the check itself define.

    otter runs a check in a copy of the notebook's globals, so what one check imports is gone for the
    next: a check that leans on another check's import fails for every student."""
    import builtins

    kept = [c.source for c in student.cells if c.cell_type == "code" and not CHECK.match(c.source.strip())]
    kept += [s for q in questions(master) for s in q["solutions"]]
    defined = set(dir(builtins)) | {"grader"}
    for source in kept:
        defined |= bound_names(ast.parse(source))
    unbound = {}
    for test_file in sorted(tests_dir.glob("*.py")):
        for code in case_code(test_file):
            tree = ast.parse(code)
            read = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
            if missing := read - defined - bound_names(tree):
                unbound.setdefault(test_file.stem, set()).update(missing)
    return unbound


def edition_problems(master, student, tests_dir: Path) -> list[str]:
    """What is wrong with the student edition of ``master`` (empty: nothing)."""
    bad = []
    qs = questions(master)
    code = [c for c in student.cells if c.cell_type == "code"]
    answers = [c for c in code if "otter_answer_cell" in c.metadata.get("tags", [])]
    solutions = [s for q in qs for s in q["solutions"]]
    if len(answers) != len(solutions):
        return [f"{len(answers)} answer cells for {len(solutions)} solution cells"]
    # lines the master shows outside its solutions (a lesson cell may hold the same line as a solution)
    public = {line.strip() for c in master.cells if c.source not in solutions for line in c.source.splitlines()}
    public |= {line.strip() for s in solutions for line in split_solution(s)[1]}
    everywhere = {bare(line) for c in student.cells for line in c.source.splitlines()}
    for solution, answer in zip(solutions, answers, strict=True):
        own, kept = split_solution(solution)
        lines = [bare(line) for line in answer.source.splitlines()]
        leaked = [line.strip() for line in own if telling(line)
                  and (line.strip() in lines or (line.strip() in everywhere and line.strip() not in public))]
        if leaked:
            bad.append(f"solution code left in the student edition: {leaked[0]!r}")
        if "..." not in answer.source:
            bad.append(f"no placeholder (...) in the answer cell {answer.source[:40]!r}")
        missing = [line.strip() for line in kept if line.strip() and line.strip() not in lines]
        if missing:
            bad.append(f"a line of the exercise cell not kept for the student: {missing[0]!r}")
    checks = [m.group(1) for c in code if (m := CHECK.match(c.source.strip()))]
    if checks != [q["name"] for q in qs]:
        bad.append(f"check cells {checks}, not one per exercise in order {[q['name'] for q in qs]}")
    for q in qs:
        test_file = tests_dir / f"{q['name']}.py"
        if not test_file.is_file():
            bad.append(f"no test file {test_file.name}")
            continue
        cases = case_code(test_file)
        if len(cases) != len(q["tests"]) or not all(map(same_code, cases, q["tests"])):
            bad.append(f"{test_file.name} does not hold the master's checks of {q['name']}")
    for question, names in unbound_in_checks(master, student, tests_dir).items():
        bad.append(f"the check of {question} reads {sorted(names)}, which no cell of the student edition defines")
    for cell in code:
        if cell.get("outputs") or cell.get("execution_count"):
            bad.append(f"a stored output or execution count in the student edition: {cell.source[:40]!r}")
    setup = next(i for i, c in enumerate(code) if "import google.colab" in c.source)
    if setup + 1 >= len(code) or OTTER_CELL not in code[setup + 1].source:
        bad.append("the otter cell does not come right after the set-up cell")
    return bad


def student_edition(stem: str):
    path = STUDENT / f"{stem}.ipynb"
    assert path.is_file(), f"{path.relative_to(ROOT)} is missing: run `make student`"
    master = NOTEBOOKS / f"{stem}.ipynb"
    assert path.stat().st_mtime >= master.stat().st_mtime, f"{path.relative_to(ROOT)} is stale: run `make student`"
    return nbformat.read(master, as_version=4), nbformat.read(path, as_version=4)


def test_five_student_notebooks_with_their_checks_and_autograders():
    assert sorted(p.stem for p in STUDENT.glob("*.ipynb")) == list(STEPS), "run `make student`"
    for stem in STEPS:
        assert sorted(STUDENT.glob(f"tests/{stem}/*.py")), stem
        assert (STUDENT / "autograder" / f"{stem}-autograder.zip").is_file(), stem


@pytest.mark.parametrize("stem", list(STEPS))
def test_the_autograder_holds_every_stored_result_its_notebook_reads(stem):
    """Otter grades a submission by running it in its own folder: each stored file the notebook loads
    (a lesson network, the stored runs) must be in the notebook's autograder zip."""
    import zipfile

    source = "\n".join(c.source for c in nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4).cells)
    read = {f"files/results/lessons/{model}.pt" for model in re.findall(r'trained\("(\w+)"', source)}
    read |= {"files/results/steps.json", "files/results/exercises.json"}
    assert len(read) > 2, "every notebook loads a trained lesson network"
    with zipfile.ZipFile(STUDENT / "autograder" / f"{stem}-autograder.zip") as autograder:
        assert read - set(autograder.namelist()) == set(), "`make student` after adding a file to STAGED"


@pytest.mark.parametrize("stem", list(STEPS))
def test_each_exercise_cell_is_its_solution_blanked_with_its_check_kept(stem):
    master, student = student_edition(stem)
    assert len(questions(master)) >= 2
    assert edition_problems(master, student, STUDENT / "tests" / stem) == []


@pytest.mark.parametrize("stem", list(STEPS))
def test_the_student_badge_opens_the_student_edition(stem):
    _, student = student_edition(stem)
    badges = re.findall(r"https://colab\.research\.google\.com/github/[\w.-]+/[\w.-]+/blob/([\w./-]+)",
                        student.cells[0].source)
    assert badges == [f"student/{stem}.ipynb"]


def test_the_comparison_fails_on_a_leaked_solution_a_lost_check_and_an_output():
    master, student = student_edition("02_batchnorm")
    tests_dir = STUDENT / "tests" / "02_batchnorm"
    first_answer = next(i for i, c in enumerate(student.cells) if "otter_answer_cell" in c.metadata.get("tags", []))
    leaked = copy.deepcopy(student)
    leaked.cells[first_answer].source = questions(master)[0]["solutions"][0]
    assert any("solution code left" in p for p in edition_problems(master, leaked, tests_dir))
    block = copy.deepcopy(student)  # a solution block (# BEGIN SOLUTION ... # END SOLUTION) left in
    second = [i for i, c in enumerate(block.cells) if "otter_answer_cell" in c.metadata.get("tags", [])][1]
    block.cells[second].source = questions(master)[1]["solutions"][0].replace("# BEGIN SOLUTION", "").replace(
        "# END SOLUTION", "")
    assert any("solution code left" in p for p in edition_problems(master, block, tests_dir))
    lost = copy.deepcopy(student)
    lost.cells = [c for c in lost.cells if "grader.check" not in c.source]
    assert any("check cells" in p for p in edition_problems(master, lost, tests_dir))
    shown = copy.deepcopy(student)
    shown.cells[first_answer].outputs = [nbformat.v4.new_output("stream", name="stdout", text="70 11656\n")]
    assert any("stored output" in p for p in edition_problems(master, shown, tests_dir))
    unbound = copy.deepcopy(student)  # the name a check reads is defined only in another check
    unbound.cells = [c for c in unbound.cells if "import build_model" not in c.source]
    assert any("which no cell of the student edition defines" in p
               for p in edition_problems(master, unbound, tests_dir))
    other = copy.deepcopy(master)
    test_cell = next(c for c in other.cells if c.cell_type == "code" and "assert answer_batchnorm" in c.source)
    test_cell.source = test_cell.source.replace("answer_batchnorm_parameters ==", "answer_batchnorm_parameters + 1 ==")
    assert any("does not hold the master's checks" in p for p in edition_problems(other, student, tests_dir))


def problems_in(cells) -> list[str]:
    errors = [f"{o.ename}: {o.evalue}" for c in cells for o in c.outputs if o.output_type == "error"]
    return errors + [f"stderr: {o.text}" for c in cells for o in c.outputs
                     if o.output_type == "stream" and o.name == "stderr"]


def check_reports(cells) -> dict[str, str]:
    """What each ``grader.check`` cell showed (its text/plain), by exercise."""
    return {m.group(1): "".join(o.get("data", {}).get("text/plain", "") for o in c.outputs)
            for c in cells if (m := CHECK.match(c.source.strip()))}


@pytest.mark.slow
@pytest.mark.parametrize("stem", list(STEPS))
def test_the_student_edition_runs_with_every_check_unanswered_then_passes_them_answered(stem, monkeypatch):
    """As a student works: Run All of the edition as handed out, in quick mode, ends with no error and no
    stderr, every check reporting its exercise as not passed; then, in the same kernel, each answer cell
    typed in with each of its wrong answers and run again, followed by its check: every check fails; then
    with its solution: every check passes."""
    from nbclient import NotebookClient

    master, student = student_edition(stem)
    monkeypatch.setenv(QUICK_ENV, "1")  # the kernel inherits this process's environment
    client = NotebookClient(student, timeout=STUDENT_RUN_S, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(STUDENT)}})
    code = [c for c in student.cells if c.cell_type == "code"]
    answers = [c for c in code if "otter_answer_cell" in c.metadata.get("tags", [])]
    solutions = [s for q in questions(master) for s in q["solutions"]]
    with client.setup_kernel():
        for index, cell in enumerate(student.cells):
            client.execute_cell(cell, index)
        unanswered = check_reports(code)
        assert all(c.execution_count for c in code), "every cell ran"
        assert problems_in(code) == []
        answered, wrong = [], {}  # each answer, then the cells up to its check, run again as the student would

        def answer_with(source: str, answer, check) -> list:
            again = [nbformat.from_dict(copy.deepcopy(c)) for c in code[code.index(answer):code.index(check) + 1]]
            again[0].source = source
            for cell in again:
                student.cells.append(cell)
                client.execute_cell(cell, len(student.cells) - 1)
            return again

        for answer, solution in zip(answers, solutions, strict=True):
            check = next(c for c in code[code.index(answer):] if CHECK.match(c.source.strip()))
            name = CHECK.match(check.source.strip()).group(1)
            for typed in WRONG[name]:  # each wrong answer, then the solution again for the cells after it
                wrong[(name, typed)] = check_reports(answer_with(typed, answer, check))[name]
            answered += answer_with(solution, answer, check)
    assert len(unanswered) >= 2
    for name, shown in unanswered.items():
        assert shown.startswith(f"{name} results:") and "failed" in shown, (name, shown[:200])
        assert "All test cases passed" not in shown and "passed!" not in shown, (name, shown[:200])
    assert problems_in(answered) == []
    reports = check_reports(answered)
    assert list(reports) == list(unanswered)
    assert [name for name, shown in reports.items() if "passed!" not in shown] == [], reports
    assert {name for name, _ in wrong} == set(reports) and all(len(WRONG[name]) >= 3 for name in reports)
    passed_wrong = [(name, typed) for (name, typed), shown in wrong.items() if "passed!" in shown]
    assert passed_wrong == [], "a check passed a wrong answer"
    assert all(shown.startswith(f"{name} results:") for (name, _), shown in wrong.items()), "each check reported"


def readme_block(heading: str, words: str) -> str:
    """The README's bash block after ``heading`` that holds ``words``, exactly as written there."""
    section = (ROOT / "README.md").read_text().split(f"\n{heading}\n", 1)[1]
    return next(block for block in re.findall(r"```bash\n(.*?)```", section, re.S) if words in block)


@pytest.mark.slow
def test_the_readme_grading_command_runs_as_written(tmp_path):
    """The README's `otter run` command, copied from it, run from a folder laid out like the repository root
    (links to .venv, .venv-otter and build/) on the unanswered student edition, in quick mode: it grades
    every exercise, with no point. otter grades in a temporary folder of its own, so a relative JUPYTER_PATH
    there finds no kernel."""
    master, _ = student_edition("02_batchnorm")
    command = readme_block("### Grade a folder of submissions", "otter run")
    for name in (".venv", ".venv-otter", "build"):
        (tmp_path / name).symlink_to(ROOT / name)
    shutil.copy2(STUDENT / "02_batchnorm.ipynb", tmp_path / "submission.ipynb")
    env = {**os.environ, "PWD": str(tmp_path), QUICK_ENV: "1"}  # PWD as the user's shell has it there
    done = subprocess.run(["bash", "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=STUDENT_RUN_S)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    results = json.loads((tmp_path / "grades" / "results.json").read_text())
    scores = {t["name"]: (t["score"], t["max_score"]) for t in results["tests"] if "score" in t}
    assert scores == {q["name"]: (0, 1.0) for q in questions(master)} and len(scores) == 3, scores


def previous_edition(out: Path) -> dict[str, bytes]:
    """A small stand-in for the edition an earlier ``make student`` left in ``out``; its files."""
    for stem in ("01_baseline", "02_batchnorm", "03_dropout"):
        (out / "tests" / stem).mkdir(parents=True)
        (out / f"{stem}.ipynb").write_text(f"previous {stem}")
        (out / "tests" / stem / "q1_old.py").write_text("test = {}")
        (out / "autograder").mkdir(exist_ok=True)
        (out / "autograder" / f"{stem}-autograder.zip").write_bytes(b"previous zip")
    return tree(out)


def fake_otter(fail_on: int, failure):
    """A stand-in for the ``otter assign`` subprocess: writes what otter writes, or ``failure`` on call ``fail_on``
    (an OSError is raised, a CompletedProcess returned)."""
    calls = []

    def run(argv, cwd, **kwargs):
        calls.append(argv)
        if len(calls) == fail_on:
            if isinstance(failure, OSError):
                raise failure
            return failure
        staged, assigned = Path(cwd) / argv[-2], Path(argv[-1])
        (assigned / "student" / "tests").mkdir(parents=True)
        (assigned / "autograder").mkdir()
        shutil.copy2(staged, assigned / "student" / staged.name)
        (assigned / "student" / "tests" / "q1_new.py").write_text("test = {}")
        (assigned / "autograder" / "any.zip").write_bytes(b"new zip")
        return subprocess.CompletedProcess(argv, 0, "", "")
    return run


MASTERS = [str(NOTEBOOKS / "01_baseline.ipynb"), str(NOTEBOOKS / "02_batchnorm.ipynb")]


@pytest.mark.parametrize("failure, says", [
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (subprocess.CompletedProcess([], 1, "", "Traceback ...\nValueError: no ASSIGNMENT CONFIG"), "otter assign failed"),
], ids=["disk full", "otter fails"])
def test_a_failed_build_leaves_the_previous_edition_as_it_was(tmp_path, monkeypatch, capsys, failure, says):
    """The new edition is built beside the old one and replaces it only when complete: a failure on the second
    notebook leaves the previous edition byte for byte, and no staging or temporary folder behind."""
    out = tmp_path / "student"
    before = previous_edition(out)
    monkeypatch.setattr(student_tool, "OTTER", Path(sys.executable))
    monkeypatch.setattr(student_tool.subprocess, "run", fake_otter(2, failure))
    assert student_tool.main([*MASTERS, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("python -m tools.student: error: ") and says in err[0], err
    assert str(out) in err[0] and "run" in err[0], "says where, and what to do"
    assert tree(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"], "no temporary folder beside it"


def test_a_build_replaces_the_rebuilt_notebooks_and_keeps_the_others(tmp_path, monkeypatch, capsys):
    out = tmp_path / "student"
    before = previous_edition(out)
    monkeypatch.setattr(student_tool, "OTTER", Path(sys.executable))
    monkeypatch.setattr(student_tool.subprocess, "run", fake_otter(0, None))
    assert student_tool.main([*MASTERS, "--out", str(out)]) == 0
    after = tree(out)
    kept = {k: v for k, v in before.items() if "03_dropout" in k}
    assert {k: v for k, v in after.items() if "03_dropout" in k} == kept, "what was not rebuilt is carried over"
    for stem in ("01_baseline", "02_batchnorm"):
        assert nbformat.reads(after[f"{stem}.ipynb"].decode(), as_version=4).cells, "otter's student notebook"
        assert sorted(k for k in after if k.startswith(f"tests/{stem}/")) == [f"tests/{stem}/q1_new.py"]
        assert after[f"autograder/{stem}-autograder.zip"] == b"new zip"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["student"] and not (out / ".stage").exists()


def test_a_first_build_makes_the_edition_where_there_was_none(tmp_path, monkeypatch, capsys):
    """A fresh clone has no build/student/ yet (what make test meets in CI)."""
    out = tmp_path / "build" / "student"
    monkeypatch.setattr(student_tool, "OTTER", Path(sys.executable))
    monkeypatch.setattr(student_tool.subprocess, "run", fake_otter(0, None))
    assert student_tool.main([*MASTERS, "--out", str(out)]) == 0, capsys.readouterr().err
    assert sorted(tree(out)) == ["01_baseline.ipynb", "02_batchnorm.ipynb", "autograder/01_baseline-autograder.zip",
                                 "autograder/02_batchnorm-autograder.zip", "tests/01_baseline/q1_new.py",
                                 "tests/02_batchnorm/q1_new.py"]
    assert sorted(p.name for p in out.parent.iterdir()) == ["student"], "no temporary folder beside it"


def test_an_out_folder_that_holds_anything_else_is_refused(tmp_path, monkeypatch, capsys):
    """The output folder is replaced as a whole, so one that holds something else is never taken for an edition."""
    out = tmp_path / "mine"
    before = previous_edition(out)
    (out / "notes.txt").write_text("my notes")
    monkeypatch.setattr(student_tool, "OTTER", Path(sys.executable))
    monkeypatch.setattr(student_tool.subprocess, "run", fake_otter(0, None))
    with pytest.raises(SystemExit) as exit_:
        student_tool.main([*MASTERS, "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_.value.code == 2 and len(err) == 1 and f"--out {out}" in err[0] and "'notes.txt'" in err[0], err
    assert tree(out) == {**before, "notes.txt": b"my notes"}


def test_an_edition_whose_notebooks_were_run_is_rebuilt(tmp_path, monkeypatch, capsys):
    """Running the student notebooks in their folder leaves otter's log (and JupyterLab's checkpoints): a
    second `make test` or `make student` must rebuild the edition, not refuse it as someone else's folder."""
    out = tmp_path / "student"
    previous_edition(out)
    (out / ".OTTER_LOG").write_bytes(b"otter's log")
    (out / ".ipynb_checkpoints").mkdir()
    monkeypatch.setattr(student_tool, "OTTER", Path(sys.executable))
    monkeypatch.setattr(student_tool.subprocess, "run", fake_otter(0, None))
    student_tool.main([*MASTERS, "--out", str(out)])
    assert (out / "01_baseline.ipynb").is_file() and "error" not in capsys.readouterr().err


def run_otter_cell(tmp_path: Path, monkeypatch, with_checks: bool) -> dict:
    """The otter cell of 02_batchnorm run as in a notebook opened from ``tmp_path/nb`` (off Colab), after a set-up
    cell whose ROOT lists no missing package; its globals."""
    root, here = tmp_path / "root", tmp_path / "nb"
    (root / "requirements").mkdir(parents=True)
    (root / "requirements" / "student.txt").write_text("# nothing to install\n")
    here.mkdir()
    if with_checks:
        (here / "tests" / "02_batchnorm").mkdir(parents=True)
    monkeypatch.chdir(here)
    scope = {"ROOT": root, "ON_COLAB": False, "REPO": "OWNER/mnist-8k", "os": os, "subprocess": subprocess,
             "sys": sys, "Path": Path}
    exec(student_tool.otter_cell("02_batchnorm"), scope)
    return scope


def test_without_its_checks_the_notebook_says_so_once_and_its_checks_do_not_stop_run_all(tmp_path, monkeypatch,
                                                                                        capsys):
    """A student who downloaded the notebook alone: one line says where the checks were looked for and what to
    do, and each grader.check prints one line instead of raising (otter: 'Tests directory does not exist')."""
    grader = run_otter_cell(tmp_path, monkeypatch, with_checks=False)["grader"]
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and "not found" in said[0] and str(tmp_path / "nb" / "tests" / "02_batchnorm") in said[0]
    assert "tests/" in said[0] and "make student" in said[0], said
    grader.check("q1_x")
    said = capsys.readouterr().out.strip().splitlines()
    assert len(said) == 1 and said[0].startswith("checks for q1_x not run: "), said


@pytest.mark.parametrize("beside, grading", [(True, False), (False, True)], ids=["checks beside it", "otter grading"])
def test_with_its_checks_the_notebook_gets_otters_grader(tmp_path, monkeypatch, capsys, beside, grading):
    """otter grades in a folder of its own, with the checks in tests/: its grader, which records the results."""
    import otter

    monkeypatch.setattr(otter.Notebook, "_grading_mode", grading)
    assert isinstance(run_otter_cell(tmp_path, monkeypatch, with_checks=beside)["grader"], otter.Notebook)
    assert capsys.readouterr().out == ""


def stdout_of(cell) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


@pytest.mark.slow
def test_a_student_notebook_without_its_checks_runs_to_the_end(tmp_path, monkeypatch):
    """Run All of 02_batchnorm, in quick mode, opened in a folder that has the course's utils/ but no tests/:
    no error, no stderr; the otter cell says once that the checks were not found, each check that it did not run."""
    from nbclient import NotebookClient

    _, student = student_edition("02_batchnorm")
    for name in ("utils", "requirements"):
        (tmp_path / name).symlink_to(ROOT / name)
    monkeypatch.setenv(QUICK_ENV, "1")
    NotebookClient(student, timeout=STUDENT_RUN_S, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    code = [c for c in student.cells if c.cell_type == "code"]
    assert all(c.execution_count for c in code), "every cell ran"
    assert problems_in(code) == []
    otter_cell = next(c for c in code if OTTER_CELL in c.source)
    assert stdout_of(otter_cell).count("\n") == 1 and "were not found" in stdout_of(otter_cell)
    checks = {m.group(1): stdout_of(c) for c in code if (m := CHECK.match(c.source.strip()))}
    assert len(checks) == 3 and all(shown == f"checks for {name} not run: no tests/02_batchnorm/ here\n"
                                    for name, shown in checks.items()), checks
