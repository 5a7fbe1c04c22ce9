"""utils.results: the one loader of the stored results the notebooks read. A missing file is None; a damaged one
(cut short, not JSON, not a torch file, an entry missing or of the wrong kind, NaN where a number is read) is one
StoredResultError line naming the file, where in it the problem is and the command that writes it again; a torch
file is read with weights_only=True, so a pickled object can run nothing."""
from __future__ import annotations

import copy
import json
import math
from pathlib import Path

import pytest
import torch

from utils import results
from utils.results import EXERCISES, HISTORY, LESSON, METRICS, STEPS, StoredResultError, load, shape_problem

REMAKE = "python -m tools.steps"


def steps_summary() -> dict:
    """A results/steps.json as tools.steps writes it: one step, two seeds."""
    spread = {"mean": 97.5, "std": 0.5, "min": 97.0, "max": 98.0}
    run = {"seed": 1, "final_test_accuracy": 97.0, "final_train_accuracy": 96.9, "final_clean_train_accuracy": 97.4,
           "gap": 0.4,
           "test_accuracy_curve": [95.0, 97.0], "clean_train_accuracy_curve": [95.5, 97.4], "wall_seconds": 61.5}
    return {"config": {"epochs": 2}, "seeds": [1, 2], "device": "cpu",
            "steps": [{"notebook": "01_baseline", "model": "baseline", "params": 6_346, "test_accuracy": spread,
                       "gap": dict(spread), "runs": [run, {**run, "seed": 2, "final_test_accuracy": 98.0}]}]}


def exercises_summary() -> dict:
    """A results/exercises.json as tools.exercise_baselines writes it."""
    run = {"seed": 1, "val_accuracy": 97.1, "clean_train_accuracy": 97.9, "gap": 0.8, "params": 7_816}
    return {"budget": {"epochs": 2}, "seeds": [1, 2], "device": "cpu",
            "steps": {"04_gap": {"config": {"lr": 0.1}, "runs": [run, {**run, "seed": 2}]}}}


def lesson_record() -> dict:
    """A results/lessons/<model>.pt as tools.lesson_weights writes it."""
    return {"model": "baseline", "config": {"seed": 1, "epochs": 2, "holdout": 10000},
            "model_state": {"w": torch.arange(6.0).reshape(2, 3)},
            "params": 6, "epochs": 3, "final_val_accuracy": 98.25, "device": "cpu"}


def metrics_record() -> dict:
    epoch = {key: 1.0 for key in HISTORY[0]}
    return {"model": "final", "params": 7_816, "epochs": 1, "complete": True, "goal_met": False,
            "final_test_accuracy": 99.0, "final_train_accuracy": 98.0, "final_clean_train_accuracy": 99.1,
            "final_val_accuracy": None, "wall_seconds": 10.0, "seed": 1, "config": {}, "run_dir": "runs/x",
            "history": [epoch]}


