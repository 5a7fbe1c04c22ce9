"""utils.exercises and tools.exercise_baselines, which stores the baselines the exercises compare with: the
verdict rule, the stored baselines and when they are refused, quick mode, unfinished answers that must not stop
"Run All"."""
from __future__ import annotations

import json

import pytest
from torch import nn

from tools import exercise_baselines
from utils import course, exercises
from utils.models import DropoutNet, build_model

TINY = {"epochs": 1, "train_subset": 256, "holdout": 256}


def test_a_difference_counts_only_beyond_twice_its_standard_error():
    same = exercises.compare_runs("acc", [97.8, 97.9, 98.0], [97.7, 97.9, 98.1])
    assert same.verdict == "within the seed noise" and same.difference == pytest.approx(0.0, abs=1e-9)
    higher = exercises.compare_runs("acc", [98.6, 98.7, 98.8], [97.7, 97.8, 97.9])
    assert higher.verdict == "higher" and higher.difference == pytest.approx(0.9)
    assert higher.noise == pytest.approx(2 * (2 * 0.1 ** 2 / 3) ** 0.5)
    assert exercises.compare_runs("acc", [10.0, 10.0], [97.0, 97.5]).verdict == "lower"
    close = exercises.compare_runs("acc", [98.0, 98.4], [97.9, 98.3])  # +0.1 against noise 0.4
    assert close.verdict == "within the seed noise"


@pytest.fixture
def tiny_budget(monkeypatch, tmp_path):
    """A seconds-long budget (one epoch on 256 images) with its baselines in a temporary file."""
    monkeypatch.setattr(exercises, "BUDGET", dict(TINY))
    monkeypatch.setattr(exercises, "SEEDS", (1, 2))
    monkeypatch.setattr(exercises, "QUICK_BUDGET", dict(TINY))
    monkeypatch.setattr(exercises, "RUNS", tmp_path / "runs")
    monkeypatch.setattr(exercise_baselines, "BUDGET", dict(TINY))
    monkeypatch.setattr(exercise_baselines, "SEEDS", (1, 2))
    monkeypatch.setattr(exercise_baselines, "RUNS", tmp_path / "runs")
    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    return tmp_path / "exercises.json"


def test_stored_baselines_round_trip_and_are_refused_when_they_do_not_fit(tiny_budget, capsys):
    path = tiny_budget
    runs, why = exercises.stored_baseline("04_gap", TINY, (1, 2), path)
    assert runs is None and "not found" in why and "python -m tools.exercise_baselines" in why
    assert exercise_baselines.main(["--steps", "04_gap", "--summary", str(path), "--jobs", "2"]) == 0
    stored = json.loads(path.read_text())
    assert stored["device"].endswith("1 threads)"), "each of the two side-by-side runs trained on one thread"
    assert stored["budget"] == TINY and stored["seeds"] == [1, 2] and list(stored["steps"]) == ["04_gap"]
    runs, why = exercises.stored_baseline("04_gap", TINY, (1, 2), path)
    assert [r["seed"] for r in runs] == [1, 2] and "stored in" in why
    assert all(0 <= r["val_accuracy"] <= 100 and r["params"] == 7816 for r in runs)
    assert exercises.stored_baseline("03_dropout", TINY, (1, 2), path)[0] is None, "a step it does not hold"
    assert exercises.stored_baseline("04_gap", TINY, (1, 2, 3), path)[0] is None, "other seeds"
    assert exercises.stored_baseline("04_gap", {**TINY, "epochs": 2}, (1, 2), path)[0] is None, "another budget"
    stored["steps"]["04_gap"]["config"]["lr"] = 0.2  # made with another recipe
    path.write_text(json.dumps(stored))
    runs, why = exercises.stored_baseline("04_gap", TINY, (1, 2), path)
    assert runs is None and "other settings than the recipe has now" in why
    path.write_text("{ not json")
    assert exercises.stored_baseline("04_gap", TINY, (1, 2), path)[0] is None


def test_judge_trains_only_the_variant_against_stored_baselines(tiny_budget, monkeypatch, capsys):
    exercise_baselines.main(["--steps", "03_dropout", "--summary", str(tiny_budget), "--jobs", "1"])
    monkeypatch.setattr(exercises, "BASELINES", tiny_budget)
    trained = []
    real = exercises.short_run

    def counted(cfg, out, variant=None):
        trained.append(out)
        return real(cfg, out, variant)

    monkeypatch.setattr(exercises, "short_run", counted)
    capsys.readouterr()
    verdict = exercises.judge("03_dropout", lambda: DropoutNet(dropout=0.2), label="Dropout 0.2")
    out = capsys.readouterr().out
    assert len(trained) == 2 and all("dropout-0-2" in str(p) for p in trained), "only the variant trains"
    assert [r["seed"] for r in verdict.variant_runs] == [r["seed"] for r in verdict.baseline_runs] == [1, 2]
    assert verdict.accuracy.verdict in ("higher", "lower", "within the seed noise") and verdict.params == 11656
    assert "stored in" in verdict.baseline_source and "unchanged 03_dropout" in out and "seed noise" in out


