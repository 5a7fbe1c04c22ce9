"""Small helpers that keep the notebooks' code cells short: run folders, earlier steps, the Result block.

Nothing here trains or draws; it only finds and prints what a run stored.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .cli import GOAL, MAX_EPOCHS, MAX_PARAMS
from .train import REPO_ROOT

QUICK_ENV = "MNIST_COURSE_QUICK"  # "1": one epoch on 2,000 images (nbval in CI), written under build/quick/
QUICK_EPOCHS, QUICK_SUBSET = 1, 2000
NOTEBOOKS = REPO_ROOT / "notebooks"


def quick_mode() -> bool:
    return os.environ.get(QUICK_ENV) == "1"


def run_folder(out_dir: str | os.PathLike) -> Path:
    """The run folder for a notebook's ``out_dir`` parameter: relative paths are taken from notebooks/
    (where Jupyter, papermill --cwd notebooks and nbval run), so the result is the same from anywhere."""
    path = Path(out_dir).expanduser()
    return (path if path.is_absolute() else NOTEBOOKS / path).resolve()


def earlier_metrics(run_dir: str | os.PathLike, name: str) -> dict | None:
    """metrics.json of an earlier notebook's run, stored beside this run's folder, or None if it was not run."""
    path = Path(run_dir).parent / name / "metrics.json"
    return json.loads(path.read_text()) if path.is_file() else None


def result(metrics: dict) -> dict:
    """Print a notebook's Result block from its run's metrics (final epoch), plus one machine-readable
    ``RESULT {...}`` line that tools.report and the tests read back from the stored output."""
    summary = {
        "model": metrics["model"],
        "params": metrics["params"],
        "best_train_accuracy": round(metrics["best_train_accuracy"], 2),
        "final_test_accuracy": round(metrics["final_test_accuracy"], 2),
        "epochs": metrics["epochs"],
        "seed": metrics["seed"],
    }
    augmented = metrics["config"]["augment"]
    print(f"Parameters:           {summary['params']:,}")
    print(f"Best train accuracy:  {summary['best_train_accuracy']:.2f}%  (measured during each epoch, in training "
          f"mode{', on augmented images' if augmented else ''})")
    print(f"Final test accuracy:  {summary['final_test_accuracy']:.2f}%  (epoch {summary['epochs']}, the last one)")
    print(f"Epochs:               {summary['epochs']}")
    print(f"Goal ({GOAL:.2f}% at the last epoch, <= {MAX_EPOCHS} epochs, <= {MAX_PARAMS:,} parameters): "
          f"{'met' if goal_met(metrics) else 'not met'}")
    print(f"Wall time:            {metrics['wall_seconds']:.0f} s on {metrics['device']}")
    print("RESULT " + json.dumps(summary))
    return summary


def goal_met(metrics: dict) -> bool:
    return (metrics["final_test_accuracy"] >= GOAL and metrics["epochs"] <= MAX_EPOCHS
            and metrics["params"] <= MAX_PARAMS)


def gap(metrics: dict) -> float:
    """Final-epoch train accuracy minus test accuracy, in points: a measure of over-fitting."""
    return metrics["final_train_accuracy"] - metrics["final_test_accuracy"]


def compare(runs: dict[str, dict | None]) -> None:
    """One line per run: parameters, test accuracy after the first and the last epoch, train-test gap."""
    for label, m in runs.items():
        if m is None:
            print(f"{label:>12}: no stored run (execute that notebook first to compare with it)")
            continue
        h = m["history"]
        print(f"{label:>12}: {m['params']:>6,} parameters | test accuracy after epoch 1 {h[0]['test_accuracy']:.2f}%, "
              f"after epoch {m['epochs']} {m['final_test_accuracy']:.2f}% | "
              f"final train - test gap {gap(m):+.2f} points")