def write_json(tmp_path: Path, value, name: str = "steps.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(value))
    return path


def refusal(path: Path, shape, remake: str = REMAKE) -> str:
    """The message of the StoredResultError ``load`` raises on ``path``, checked to be one line naming the file
    and the command that writes it again."""
    with pytest.raises(StoredResultError) as caught:
        load(path, shape, remake)
    message = str(caught.value)
    assert "\n" not in message, message
    assert str(path) in message, message  # outside the repository: the path as it is
    assert f"write it again with `{remake}`" in message, message
    return message


# --------------------------------------------------------------------------------------------------
# What load returns
# --------------------------------------------------------------------------------------------------

def test_a_missing_file_is_none(tmp_path):
    assert load(tmp_path / "steps.json", STEPS, REMAKE) is None
    (tmp_path / "folder.json").mkdir()
    assert load(tmp_path / "folder.json", STEPS, REMAKE) is None, "a folder is no stored file either"


@pytest.mark.parametrize("shape, value", [(STEPS, steps_summary()), (EXERCISES, exercises_summary()),
                                          (METRICS, metrics_record())], ids=["steps", "exercises", "metrics"])
def test_a_sound_json_file_is_returned_as_written(tmp_path, shape, value):
    assert load(write_json(tmp_path, value), shape, REMAKE) == value


def test_a_sound_torch_file_is_returned_with_its_tensors(tmp_path):
    path = tmp_path / "baseline.pt"
    torch.save(lesson_record(), path)
    loaded = load(path, LESSON, "python -m tools.lesson_weights")
    assert torch.equal(loaded["model_state"]["w"], torch.arange(6.0).reshape(2, 3))
    assert {k: v for k, v in loaded.items() if k != "model_state"} == \
        {k: v for k, v in lesson_record().items() if k != "model_state"}


# --------------------------------------------------------------------------------------------------
# Damaged files: one line, where, and how to write it again
# --------------------------------------------------------------------------------------------------

def test_json_cut_short_is_named_with_the_parser_s_reason(tmp_path):
    path = tmp_path / "steps.json"
    path.write_text(json.dumps(steps_summary())[:70])
    message = refusal(path, STEPS)
    assert "JSONDecodeError" in message and f"is not what `{REMAKE}` writes" in message


def test_a_file_that_is_not_json_at_all(tmp_path):
    path = tmp_path / "exercises.json"
    path.write_bytes(b"\x00\xffgarbage\nmore garbage on a second line\n")
    assert "python -m tools.exercise_baselines" in refusal(path, EXERCISES, "python -m tools.exercise_baselines")


def test_a_torch_file_cut_short(tmp_path):
    path = tmp_path / "gap.pt"
    torch.save(lesson_record(), path)
    path.write_bytes(path.read_bytes()[:200])
    refusal(path, LESSON, "python -m tools.lesson_weights")


def test_a_json_file_named_pt_is_read_as_torch_and_refused(tmp_path):
    path = write_json(tmp_path, lesson_record() | {"model_state": {}}, "final.pt")
    refusal(path, LESSON, "python -m tools.lesson_weights")


MARK = []  # what the pickled object below would leave if unpickling ran it


def leave_a_mark(path: str) -> dict:
    MARK.append(path)
    Path(path).write_text("ran")
    return lesson_record()


class Payload:
    """An object whose unpickling calls leave_a_mark: what a hostile lesson file could hold."""

    def __init__(self, path: Path):
        self.path = str(path)

    def __reduce__(self):
        return leave_a_mark, (self.path,)


def test_a_torch_file_is_read_with_weights_only_so_a_pickled_object_runs_nothing(tmp_path):
    path, mark = tmp_path / "baseline.pt", tmp_path / "mark"
    torch.save({**lesson_record(), "config": Payload(mark)}, path)
    MARK.clear()
    refusal(path, LESSON, "python -m tools.lesson_weights")
    assert not mark.exists() and MARK == [], "unpickling ran the object's code: the file was not read weights_only"
    torch.load(path, weights_only=False)  # the control: read without the guard, the object does run
    assert mark.read_text() == "ran" and MARK == [str(mark)]


def damaged(change) -> dict:
    value = copy.deepcopy(steps_summary())
    change(value)
    return value


STEPS_DAMAGE = {  # what is wrong -> (the change, where the message says it is)
    "a run without params": (lambda v: v["steps"][0].pop("params"), "['steps'][0] has no 'params'"),
    "no steps at all": (lambda v: v.pop("steps"), "it has no 'steps'"),
    "a count as text": (lambda v: v["steps"][0].update(params="6346"), "['steps'][0]['params'] is not a whole number"),
    "a count as a bool": (lambda v: v["steps"][0].update(params=True), "['steps'][0]['params'] is not a whole number"),
    "a seed as a float": (lambda v: v["seeds"].__setitem__(1, 2.0), "['seeds'][1] is not a whole number"),
    "NaN accuracy": (lambda v: v["steps"][0]["runs"][1].update(final_test_accuracy=math.nan),
                     "['steps'][0]['runs'][1]['final_test_accuracy'] is not a number"),
    "infinite std": (lambda v: v["steps"][0]["gap"].update(std=math.inf), "['steps'][0]['gap']['std'] is not a number"),
    "accuracy as text": (lambda v: v["steps"][0]["runs"][0].update(wall_seconds="61"),
                         "['steps'][0]['runs'][0]['wall_seconds'] is not a number"),
    "NaN inside a curve": (lambda v: v["steps"][0]["runs"][0]["test_accuracy_curve"].__setitem__(1, math.nan),
                           "['steps'][0]['runs'][0]['test_accuracy_curve'][1] is not a number"),
    "a list where a mapping": (lambda v: v["steps"].__setitem__(0, [1, 2]), "['steps'][0] is not a mapping"),
    "a mapping where a list": (lambda v: v.update(steps={"01_baseline": {}}), "['steps'] is not a list"),
    "the device as a number": (lambda v: v.update(device=0), "['device'] is not text"),
}


@pytest.mark.parametrize("case", STEPS_DAMAGE)
def test_a_damaged_entry_is_named_where_it_is(tmp_path, case):
    change, where = STEPS_DAMAGE[case]
    message = refusal(write_json(tmp_path, damaged(change)), STEPS)
    assert f"({where})" in message, message


def test_a_whole_file_of_the_wrong_kind(tmp_path):
    message = refusal(write_json(tmp_path, [steps_summary()]), STEPS)
    assert "(it is not a mapping)" in message
    message = refusal(write_json(tmp_path, None), STEPS)
    assert "(it is not a mapping)" in message


def test_the_first_problem_is_named_in_the_order_of_the_file(tmp_path):
    value = damaged(lambda v: (v["steps"][0]["runs"][1].pop("gap"), v["steps"][0]["runs"][0].pop("seed")))
    assert "(['steps'][0]['runs'][0] has no 'seed')" in refusal(write_json(tmp_path, value), STEPS)


def test_a_damaged_entry_under_any_name(tmp_path):
    """EXERCISES' steps are a mapping of any notebook names, each of the same shape."""
    value = exercises_summary()
    value["steps"]["05_augmentation"] = copy.deepcopy(value["steps"]["04_gap"])
    value["steps"]["05_augmentation"]["runs"][1]["val_accuracy"] = math.nan
    message = refusal(write_json(tmp_path, value, "exercises.json"), EXERCISES, "python -m tools.exercise_baselines")
    assert "(['steps']['05_augmentation']['runs'][1]['val_accuracy'] is not a number)" in message
    value["steps"]["05_augmentation"] = ["not", "a", "mapping"]
    message = refusal(write_json(tmp_path, value, "exercises.json"), EXERCISES, "python -m tools.exercise_baselines")
    assert "(['steps']['05_augmentation'] is not a mapping)" in message


def test_a_torch_file_without_an_entry(tmp_path):
    path = tmp_path / "dropout.pt"
    torch.save({k: v for k, v in lesson_record().items() if k != "final_val_accuracy"}, path)
    assert "(it has no 'final_val_accuracy')" in refusal(path, LESSON, "python -m tools.lesson_weights")
    torch.save({**lesson_record(), "final_val_accuracy": float("nan")}, path)
    assert "(['final_val_accuracy'] is not a number)" in refusal(path, LESSON, "python -m tools.lesson_weights")


def test_a_long_reason_is_cut_to_its_first_line_and_300_characters(tmp_path, monkeypatch):
    def fails(text):
        raise ValueError("x" * 1_000 + "\nsecond line")

    monkeypatch.setattr(results.json, "loads", fails)
    message = refusal(write_json(tmp_path, steps_summary()), STEPS)
    reason = message[message.index("(") + 1:message.rindex("); write it again")]
    assert reason == ("ValueError: " + "x" * 1_000)[:300]


# --------------------------------------------------------------------------------------------------
# shape_problem on its own: the rules of a shape
# --------------------------------------------------------------------------------------------------

def test_optional_entries_take_none_or_their_shape():
    assert shape_problem(metrics_record(), METRICS) is None
    assert shape_problem({**metrics_record(), "final_val_accuracy": 98.5}, METRICS) is None
    assert shape_problem({**metrics_record(), "final_val_accuracy": "98.5"}, METRICS) == \
        "['final_val_accuracy'] is not a number"
    assert shape_problem({**metrics_record(), "final_val_accuracy": math.nan}, METRICS) == \
        "['final_val_accuracy'] is not a number"


def test_numbers_whole_or_not_are_numbers_but_bools_and_text_are_not():
    assert shape_problem(3, float) is None and shape_problem(2.5, float) is None
    assert shape_problem(True, float) is not None and shape_problem("2.5", float) is not None
    assert shape_problem(-math.inf, float) is not None
    assert shape_problem(3, int) is None and shape_problem(3.0, int) is not None
    assert shape_problem(False, int) is not None
    assert shape_problem(False, bool) is None and shape_problem(0, bool) is not None


def test_a_history_row_is_checked_entry_by_entry():
    row = {key: 1.0 for key in HISTORY[0]}
    assert shape_problem([row, row], HISTORY, "['history']") is None
    assert shape_problem([row, {**row, "lr": None}], HISTORY, "['history']") == "['history'][1]['lr'] is not a number"
    assert shape_problem([row, {k: v for k, v in row.items() if k != "seconds"}], HISTORY, "['history']") == \
        "['history'][1] has no 'seconds'"
    assert shape_problem([], HISTORY, "['history']") is None


def test_extra_entries_are_allowed():
    """A newer writer may add entries; the readers read only those of the shape."""
    assert shape_problem({**steps_summary(), "jobs": 2, "cpu": "x"}, STEPS) is None



def test_a_whole_file_of_the_wrong_kind_is_named_as_it_in_plain_words():
    assert results.shape_problem({}, results.HISTORY) == "it is not a list"
    assert results.shape_problem("7816", int) == "it is not a whole number"
    assert results.shape_problem(3, str) == "it is not text"
