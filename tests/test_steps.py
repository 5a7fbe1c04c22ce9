"""tools.steps (every step on several seeds -> results/steps.json), its README block and figures, and the
notebooks' seed tables, on tiny settings: 512 training images, 1 epoch, 2 seeds; what it refuses, in one line,
before or during the sweep."""
import dataclasses
import json
import os
import statistics

import pytest
import torch
from helpers import metrics_of, no_work, one_error_line

from tools import report
from tools import steps as S
from utils import course, plots
from utils.config import Config
from utils.models import STEPS, build_model
from utils.summary import count_parameters

TINY = ["--seeds", "1", "2", "--epochs", "1", "--train-subset", "512", "--device", "cpu", "--no-progress",
        "--jobs", "1"]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """One tiny sweep of all five steps, shared by the tests below."""
    folder = tmp_path_factory.mktemp("steps")
    args = TINY + ["--runs-dir", str(folder / "runs"), "--summary", str(folder / "steps.json")]
    assert S.main(args) == 0
    return folder, args, json.loads((folder / "steps.json").read_text())


def test_summary_holds_every_step_and_seed_with_one_shared_recipe(sweep):
    _, _, summary = sweep
    cfg = Config()
    shared = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in course.RUN_FIELDS and k != "augment"}
    assert summary["config"] == {**shared, "epochs": 1, "train_subset": 512}
    assert summary["config"]["recalibrate_bn"] == cfg.recalibrate_bn and summary["config"]["lr"] == cfg.lr
    assert summary["seeds"] == [1, 2] and summary["command"].startswith(
        f"OMP_NUM_THREADS={torch.get_num_threads()} python -m tools.steps --seeds 1 2")
    assert {"torch", "python"} <= summary["versions"].keys() and summary["cpu"] and summary["device"]
    assert [s["notebook"] for s in summary["steps"]] == list(STEPS)
    for step in summary["steps"]:
        assert step["model"] == STEPS[step["notebook"]] and step["augment"] == (step["model"] == "final")
        assert step["params"] == count_parameters(build_model(step["model"]))
        assert [r["seed"] for r in step["runs"]] == [1, 2]
        for r in step["runs"]:
            assert r["gap"] == r["final_clean_train_accuracy"] - r["final_test_accuracy"], "clean train - test"
            assert r["test_accuracy_curve"] == [r["final_test_accuracy"]]  # one epoch
            assert r["clean_train_accuracy_curve"] == [r["final_clean_train_accuracy"]]
        accs = [r["final_test_accuracy"] for r in step["runs"]]
        assert step["test_accuracy"] == {"mean": statistics.mean(accs), "std": statistics.stdev(accs),
                                         "min": min(accs), "max": max(accs)}
        assert step["gap"]["mean"] == pytest.approx(statistics.mean(r["gap"] for r in step["runs"]))


def test_the_seeds_are_different_runs(sweep):
    _, _, summary = sweep
    assert any(s["runs"][0]["final_test_accuracy"] != s["runs"][1]["final_test_accuracy"] for s in summary["steps"])


def test_a_second_sweep_reuses_finished_runs_and_redoes_a_missing_one(sweep, tmp_path):
    import shutil

    folder, args, summary = sweep
    runs = folder / "runs"
    kept = (runs / "gap" / "seed1" / "metrics.json").stat().st_mtime_ns
    shutil.rmtree(runs / "baseline" / "seed2")  # as if the sweep had been killed before this run
    out = tmp_path / "again.json"
    assert S.main(TINY + ["--runs-dir", str(runs), "--summary", str(out)]) == 0
    again = json.loads(out.read_text())
    assert (runs / "gap" / "seed1" / "metrics.json").stat().st_mtime_ns == kept, "finished run reused"
    assert (runs / "baseline" / "seed2" / "metrics.json").is_file()
    strip = lambda s: [{k: v for k, v in r.items() if k != "wall_seconds"} for st in s["steps"] for r in st["runs"]]  # noqa: E731
    assert strip(again) == strip(summary), "the re-trained run gives the same numbers (deterministic)"


@pytest.mark.parametrize("where", ["inside a file", "a folder"])
def test_a_summary_that_cannot_be_written_is_refused_before_any_run(tmp_path, blocker, capsys, monkeypatch, where):
    bad = str(blocker / "x.json") if where == "inside a file" else str(tmp_path)
    monkeypatch.setattr(S, "run_one", no_work)
    one_error_line(capsys, S.main, ["--seeds", "1", "--summary", bad], "--summary", bad)
    assert blocker.read_text() == "not a folder"


def test_a_seed_given_twice_is_refused(capsys, monkeypatch):
    """It would count twice in the mean and the spread."""
    monkeypatch.setattr(S, "run_one", no_work)
    one_error_line(capsys, S.main, ["--seeds", "1", "1", "--summary", os.devnull], "--seeds", "1 more than once")


def test_a_run_with_other_settings_is_refused_in_one_line(sweep, tmp_path, capsys):
    folder, _, _ = sweep
    out = tmp_path / "other.json"
    with pytest.raises(SystemExit) as exit_:
        S.main(["--seeds", "1", "--epochs", "2", "--train-subset", "512", "--device", "cpu", "--no-progress",
                "--steps", "01_baseline", "--runs-dir", str(folder / "runs"), "--summary", str(out)])
    assert exit_.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err and "--runs-dir" in err