def test_judge_trains_the_unchanged_step_too_when_nothing_fits(tiny_budget, monkeypatch, capsys):
    monkeypatch.setattr(exercises, "BASELINES", tiny_budget)  # no file there
    verdict = exercises.judge("05_augmentation", label="rotation 15", degrees=15)
    assert verdict.settings == {"degrees": 15} and verdict.baseline_source == "trained here"
    assert not verdict.quick and not verdict.learned(100.0)
    out = capsys.readouterr().out
    assert "it trains here too, after the variant" in out
    assert out.index("it trains here too") < out.index("rotation 15, seed 1"), "said before the variant trains"


def test_quick_mode_trains_both_on_the_quick_budget(tiny_budget, monkeypatch, capsys):
    monkeypatch.setenv(course.QUICK_ENV, "1")
    monkeypatch.setattr(exercises, "QUICK_SEEDS", (1, 2))
    monkeypatch.setattr(exercises, "REPO_ROOT", tiny_budget.parent)
    verdict = exercises.judge("04_gap", label="the step itself")
    assert verdict.baseline_source.startswith("quick mode") and len(verdict.baseline_runs) == 2
    assert verdict.quick and verdict.learned(100.0), "judged on quick mode's budget: what it learned is not judged"
    assert (tiny_budget.parent / "build" / "quick" / "exercises" / "04_gap" / "unchanged" / "seed1").is_dir()


def test_an_unfinished_answer_prints_a_message_instead_of_raising(tiny_budget, capsys):
    class Unfinished(nn.Module):
        def __init__(self):
            super().__init__()
            self.layer = features  # noqa: F821 (the student has not written it yet)

    assert exercises.judge("02_batchnorm", Unfinished, label="ReLU first") is None
    assert "could not be built or run (NameError" in capsys.readouterr().out
    assert exercises.judge("03_dropout", lambda: DropoutNet(dropout=...), label="rate") is None
    assert exercises.judge("05_augmentation", label="rotation", degrees=...) is None
    assert "finish the cell above" in capsys.readouterr().out
    assert exercises.training_cost({"step 1": lambda: build_model("baseline"), "mine": Unfinished}) is None


def test_training_cost_measures_each_network(capsys):
    ms = exercises.training_cost({"step 1": lambda: build_model("baseline"), "step 4": lambda: build_model("gap")},
                                 batch_size=16)
    assert set(ms) == {"step 1", "step 4"} and all(v > 0 for v in ms.values())
    out = capsys.readouterr().out
    assert "11,586 parameters" in out and "7,816 parameters" in out and "1.0x step 1" in out


def test_the_stored_exercise_baselines_fit_the_code():
    """results/exercises.json was made with today's recipe and budget: no notebook trains the unchanged step."""
    for notebook in ("01_baseline", "02_batchnorm", "03_dropout", "04_gap", "05_augmentation"):
        runs, why = exercises.stored_baseline(notebook, exercises.BUDGET, exercises.SEEDS)
        assert runs is not None, why


def verdict_of(accuracies: list[float], quick: bool = False) -> exercises.Verdict:
    """A verdict on variant runs of these validation accuracies (the comparison itself plays no part here)."""
    runs = [{"seed": seed, "val_accuracy": acc, "gap": 0.1, "params": 100} for seed, acc in enumerate(accuracies, 1)]
    baseline = [{**run, "val_accuracy": 98.0} for run in runs]
    comparison = exercises.compare_runs("validation accuracy", accuracies, [98.0] * len(accuracies))
    return exercises.Verdict("variant", "04_gap", {}, runs, baseline, "stored", comparison, comparison, quick=quick)


def test_learned_means_above_the_bar_on_every_seed():
    assert verdict_of([97.5, 91.2, 99.0]).learned(90.0) is True
    assert verdict_of([97.5, 89.9, 99.0]).learned(90.0) is False, "one seed that did not learn is enough"
    assert verdict_of([11.35, 11.35, 11.35]).learned(50.0) is False, "one digit for every image"
    assert verdict_of([90.0, 95.0]).learned(90.0) is False, "above the bar, not at it"
    assert verdict_of([90.01]).learned(90.0) is True


def test_quick_mode_does_not_judge_what_was_learned():
    """Quick mode's budget is too short for any network to learn: learned() is True there, whatever the scores."""
    assert verdict_of([10.64, 11.35], quick=True).learned(90.0) is True
    assert verdict_of([10.64, 11.35], quick=False).learned(90.0) is False
