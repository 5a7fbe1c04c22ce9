"""utils.course: what the notebooks call to set up, show the code, and print results."""
from __future__ import annotations

import inspect
import json
from pathlib import Path

import pytest
from helpers import one_epoch_metrics

from utils import augment, course
from utils.config import Config, recipe, resolve_device, stored_settings
from utils.models import MODELS
from utils.train import evaluate, train, train_epoch

ROOT = Path(__file__).resolve().parent.parent


class FakeHandle:
    """Stands in for IPython's DisplayHandle: records what a notebook would show."""

    def __init__(self, shown):
        self.shown = shown

    def update(self, obj, raw=False):
        self.shown.append(obj["text/plain"])


@pytest.fixture
def shown(monkeypatch):
    """What utils.course displays (Markdown text, or raw text/plain), in order."""
    out = []

    def fake_display(obj, raw=False, display_id=False):
        out.append(obj["text/plain"] if raw else getattr(obj, "data", obj))
        return FakeHandle(out) if display_id else None

    monkeypatch.setattr(course, "display", fake_display)
    return out


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
    """papermill -p epochs -3 (issue 7, case 1): one clear error in the set-up cell, not torch's from a later cell."""
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    with pytest.raises(ValueError, match=r"epochs \(--epochs\) must be a positive integer, got -3"):
        course.setup("01_baseline", epochs=-3)
    assert capsys.readouterr().out == ""  # nothing printed as if a run were set up


def test_train_drives_a_pluggable_reporter(tmp_path, one_cpu_thread):
    events = []

    class Recorder:
        def __init__(self, desc, epochs, steps_per_epoch, done_epochs):
            events.append(("start", desc, epochs, steps_per_epoch, done_epochs))

        def update(self, n):
            events.append(("update", n))

        def write(self, line):
            events.append(("write", line.split()[1]))

        def close(self):
            events.append(("close",))

    cfg = recipe("gap", epochs=2, train_subset=256, batch_size=64, device="cpu")
    train(cfg, tmp_path / "run", progress=Recorder, log=lambda *_: None)
    assert events[0] == ("start", "gap", 2, 4, 0)
    assert events[1:] == [("update", 1)] * 4 + [("write", "1/2")] + [("update", 1)] * 4 + [("write", "2/2"), ("close",)]


def test_earlier_metrics_reads_a_sibling_run(tmp_path):
    metrics = one_epoch_metrics("baseline", tmp_path / "01_baseline")
    (tmp_path / "01_baseline").mkdir()
    (tmp_path / "01_baseline" / "metrics.json").write_text(json.dumps(metrics))
    assert course.earlier_metrics(tmp_path / "02_batchnorm", "01_baseline") == metrics
    assert course.earlier_metrics(tmp_path / "02_batchnorm", "00_missing") is None


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
