"""The tools on bad input and damaged files (issue 17, cases 7-10, 12, 17, 18 and utils.data's errors): one
line, before any work is done, and no file left half-changed."""
import json
import os
import shutil
import subprocess
import sys

import pytest
from helpers import ROOT, one_error_line

from tools import bench, quoted_numbers, report, seeds, set_repo, steps, tune
from utils import fsutil

FINAL_SPEC = "q10 12 16 d 16 16 d"


def no_work(*args, **kwargs):
    raise AssertionError("work started before the arguments were checked")


@pytest.fixture
def blocker(tmp_path):
    """A plain file, where a folder would have to be."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


# 7. Where a sweep or the benchmark will write its result is checked before the work.
@pytest.mark.parametrize("where", ["inside a file", "a folder"])
def test_sweep_and_bench_outputs_are_checked_before_any_work(tmp_path, blocker, capsys, monkeypatch, where):
    bad = str(blocker / "x.json") if where == "inside a file" else str(tmp_path)
    for module in (steps, seeds):
        monkeypatch.setattr(module, "run_one", no_work)
    monkeypatch.setattr(bench, "usual_dataset", no_work)
    one_error_line(capsys, steps.main, ["--seeds", "1", "--summary", bad], "--summary", bad)
    one_error_line(capsys, seeds.main, ["--seeds", "1", "--summary", bad], "--summary", bad)
    one_error_line(capsys, bench.main, ["--device", "cpu", "--json", bad], "--json", bad)
    assert blocker.read_text() == "not a folder"


# 18. A seed given twice would count twice in the mean and the spread.
def test_a_seed_given_twice_is_refused(capsys, monkeypatch):
    for module in (steps, seeds):
        monkeypatch.setattr(module, "run_one", no_work)
    one_error_line(capsys, steps.main, ["--seeds", "1", "1", "--summary", os.devnull], "--seeds", "1 more than once")
    one_error_line(capsys, seeds.main, ["--seeds", "3", "2", "3", "--summary", os.devnull], "--seeds", "3")


# 8. tools.tune checks its arguments before it trains.
@pytest.mark.parametrize("argv, words", [
    ([FINAL_SPEC, "--seed", "-1"], ["--seed"]),
    ([FINAL_SPEC, "--weight-decay", "-1"], ["--weight-decay"]),
    ([FINAL_SPEC, "--dropout", "2"], ["--dropout"]),
    ([FINAL_SPEC, "--holdout", "0"], ["--holdout", "validation"]),
    (["0"], ["'0'", "channel count"]),
    (["q10 x"], ["unknown token 'x'"]),
    (["q8 q8 q8 q8 q8"], ["shrinks the 28x28 image"]),
    ([" "], ["empty candidate"]),
])
def test_tune_refuses_bad_arguments_before_training(capsys, monkeypatch, argv, words):
    monkeypatch.setattr(tune, "train", no_work)
    one_error_line(capsys, tune.main, argv, *words)


def test_tune_refuses_an_out_that_is_not_a_folder(blocker, capsys, monkeypatch):
    monkeypatch.setattr("utils.train.train_epoch", no_work)
    one_error_line(capsys, tune.main, [FINAL_SPEC, "--epochs", "1", "--out", str(blocker)], str(blocker))
    assert blocker.read_text() == "not a folder"


# 9. tools.set_repo changes every file or none.
def course_copy(tmp_path):
    root = tmp_path / "course"
    (root / "notebooks").mkdir(parents=True)
    for name in ("Makefile", "README.md"):
        shutil.copy2(ROOT / name, root / name)
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        shutil.copy2(path, root / "notebooks" / path.name)
    return root


def contents(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_set_repo_changes_nothing_when_one_file_cannot_be_written(tmp_path, capsys):
    root = course_copy(tmp_path)
    locked = root / "notebooks" / "04_gap.ipynb"
    if subprocess.run(["chattr", "+i", str(locked)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not permitted here (root on a file system with attributes is needed); "
                    "test_set_repo_puts_back_what_it_renamed_when_a_rename_fails covers the rollback")
    try:
        before = contents(root)
        one_error_line(capsys, set_repo.main, ["alice/fork-8k", "--root", str(root)], "04_gap.ipynb",
                       "nothing was changed")
        assert contents(root) == before
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)


def test_set_repo_puts_back_what_it_renamed_when_a_rename_fails(tmp_path, capsys, monkeypatch):
    root = course_copy(tmp_path)
    before = contents(root)
    real_replace, calls = os.replace, []

    def fail_on_the_fourth(src, dst):
        calls.append(dst)
        if len(calls) == 4:
            raise PermissionError(1, "Operation not permitted", str(dst))
        return real_replace(src, dst)

    monkeypatch.setattr(fsutil.os, "replace", fail_on_the_fourth)
    one_error_line(capsys, set_repo.main, ["alice/fork-8k", "--root", str(root)], "nothing was changed")
    assert contents(root) == before, "the three files already renamed are back as they were; no temporary file"


# 17. GitHub refuses these names; the Colab clone target would become /content/..
@pytest.mark.parametrize("slug", ["alice/..", "alice/."])
def test_set_repo_refuses_dot_names(tmp_path, capsys, slug):
    root = course_copy(tmp_path)
    before = contents(root)
    one_error_line(capsys, set_repo.main, [slug, "--root", str(root)], repr(slug))
    assert contents(root) == before


# 10. tools.report on damaged results: one line naming the file and how to write it again.
DAMAGED = {  # stored result -> content
    "seeds.json cut short": ("seeds.json", '{"recipe": "final (default)", "runs": [{"se'),
    "seeds.json without runs": ("seeds.json", '{"runs": []}'),
    "steps.json a list": ("steps.json", "[]"),
    "steps.json cut short": ("steps.json", '{"config": {"epochs": 1'),
    "bench file not JSON": ("bench", "{garbage"),
    "bench file of another shape": ("bench", '{"date": "2026-01-01T00:00:00"}'),
}


@pytest.mark.parametrize("case", DAMAGED)
@pytest.mark.parametrize("check", [True, False])
def test_report_names_a_damaged_result_and_writes_nothing(tmp_path, capsys, monkeypatch, case, check):
    readme = tmp_path / "README.md"
    shutil.copy2(report.README, readme)
    shutil.copytree(ROOT / "results", tmp_path / "results")
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "FIGURES", tmp_path / "results" / "figures")
    monkeypatch.setattr(report, "SEEDS", tmp_path / "results" / "seeds.json")
    monkeypatch.setattr(report, "STEPS_JSON", tmp_path / "results" / "steps.json")
    monkeypatch.setattr(report, "BENCH", tmp_path / "results" / "bench")
    name, text = DAMAGED[case]
    damaged = tmp_path / "results" / ("bench/zz-damaged.json" if name == "bench" else name)
    damaged.write_text(text)
    before = contents(tmp_path)
    one_error_line(capsys, report.main, ["--check"] if check else [], f"results/{damaged.name}"
                   if name != "bench" else damaged.name, "write it again")
    assert contents(tmp_path) == before


# 12. tools.quoted_numbers on damaged notebooks and a damaged steps.json.
@pytest.mark.parametrize("text", ['{"cells": [{"cell_type": "mark', "{}", "this is not JSON", "[]"])
def test_quoted_numbers_names_a_damaged_notebook(tmp_path, capsys, text):
    path = tmp_path / "broken.ipynb"
    path.write_text(text)
    one_error_line(capsys, quoted_numbers.main, [str(path)], "broken.ipynb", "not a readable notebook")


@pytest.mark.parametrize("text", ['{"steps": [{"params": 78', "[1, 2]", '{"steps": 5}'])
def test_quoted_numbers_names_a_damaged_steps_json(tmp_path, capsys, monkeypatch, text):
    steps_json = tmp_path / "steps.json"
    steps_json.write_text(text)
    monkeypatch.setattr(quoted_numbers, "STEPS_JSON", steps_json)
    one_error_line(capsys, quoted_numbers.main, [str(ROOT / "notebooks" / "01_baseline.ipynb")], "steps.json",
                   "make steps")


# 19 (second half). python -m utils.data: one line for a bad argument, no usage block.
@pytest.mark.filterwarnings("ignore:'utils.data' found in sys.modules:RuntimeWarning")  # runpy: it is imported
@pytest.mark.parametrize("argv", [["--bogus"], ["--root"], ["--root", ""]])
def test_utils_data_argument_errors_are_one_line(argv, capsys, monkeypatch):
    """``python -m utils.data`` run as __main__ in this process (runpy), with ``argv`` as its arguments."""
    import runpy

    monkeypatch.setattr(sys, "argv", ["python -m utils.data", *argv])
    line = one_error_line(capsys, lambda _: runpy.run_module("utils.data", run_name="__main__"), None)
    assert line.startswith("python -m utils.data: error: ") and "usage" not in line


def test_the_real_results_pass_these_checks(capsys):
    """The guards refuse damaged files only: the stored results and notebooks read as before."""
    assert report.main(["--check"]) == 0
    assert quoted_numbers.main([]) == 0
    assert json.loads((ROOT / "results" / "steps.json").read_text())["steps"]
