"""utils.course: what the notebooks call to set up (the recipe, quick mode, the run folder), show the code, and
print results; the before/after comparison and the seed tables, for a notebook opened alone too (e.g. on Colab,
one machine per notebook: it falls back to the earlier step's stored curves); damaged stored results named in one
line. What a notebook would show is recorded by the conftest fixture ``shown``."""
from __future__ import annotations

import inspect
import json

import matplotlib
import pytest
from helpers import ROOT, one_epoch_metrics

from utils import augment, course, plots, runs
from utils.config import Config, recipe, resolve_device, stored_settings
from utils.models import MODELS
from utils.train import evaluate, train_epoch


def added_and_removed(lines):
    body = [line for line in lines if not line.startswith(("---", "+++", "@@"))]
    return ([line[1:].strip() for line in body if line.startswith("+")],
            [line[1:].strip() for line in body if line.startswith("-")])


def init_diff(prev, name):
    return course.diff_lines(inspect.getsource(MODELS[prev].__init__), inspect.getsource(MODELS[name].__init__),
                             "a", "b")


def test_diff_shows_exactly_the_lines_batchnorm_adds():
    added, removed = added_and_removed(init_diff("baseline", "batchnorm"))
    assert sum("nn.BatchNorm2d(" in line for line in added) == 5
    assert all(line.startswith("nn.Conv2d(") for line in removed)
    assert sorted(line.split("#")[0].replace(", bias=False", "").strip() for line in added
                  if line.startswith("nn.Conv2d")) == sorted(line.split("#")[0].strip() for line in removed)
    assert all(line.startswith(("nn.BatchNorm2d(", "nn.Conv2d(")) for line in added)


def test_diff_shows_exactly_the_lines_dropout_adds():
    added, removed = added_and_removed(init_diff("batchnorm", "dropout"))
    assert removed == ["def __init__(self):"] and added[0] == "def __init__(self, dropout: float = DROPOUT):"
    assert added[1:] == ["nn.Dropout(dropout),", "nn.Dropout(dropout),"]


def test_diff_shows_exactly_the_head_gap_changes():
    added, removed = added_and_removed(init_diff("dropout", "gap"))
    assert [line.split("#")[0].strip() for line in removed] == ["nn.Flatten(),", "nn.Linear(400, 10),"]
    assert [line.split("#")[0].strip() for line in added] == ["nn.AdaptiveAvgPool2d(1),", "nn.Conv2d(16, 10, 1),",
                                                             "nn.Flatten(),"]


def test_step_5_changes_the_recipe_only(shown, capsys):
    course.show_diff("gap", "final")
    assert "does not change" in capsys.readouterr().out and shown == []
    course.show_recipe_diff("gap", "final")
    added, removed = added_and_removed(shown[0].strip("`").splitlines()[1:])
    assert [line.split("  # ")[0] for line in added + removed] == ["augment = True", "augment = False"]
    course.show_recipe_diff("baseline", "gap")
    assert "the same as step 'baseline'" in capsys.readouterr().out


def test_show_helpers_display_the_real_code(shown):
    course.show_model("dropout")
    course.show_diff("baseline", "batchnorm")
    course.show_training_step()
    course.show_augmentation()
    course.show_recipe("final")
    model_md, diff_md, step_md, augment_md, recipe_md = shown
    assert model_md == f"```python\n{inspect.getsource(MODELS['dropout']).rstrip()}\n```"
    assert diff_md.startswith("```diff\n--- BaselineNet.__init__\n+++ BatchNormNet.__init__")
    assert "loss.backward()" in step_md and inspect.getsource(train_epoch).rstrip() in step_md
    assert inspect.getsource(evaluate).rstrip() in step_md, "evaluation is shown beside the training step"
    assert inspect.getsource(augment.random_affine).rstrip() in augment_md
    cfg = Config()
    assert f"epochs = {cfg.epochs}  # passes over" in recipe_md and f"lr = {cfg.lr!r}  # peak LR" in recipe_md
    assert "seed =" not in recipe_md and "momentum = 0.95" in recipe_md and "nesterov = True" in recipe_md