def test_runs_side_by_side_give_the_numbers_of_runs_one_by_one(sweep, tmp_path, capfd):
    """--jobs 2: two worker processes on one thread each (this process trains on one), the same ten runs."""
    _, _, one_by_one = sweep
    out = tmp_path / "parallel.json"
    assert TINY[-2:] == ["--jobs", "1"]
    assert S.main(TINY[:-1] + ["2", "--runs-dir", str(tmp_path / "runs"), "--summary", str(out)]) == 0
    side_by_side = json.loads(out.read_text())
    numbers = lambda s: [{k: v for k, v in r.items() if k != "wall_seconds"} for st in s["steps"] for r in st["runs"]]  # noqa: E731
    assert numbers(side_by_side) == numbers(one_by_one) and side_by_side["jobs"] == 2 and one_by_one["jobs"] == 1
    assert side_by_side["device"].endswith("1 threads)") and side_by_side["command"].startswith("OMP_NUM_THREADS=1 ")
    printed = capfd.readouterr().out  # the workers write to this process's stdout, not to sys.stdout
    assert "[baseline seed 2] model baseline:" in printed and "[final seed 1] epoch" in printed, "lines name their run"


def test_a_refused_run_in_a_worker_is_one_error_line(sweep, tmp_path, capsys):
    folder, _, _ = sweep
    out = tmp_path / "other.json"
    with pytest.raises(SystemExit) as exit_:
        S.main(["--seeds", "1", "2", "--epochs", "2", "--train-subset", "512", "--device", "cpu", "--no-progress",
                "--jobs", "2", "--steps", "01_baseline", "--runs-dir", str(folder / "runs"), "--summary", str(out)])
    assert exit_.value.code == 2 and not out.exists()
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "other settings" in err and "--runs-dir" in err


def test_readme_block_and_figures_come_from_steps_json(sweep, tmp_path):
    folder, _, summary = sweep
    block = report.steps_block(folder / "steps.json")
    for i, step in enumerate(summary["steps"], 1):
        acc, gap = step["test_accuracy"], step["gap"]
        assert f"| {i} | [{step['notebook']}.ipynb](notebooks/{step['notebook']}.ipynb) |" in block
        assert (f"| {step['params']:,} | {acc['mean']:.2f} ± {acc['std']:.2f}% | {acc['min']:.2f}–{acc['max']:.2f}% | "
                f"{gap['mean']:+.2f} ± {gap['std']:.2f} |") in block
    assert "Seeds 1, 2" in block and "results/figures/steps.png" in block
    assert report.steps_block(tmp_path / "missing.json") == "_Not measured yet: run `make steps`._"


def test_step_figures_draw_every_seed_and_step(sweep):
    import matplotlib.pyplot as plt

    _, _, summary = sweep
    fig = plots.step_accuracy(summary)
    dots = [c for c in fig.axes[0].collections if c.get_offsets().shape[0] == 2]
    assert [list(d.get_offsets()[:, 1]) for d in dots] == [[r["final_test_accuracy"] for r in s["runs"]]
                                                           for s in summary["steps"]]
    fig2 = plots.step_curves(summary)
    means = [line for line in fig2.axes[0].lines if line.get_label().endswith("(mean)")]
    assert [line.get_label() for line in means] == [f"{s['notebook']} (mean)" for s in summary["steps"]]
    assert [list(line.get_ydata()) for line in means] == [[sum(r["test_accuracy_curve"][0] for r in s["runs"]) / 2]
                                                          for s in summary["steps"]]
    plt.close("all")


def test_seed_table_prints_this_step_and_the_one_before(sweep, capsys, tmp_path):
    folder, _, summary = sweep
    course.seed_table("03_dropout", folder / "steps.json")
    out = capsys.readouterr().out
    before, now = summary["steps"][1], summary["steps"][2]
    assert "01_baseline" not in out and course.step_row(before) in out and course.step_row(now) in out
    assert f"test accuracy {now['test_accuracy']['mean'] - before['test_accuracy']['mean']:+.2f} points" in out
    assert "other settings" in out and "epochs=1 (the code: " in out, "a tiny sweep is not the recipe: it says so"
    course.seed_table("01_baseline", tmp_path / "none.json")
    assert "not found: `make steps`" in capsys.readouterr().out


def test_threads_prefix_names_a_thread_count_only_when_every_run_shares_it():
    assert S.threads_prefix(["cpu (x86_64, 1 threads)", "cpu (x86_64, 1 threads)"]) == "OMP_NUM_THREADS=1 "
    assert S.threads_prefix(["cpu (x86_64, 1 threads)", "cpu (x86_64, 2 threads)"]) == ""
    assert S.threads_prefix(["cuda (NVIDIA H100)"]) == ""


def test_a_step_is_summarised_by_its_final_epochs_never_the_best(tmp_path):
    """Two seeds whose best epoch is not their last: the summary and its spread take the last."""
    runs = [metrics_of("gap", tmp_path / "a", [99.5, 99.1], seed=1),
            metrics_of("gap", tmp_path / "b", [99.6, 99.3], seed=2)]
    step = S.step_summary("04_gap", runs)
    assert [r["final_test_accuracy"] for r in step["runs"]] == [99.1, 99.3]
    assert step["test_accuracy"]["max"] == 99.3 and step["test_accuracy"]["mean"] == pytest.approx(99.2)
    assert [r["test_accuracy_curve"] for r in step["runs"]] == [[99.5, 99.1], [99.6, 99.3]]
    assert [r["gap"] for r in step["runs"]] == [62.0 - 99.1, 62.0 - 99.3], "the final clean train accuracy - test"
