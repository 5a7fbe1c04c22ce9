"""The stored results the notebooks read (results/steps.json, results/exercises.json, results/lessons/*.pt), through
one loader: a file that is missing is None, and a file that is damaged in any way -- cut short, not JSON, or
without an entry its readers use -- is one StoredResultError naming the file and the command that writes it again,
before any reader touches it. Each shape below is what its writer writes and what its readers read.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch

from . import REPO_ROOT, shown_path
from .settings import RunError, number

RESULTS = REPO_ROOT / "results"
SPREAD = {"mean": float, "std": float, "min": float, "max": float}
STEPS = {  # results/steps.json, written by python -m tools.steps
    "config": dict, "seeds": [int], "device": str,
    "steps": [{"notebook": str, "model": str, "params": int, "test_accuracy": SPREAD, "gap": SPREAD,
               "runs": [{"seed": int, "final_test_accuracy": float, "final_train_accuracy": float,
                         "final_clean_train_accuracy": float, "gap": float,
                         "test_accuracy_curve": [float], "clean_train_accuracy_curve": [float],
                         "wall_seconds": float}]}],
}
EXERCISES = {  # results/exercises.json, written by python -m tools.exercise_baselines
    "budget": dict, "seeds": [int], "device": str,
    "steps": {str: {"config": dict, "runs": [{"seed": int, "val_accuracy": float, "clean_train_accuracy": float,
                                              "gap": float, "params": int}]}},
}
HISTORY = [{key: float for key in ("epoch", "train_loss", "train_accuracy", "clean_train_loss",  # a run's epochs
                                   "clean_train_accuracy", "test_loss", "test_accuracy", "lr", "seconds")}]
METRICS = {"model": str, "params": int, "epochs": int, "complete": bool, "goal_met": bool,  # a run's metrics.json
           "final_test_accuracy": float, "final_train_accuracy": float, "final_clean_train_accuracy": float,
           "final_val_accuracy": (float, None), "wall_seconds": float, "seed": int, "config": dict, "run_dir": str,
           "history": HISTORY}
LESSON = {"model": str, "config": {"seed": int, "epochs": int, "holdout": int},  # results/lessons/*.pt
          "model_state": dict, "params": int, "epochs": int,
          "final_val_accuracy": float, "device": str}


class StoredResultError(RunError):
    """A stored result is damaged or is not what its writer writes; the message names it and how to write it again."""


def shape_problem(value, shape, where: str = "") -> str | None:
    """Where ``value`` differs from ``shape``, if anywhere: a dict of the entries it must hold (``{str: shape}``:
    any names, each of that shape), ``[shape]`` a list of such items, ``(shape, None)`` that or None, ``float`` a
    finite number, else a type."""
    if isinstance(shape, tuple):
        return None if value is None else shape_problem(value, shape[0], where)
    if isinstance(shape, dict):
        if not isinstance(value, dict):
            return f"{where or 'it'} is not a mapping"
        if list(shape) == [str]:
            return next(filter(None, (shape_problem(v, shape[str], f"{where}[{k!r}]") for k, v in value.items())), None)
        missing = [key for key in shape if key not in value]
        if missing:
            return f"{where or 'it'} has no {missing[0]!r}"
        return next(filter(None, (shape_problem(value[k], s, f"{where}[{k!r}]") for k, s in shape.items())), None)
    if isinstance(shape, list):
        if not isinstance(value, list):
            return f"{where or 'it'} is not a list"
        return next(filter(None, (shape_problem(v, shape[0], f"{where}[{i}]") for i, v in enumerate(value))), None)
    ok = number(value) if shape is float else isinstance(value, shape) and not (shape is int and type(value) is bool)
    kind = {float: "a number", int: "a whole number", str: "text", bool: "true or false"}.get(shape, shape.__name__)
    return None if ok else f"{where or 'it'} is not {kind}"


def load(path: str | Path, shape: dict, remake: str) -> dict | None:
    """The stored result at ``path`` (JSON, or a torch file read with ``weights_only=True``), None when it is not
    there, or a StoredResultError when it is damaged or differs from ``shape`` (``remake``: the command that
    writes it)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True) if path.suffix == ".pt" else \
            json.loads(path.read_text())
        problem = shape_problem(stored, shape)
    except Exception as exc:  # noqa: BLE001 - cut short, not JSON, not a torch file, unreadable
        problem = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"[:300]
    if problem is not None:
        raise StoredResultError(f"{shown_path(path)} is damaged or is not what `{remake}` writes ({problem}); "
                                f"write it again with `{remake}`, or restore it from git")
    return stored