def test_setup_reads_the_recipe_and_quick_mode(monkeypatch, capsys):
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    run = course.setup("03_dropout", epochs=None, seed=2, out_dir="../runs/03_dropout")
    assert run.device == resolve_device("auto"), "the device is resolved once, in the set-up cell"
    assert run.cfg == recipe("dropout", seed=2, device=run.device.type)
    assert run.dir == ROOT / "runs" / "03_dropout" and not run.quick
    out = capsys.readouterr().out
    assert f"{Config().epochs} epochs on all 60,000 training images" in out and "run folder runs/03_dropout" in out
    assert str(ROOT) not in out
    monkeypatch.setenv(course.QUICK_ENV, "1")
    run = course.setup("05_augmentation", epochs=7, out_dir="/somewhere/else")
    assert (run.cfg.epochs, run.cfg.train_subset, run.cfg.augment) == (course.QUICK_EPOCHS, course.QUICK_SUBSET, True)
    assert run.dir == ROOT / "build" / "quick" / "05_augmentation" and "QUICK MODE" in capsys.readouterr().out
    with pytest.raises(ValueError, match="01_baseline, 02_batchnorm"):
        course.setup("06_more")


def test_setup_refuses_a_bad_parameter_before_anything_runs(monkeypatch, capsys):
    """papermill -p epochs -3: one clear error in the set-up cell, not torch's from a later cell."""
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    with pytest.raises(ValueError, match=r"epochs \(--epochs\) must be a positive integer, got -3"):
        course.setup("01_baseline", epochs=-3)
    assert capsys.readouterr().out == ""  # nothing printed as if a run were set up


@pytest.mark.parametrize("out_dir", [5, "", "  "])
def test_setup_refuses_an_out_dir_that_is_no_path(monkeypatch, out_dir):
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    with pytest.raises(runs.RunError, match="out_dir must be a folder path") as refused:
        course.setup("01_baseline", out_dir=out_dir)
    assert len(refused.value._render_traceback_()) == 1, "a notebook shows the one line, not a traceback"


@pytest.mark.parametrize("value, quick", [("1", True), ("yes", True), ("true", True), ("True", True), (" 1", True),
                                          ("on", True), ("0", False), ("false", False), ("no", False), ("", False)])
def test_quick_mode_takes_the_usual_spellings(monkeypatch, value, quick):
    monkeypatch.setenv(course.QUICK_ENV, value)
    assert course.setup("01_baseline").quick is quick


@pytest.mark.parametrize("value", ["garbage", "2", "yes please"])
def test_quick_mode_refuses_anything_else(monkeypatch, value):
    monkeypatch.setenv(course.QUICK_ENV, value)
    with pytest.raises(runs.RunError, match=f"MNIST_COURSE_QUICK={value!r} is neither on"):
        course.setup("01_baseline")


def test_earlier_metrics_reads_a_sibling_run(tmp_path):
    metrics = one_epoch_metrics("baseline", tmp_path / "01_baseline")
    (tmp_path / "01_baseline").mkdir()
    (tmp_path / "01_baseline" / "metrics.json").write_text(json.dumps(metrics))
    assert course.earlier_metrics(tmp_path / "02_batchnorm", "01_baseline") == metrics
    assert course.earlier_metrics(tmp_path / "02_batchnorm", "00_missing") is None


@pytest.mark.parametrize("text", ['{"model": "baseline", "params": 11', "[1, 2]", '{"params": 3}', "{}"])
def test_the_comparison_names_a_damaged_earlier_run(tmp_path, capsys, text):
    (tmp_path / "01_baseline").mkdir()
    (tmp_path / "01_baseline" / "metrics.json").write_text(text)
    assert course.earlier_metrics(tmp_path / "02_batchnorm", "01_baseline") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "01_baseline/metrics.json is not a run's metrics" in lines[0], lines
    assert "execute 01_baseline.ipynb again" in lines[0]


@pytest.mark.parametrize("text", ['{"config": {"epochs": 15, "lr', "[]", '{"steps": [{}]}', '{"steps": 3}'])
def test_seed_tables_name_a_damaged_steps_json(tmp_path, capsys, text):
    """One line from each helper, naming the file and how to write it again."""
    path = tmp_path / "steps.json"
    path.write_text(text)
    course.seed_table("02_batchnorm", path)
    course.show_steps(path)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines  # one from each helper
    for line in lines:
        assert f"{path} is damaged or is not what `make steps` writes" in line and "write it again" in line


def test_run_folder_is_relative_to_the_notebooks_folder(tmp_path):
    assert course.run_folder("../runs/01_baseline") == ROOT / "runs" / "01_baseline"
    assert course.run_folder(tmp_path / "x") == tmp_path / "x"


