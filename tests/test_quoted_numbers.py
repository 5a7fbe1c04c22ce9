"""The number checker (tools/quoted_numbers.py): every number a notebook's Target, Result or Analysis
quotes must be backed by that notebook's outputs or results/steps.json; fixtures it must reject; damaged
files named in one line."""
from __future__ import annotations

import nbformat
import pytest
from helpers import ROOT, one_error_line

from tools import quoted_numbers


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


STEPS_FIXTURE = {"steps": [{"notebook": "04_gap", "test_accuracy": {"mean": 99.3567, "std": 0.0712}, "params": 7816}],
                 "seeds": [1, 2, 3, 4, 5]}


def test_checker_accepts_numbers_backed_by_outputs_or_steps_json():
    analysis = ("## Analysis: what changed\n\nThe final epoch reached 99.41% with 7,816 parameters, a gap of "
                "+0.12 points; over 5 seeds the mean is 99.36 ± 0.07 (99.4 rounded). Step 4 used `99.99` "
                "and 3x3 kernels, see [the log](runs/x_2.json), steps 1-4.")
    assert quoted_numbers.check_notebook(fixture_notebook(analysis), STEPS_FIXTURE, "04_gap.ipynb") == []


@pytest.mark.parametrize("claim, wrong", [
    ("The final epoch reached 99.42%.", "99.42"),  # off by one in the last digit
    ("The mean over seeds is 99.35.", "99.35"),  # steps.json holds 99.3567, which reads 99.36
    ("It used 7,817 parameters.", "7817"),
    ("Accuracy rose by 0.37 points.", "0.37"),  # a difference no output printed
])
def test_checker_rejects_a_number_nothing_backs(claim, wrong):
    problems = quoted_numbers.check_notebook(fixture_notebook("## Analysis\n\n" + claim), STEPS_FIXTURE, "04_gap")
    assert len(problems) == 1 and f": {wrong} is in no stored output" in problems[0]
    assert problems[0].startswith("04_gap, '## Analysis'")


def test_checker_takes_summaries_from_steps_json_but_not_curves_or_wall_times():
    steps = {"steps": [{"notebook": "05_augmentation", "params": 7816, "test_accuracy": {"mean": 99.4},
                        "gap": {"mean": -0.13},
                        "runs": [{"seed": 3, "final_test_accuracy": 99.44, "final_train_accuracy": 99.31, "gap": -0.13,
                                  "test_accuracy_curve": [98.76, 99.11], "wall_seconds": 123.45}]}]}
    nb = fixture_notebook("## Analysis\n\nSeed 3 ended at 99.44% (train 99.31%); epoch 2 read 99.11% after 123.45 s.")
    problems = quoted_numbers.check_notebook(nb, steps, "05_augmentation.ipynb")
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


TWO_STEPS = {"seeds": [1, 2, 3], "steps": [
    {"notebook": "03_dropout", "params": 11656, "test_accuracy": {"mean": 99.4867, "std": 0.0468}},
    {"notebook": "04_gap", "params": 7816, "test_accuracy": {"mean": 99.4523, "std": 0.0688}}]}


def test_checker_refuses_a_number_only_another_steps_row_backs():
    """Step 3's mean (99.49) quoted in notebook 04 is backed only if the sentence says it is about step 3."""
    unnamed = fixture_notebook("## Analysis\n\nThe mean over the seeds is 99.45%, against 99.49% before.")
    problems = quoted_numbers.check_notebook(unnamed, TWO_STEPS, "04_gap.ipynb")
    assert len(problems) == 1 and ": 99.49 is in no stored output" in problems[0]
    named = fixture_notebook("## Analysis\n\nThe mean over the seeds is 99.45%, against 99.49% in step 3.")
    assert quoted_numbers.check_notebook(named, TWO_STEPS, "04_gap.ipynb") == []
    # the reference covers its own sentence or list item only, not the next one
    later = fixture_notebook("## Analysis\n\n* Step 3 had Dropout.\n* The mean was 99.49%.")
    assert len(quoted_numbers.check_notebook(later, TWO_STEPS, "04_gap.ipynb")) == 1
    # the same number is this step's own in notebook 03
    assert quoted_numbers.check_notebook(unnamed, TWO_STEPS, "03_dropout.ipynb") == [
        "03_dropout.ipynb, '## Analysis': 99.45 is in no stored output of this notebook nor in the "
        "results/steps.json row of a step this sentence is about as mean"]


