"""utils.course for a notebook opened alone (e.g. on Colab, one machine per notebook): the before/after
comparison falls back to the earlier step's stored curves; the seed table's change and seed 1's note."""
from __future__ import annotations

import json

import matplotlib
import pytest
from helpers import one_epoch_metrics

from utils import course, plots

SUMMARY = {
    "device": "cpu (x86_64, 1 threads)", "seeds": [1, 2], "config": {},
    "steps": [{"notebook": "01_baseline", "params": 11586,
               "test_accuracy": {"mean": 99.354, "std": 0.05, "min": 99.30, "max": 99.43},
               "gap": {"mean": 0.5238, "std": 0.05, "min": 0.44, "max": 0.57},
               "runs": [{"seed": 1, "final_test_accuracy": 99.30, "final_train_accuracy": 99.87, "gap": 0.57,
                         "test_accuracy_curve": [96.74, 98.1, 99.30]},
                        {"seed": 2, "final_test_accuracy": 99.43, "final_train_accuracy": 99.9, "gap": 0.47,
                         "test_accuracy_curve": [96.9, 98.0, 99.43]}]},
              {"notebook": "02_batchnorm", "params": 11656,
               "test_accuracy": {"mean": 99.458, "std": 0.06, "min": 99.42, "max": 99.55},
               "gap": {"mean": 0.4543, "std": 0.05, "min": 0.38, "max": 0.51}, "runs": []}],
}


@pytest.fixture
def steps_json(tmp_path, monkeypatch):
    path = tmp_path / "steps.json"
    path.write_text(json.dumps(SUMMARY))
    monkeypatch.setattr(course, "STEPS_JSON", path)
    return path


def test_a_stored_seed_is_shaped_like_a_run(steps_json):
    run = course.stored_step_run("01_baseline", 1, steps_json)
    assert run["epochs"] == 3 and run["final_test_accuracy"] == 99.30 and run["params"] == 11586
    assert run["history"] == [{"epoch": 1, "test_accuracy": 96.74}, {"epoch": 2, "test_accuracy": 98.1},
                              {"epoch": 3, "test_accuracy": 99.30}]
    assert course.gap(run) == pytest.approx(0.57)
    assert "no run of 01_baseline here: seed 1 as stored in" in run["source"] and "1 threads" in run["source"]
    assert course.stored_step_run("01_baseline", 7, steps_json) is None
    assert course.stored_step_run("03_dropout", 1, steps_json) is None
    assert course.stored_step_run("01_baseline", 1, steps_json.parent / "missing.json") is None


def test_previous_step_prefers_the_run_beside_this_one(tmp_path, monkeypatch):
    stored = tmp_path / "steps.json"
    stored.write_text(json.dumps(SUMMARY))
    monkeypatch.setattr(course, "stored_step_run", lambda nb, seed=1, path=stored: course.stored_seed(nb, seed, path)
                        and {"source": "stored"})
    metrics = one_epoch_metrics("baseline", tmp_path / "01_baseline")
    (tmp_path / "01_baseline").mkdir()
    (tmp_path / "01_baseline" / "metrics.json").write_text(json.dumps(metrics))
    assert course.previous_step(tmp_path / "02_batchnorm", "01_baseline") == metrics
    (tmp_path / "01_baseline" / "metrics.json").unlink()
    assert course.previous_step(tmp_path / "02_batchnorm", "01_baseline") == {"source": "stored"}


def test_a_notebook_alone_still_draws_its_before_and_after(steps_json, tmp_path, capsys):
    """No run of notebook 01 in this clone: 02 compares with 01's seed 1 from results/steps.json and says so."""
    previous = course.previous_step(tmp_path / "02_batchnorm", "01_baseline")
    now = {"params": 11656, "epochs": 2, "final_test_accuracy": 98.9, "final_train_accuracy": 98.0,
           "history": [{"epoch": e, "train_loss": 0.1, "test_loss": 0.05, "train_accuracy": 97.0,
                        "test_accuracy": 98.0 + e / 2} for e in (1, 2)]}
    course.compare({"01 baseline": previous, "02 batchnorm": now})
    out = capsys.readouterr().out
    assert "after epoch 3 99.30%" in out and "no run of 01_baseline here" in out
    fig = plots.training_curves(now["history"], others={"baseline": previous["history"]})
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert labels.count("test, baseline") == 1, "the stored curve is drawn where it has data: accuracy only"
    matplotlib.pyplot.close(fig)


def test_the_change_of_the_means_names_the_unrounded_means():
    before, now = SUMMARY["steps"]
    line = course.mean_change(before, now)
    assert line.startswith("change in the mean: test accuracy +0.10 points (99.354 -> 99.458)")
    assert "gap -0.07 points (+0.524 -> +0.454); from the unrounded means" in line


def test_seed_note_names_the_tables_seed_and_its_thread_count(steps_json, capsys):
    course.seed_note("01_baseline", path=steps_json)
    out = capsys.readouterr().out
    assert out.startswith("Seed 1 in this table: 99.30% (cpu (x86_64, 1 threads)).") and "thread count" in out
    course.seed_note("02_batchnorm", path=steps_json)  # holds no runs: says nothing
    assert capsys.readouterr().out == ""