def test_stale_warning_reads_a_setting_missing_from_an_older_summary_as_its_default():
    settings = {k: v for k, v in course.recipe_settings("final").items() if k not in ("augment", "warmup")}
    summary = {"config": {**settings, "train_subset": 0}}  # made before warmup was a setting
    assert course.stale_warning(summary) is None
    summary["config"]["warmup"] = 0.3
    assert "warmup=0.3 (the code: 0.25)" in course.stale_warning(summary)
    other = Config().epochs + 5
    summary["config"] = {**settings, "train_subset": 0, "epochs": other}
    assert f"epochs={other} (the code: {Config().epochs})" in course.stale_warning(summary)


def test_a_summary_made_before_momentum_was_a_setting_reads_as_what_it_trained_with(monkeypatch):
    """results/steps.json has no momentum, min_momentum, nesterov or warmup keys: those runs trained with
    0.95 -> 0.85, Nesterov, warm-up 0.25 (the code then). A changed default must warn, not read as equal."""
    old = {k: v for k, v in course.recipe_settings("final").items()
           if k not in ("augment", "momentum", "min_momentum", "nesterov", "warmup")}
    summary = {"config": {**old, "train_subset": 0}}
    read = stored_settings(summary["config"])
    assert (read["momentum"], read["min_momentum"], read["nesterov"], read["warmup"]) == (0.95, 0.85, True, 0.25)
    assert course.stale_warning(summary) is None
    today = course.recipe_settings
    monkeypatch.setattr(course, "recipe_settings", lambda m: {**today(m), "momentum": 0.9, "nesterov": False})
    warning = course.stale_warning(summary)
    assert "momentum=0.95 (the code: 0.9)" in warning and "nesterov=True (the code: False)" in warning


# --------------------------------------------------------------------------------------------------
# A notebook opened alone (the earlier step's stored runs stand in for its run here), and the seed table's lines
# --------------------------------------------------------------------------------------------------

SUMMARY = {
    "device": "cpu (x86_64, 1 threads)", "seeds": [1, 2], "config": {},
    "steps": [{"notebook": "01_baseline", "model": "baseline", "params": 11586,
               "test_accuracy": {"mean": 99.354, "std": 0.05, "min": 99.30, "max": 99.43},
               "gap": {"mean": 0.5238, "std": 0.05, "min": 0.44, "max": 0.57},
               "runs": [{"seed": 1, "final_test_accuracy": 99.30, "final_train_accuracy": 99.87,
                         "final_clean_train_accuracy": 99.87, "gap": 0.57, "wall_seconds": 100.0,
                         "test_accuracy_curve": [96.74, 98.1, 99.30],
                         "clean_train_accuracy_curve": [97.0, 98.5, 99.87]},
                        {"seed": 2, "final_test_accuracy": 99.43, "final_train_accuracy": 99.9,
                         "final_clean_train_accuracy": 99.9, "gap": 0.47, "wall_seconds": 101.0,
                         "test_accuracy_curve": [96.9, 98.0, 99.43],
                         "clean_train_accuracy_curve": [97.1, 98.4, 99.9]}]},
              {"notebook": "02_batchnorm", "model": "batchnorm", "params": 11656,
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
    assert run["history"] == [{"epoch": 1, "test_accuracy": 96.74, "clean_train_accuracy": 97.0},
                              {"epoch": 2, "test_accuracy": 98.1, "clean_train_accuracy": 98.5},
                              {"epoch": 3, "test_accuracy": 99.30, "clean_train_accuracy": 99.87}]
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
           "final_clean_train_accuracy": 99.1,
           "history": [{"epoch": e, "train_loss": 0.1, "test_loss": 0.05, "train_accuracy": 97.0,
                        "clean_train_loss": 0.04, "clean_train_accuracy": 98.5 + e / 2,
                        "test_accuracy": 98.0 + e / 2} for e in (1, 2)]}
    course.compare({"01 baseline": previous, "02 batchnorm": now})
    out = capsys.readouterr().out
    assert "after epoch 3 99.30%" in out and "no run of 01_baseline here" in out
    assert "clean train - test gap +0.57 points" in out and "clean train - test gap +0.20 points" in out
    fig = plots.training_curves(now["history"], others={"baseline": previous["history"]})
    labels = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert labels.count("test, baseline") == 1, "the stored curve is drawn where it has data: accuracy only"
    assert labels.count("clean train, baseline") == 1 and labels.count("running train") == 2
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
