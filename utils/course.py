"""Small helpers that keep the notebooks' code cells short: settings, earlier steps, the Result block."""
from __future__ import annotations

import json
import os
from pathlib import Path

from .train import REPO_ROOT, Config, recipe

QUICK_ENV = "MNIST_COURSE_QUICK"  # "1": one epoch on 2,000 images, for nbval in CI


def notebook_config(model: str, *, epochs: int, seed: int, batch_size: int, device: str, train_subset: int,
                    out_dir: str, name: str) -> tuple[Config, Path]:
    """The run's Config and folder from a notebook's papermill parameters.

    Quick mode (``MNIST_COURSE_QUICK=1``) shrinks the run and writes under build/quick/ so it
    never overwrites a real run.
    """
    quick = os.environ.get(QUICK_ENV) == "1"
    if quick:
        epochs, train_subset = 1, 2000
    overrides = {"batch_size": batch_size} if batch_size else {}
    cfg = recipe(model, epochs=epochs, seed=seed, device=device, train_subset=train_subset, **overrides)
    run_dir = Path(out_dir) if out_dir else REPO_ROOT / ("build/quick" if quick else "runs") / name
    return cfg, run_dir


def earlier_metrics(run_dir: Path, name: str) -> dict | None:
    """metrics.json of an earlier notebook's run, stored beside this one, if that notebook was run."""
    path = Path(run_dir).parent / name / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def result(metrics: dict) -> dict:
    """Print the Result block of a notebook, plus one machine-readable line for utils.report."""
    summary = {
        "model": metrics["model"],
        "params": metrics["params"],
        "best_train_accuracy": round(metrics["best_train_accuracy"], 2),
        "final_test_accuracy": metrics["final_test_accuracy"],
        "epochs": metrics["epochs"],
        "seed": metrics["seed"],
    }
    print(f"Parameters:           {summary['params']:,}")
    print(f"Best train accuracy:  {summary['best_train_accuracy']:.2f}%  (measured on the fly during each epoch, "
          f"in training mode{', on augmented images' if metrics['config']['augment'] else ''})")
    print(f"Final test accuracy:  {summary['final_test_accuracy']:.2f}%  (epoch {summary['epochs']}, the last one)")
    print(f"Epochs:               {summary['epochs']}")
    print(f"Wall time:            {metrics['wall_seconds']:.0f} s on {metrics['device']}")
    print("RESULT " + json.dumps(summary))
    return summary


def gap(metrics: dict) -> float:
    """Final train accuracy minus final test accuracy, in points: a measure of over-fitting."""
    return metrics["final_train_accuracy"] - metrics["final_test_accuracy"]