def test_checker_refuses_a_number_only_another_notebooks_output_backs():
    other = fixture_notebook("## Analysis\n\nNothing.")
    other.cells[1].outputs[0]["text"] += "Final test accuracy: 99.53%\n"
    here = fixture_notebook("## Analysis\n\nThe final epoch reached 99.53%.")
    assert quoted_numbers.check_notebook(other, None, "05_augmentation.ipynb") == []
    problems = quoted_numbers.check_notebook(here, None, "05_augmentation.ipynb")
    assert len(problems) == 1 and ": 99.53 is in no stored output" in problems[0]


def test_sentences_and_step_references():
    text = "## Analysis\n\n* **Accuracy.** It rose (step 2). Steps 1-3 differ.\n* Next: e.g. step 4, 99.41%."
    assert quoted_numbers.sentences(text) == ["## Analysis", "**Accuracy.** It rose (step 2).", "Steps 1-3 differ.",
                                              "Next: e.g. step 4, 99.41%."]
    assert [quoted_numbers.named_steps(s) for s in quoted_numbers.sentences(text)] == [set(), {2}, {1, 2, 3}, {4}]


def test_the_committed_notebooks_pass_the_checker_command(capsys):
    """The guards refuse damaged files only: the committed notebooks and results/steps.json read as before."""
    assert quoted_numbers.main([]) == 0


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


def epochs_notebook(analysis: str):
    """A notebook whose run printed two epoch lines and its Result, and a seed table with a mean ± std (min-max)."""
    nb = fixture_notebook(analysis)
    nb.cells[1].outputs[0]["text"] = (
        "epoch  1/2  running train  97.10% (loss 0.1000)  clean train  99.46%  test  99.46% (loss 0.0300)\n"
        "epoch  2/2  running train  99.20% (loss 0.0500)  clean train  99.80%  test  99.41% (loss 0.0200)\n"
        "Final test accuracy: 99.41%\n"
        "Goal (99.40%, <= 8,000 parameters): met\n"
        "04_gap   7,816   99.36 ± 0.07  (99.27-99.44)\n")
    return nb


@pytest.mark.parametrize("claim", [
    "This step ends at 99.36% on average.",  # the stored and printed mean
    "Over 5 seeds it ends at 99.36 ± 0.07% (99.27–99.44%).",  # mean, std, range as the seed table prints them
    "Its final epoch reached 99.41%.",
    "In epoch 1 it read 99.46% of the test images.",
    "It reads them better at the final epoch 99.80% against 99.41%.",  # "epoch 99.80" names no epoch 99
])
def test_checker_accepts_a_number_that_is_the_statistic_its_words_name(claim):
    assert quoted_numbers.check_notebook(epochs_notebook("## Analysis\n\n" + claim), STEPS_FIXTURE, "04_gap") == []


@pytest.mark.parametrize("claim, wrong, named", [
    ("This step ends at 99.46% on average.", "99.46", "mean"),  # some epoch reached it: not the mean
    ("The mean over the seeds is 99.41%.", "99.41", "mean"),  # this run's final epoch, called a mean
    ("Its final epoch reached 99.46%.", "99.46", "final"),  # epoch 1's
    ("In epoch 1 it read 99.41% of the test images.", "99.41", "epoch 1"),  # epoch 2's
    ("Over 5 seeds it ends at 99.36 ± 0.41% (99.27–99.44%).", "0.41", "std"),  # printed, but not as the std
])
def test_checker_refuses_a_number_called_another_statistic(claim, wrong, named):
    problems = quoted_numbers.check_notebook(epochs_notebook("## Analysis\n\n" + claim), STEPS_FIXTURE, "04_gap")
    assert len(problems) == 1 and f": {wrong} is in no stored output" in problems[0] and problems[0].endswith(named)
