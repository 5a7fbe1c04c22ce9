"""What the notebooks call, so their code cells stay short: set-up, showing code, results.

* ``setup`` is the one call at the top of every notebook: it picks the step's recipe, handles
  quick mode, the run folder and threads, and chooses the notebook progress display.
* ``show_model`` / ``show_diff`` / ``show_training_step`` / ``show_recipe_diff`` display the real
  code from utils/ (read with ``inspect``), so what a student reads is what runs.
* ``result``, ``compare``, ``seed_table`` and ``show_steps`` print what runs stored: a run's
  metrics.json, and results/steps.json (every step on five seeds, written by ``python -m tools.steps``).
"""
from __future__ import annotations

import dataclasses
import difflib
import inspect
import json
import os
import statistics
from dataclasses import dataclass
from pathlib import Path

import torch
from IPython.display import Markdown, display

from . import GOAL, MAX_EPOCHS, MAX_PARAMS, REPO_ROOT, results, shown_path
from .config import Config, device_name, recipe, resolve_device, stored_settings
from .models import MODELS, STEPS
from .progress import NotebookProgress
from .runs import metrics_problem
from .settings import RunError

QUICK_ENV = "MNIST_COURSE_QUICK"  # "1": one epoch on 2,000 images (the nbval check), written under build/quick/
QUICK_EPOCHS, QUICK_SUBSET = 1, 2000
QUICK_ON, QUICK_OFF = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")  # any case; "" is unset
NOTEBOOKS = REPO_ROOT / "notebooks"
STEPS_JSON = REPO_ROOT / "results" / "steps.json"
# Config fields that say how one run is carried out, not how the step trains: left out of recipe listings.
RUN_FIELDS = tuple(f.name for f in dataclasses.fields(Config) if f.metadata.get("run"))


def quick_mode() -> bool:
    """Whether $MNIST_COURSE_QUICK asks for quick mode; a value that is neither on nor off is refused,
    since a typo would otherwise start a full run into runs/."""
    value = os.environ.get(QUICK_ENV, "")
    if value.strip().lower() in QUICK_ON + QUICK_OFF:
        return value.strip().lower() in QUICK_ON
    raise RunError(f"{QUICK_ENV}={value!r} is neither on ({', '.join(QUICK_ON)}) nor off "
                   f"({', '.join(QUICK_OFF[:-1])}, or unset); set it to one of those")


def run_folder(out_dir: str | os.PathLike) -> Path:
    """The run folder for a notebook's ``out_dir`` parameter: relative paths are taken from notebooks/
    (where Jupyter, nbclient and nbval run), so the result is the same from anywhere."""
    if not isinstance(out_dir, (str, os.PathLike)) or not str(out_dir).strip():
        raise RunError(f"out_dir must be a folder path such as '../runs/01_baseline', got {out_dir!r} (an empty "
                       "path would put the run among the notebooks)")
    path = Path(out_dir).expanduser()
    return (path if path.is_absolute() else NOTEBOOKS / path).resolve()


# --------------------------------------------------------------------------------------------------
# Set-up
# --------------------------------------------------------------------------------------------------

@dataclass
class Run:
    """What a notebook needs to train its step: ``train(run.cfg, run.dir, progress=run.progress)``."""

    notebook: str
    cfg: Config
    dir: Path
    device: torch.device
    progress: type = NotebookProgress
    quick: bool = False


def setup(notebook: str, *, epochs: int | None = None, seed: int = 1, out_dir: str | os.PathLike | None = None,
          device: str = "auto", threads: int | None = None) -> Run:
    """The run for ``notebook`` (a stem of ``utils.models.STEPS``): the step's recipe from utils.config,
    with ``epochs=None`` meaning the recipe's own number. Quick mode (``MNIST_COURSE_QUICK=1``) trains
    one epoch on 2,000 images into build/quick/<notebook>, so it never replaces a real run.
    ``threads`` sets torch's CPU threads (None: torch's default)."""
    if notebook not in STEPS:
        raise ValueError(f"unknown notebook {notebook!r}; choose one of: {', '.join(STEPS)}")
    if threads is not None:
        torch.set_num_threads(threads)
    quick = quick_mode()
    overrides = {"seed": seed, "device": device}
    if epochs is not None:
        overrides["epochs"] = epochs
    folder = run_folder(out_dir if out_dir is not None else f"../runs/{notebook}")  # checked in quick mode too
    if quick:
        overrides.update(epochs=QUICK_EPOCHS, train_subset=QUICK_SUBSET)
        folder = REPO_ROOT / "build" / "quick" / notebook
    # A bad parameter stops here, in the set-up cell, with the message train() would give: a Config checks its
    # fields as it is made, and the device is resolved once (train() then finds it named, e.g. "cpu").
    dev = resolve_device(device)
    cfg = recipe(STEPS[notebook], **{**overrides, "device": dev.type})
    images = f"the first {cfg.train_subset:,}" if cfg.train_subset else "all 60,000"
    epochs_text = f"{cfg.epochs} epoch{'' if cfg.epochs == 1 else 's'}"
    print(f"{notebook}: model {cfg.model}, {epochs_text} on {images} training images, seed {cfg.seed}, "
          f"augmentation {'on' if cfg.augment else 'off'}")
    print(f"device {device_name(dev)}; run folder {shown_path(folder)}")
    if quick:
        print(f"QUICK MODE ({QUICK_ENV}=1): a short check run, not the course's result")
    return Run(notebook=notebook, cfg=cfg, dir=folder, device=dev, quick=quick)


# --------------------------------------------------------------------------------------------------
# Showing the code
# --------------------------------------------------------------------------------------------------

def show_source(text: str, language: str = "python") -> None:
    """Display ``text`` as a highlighted code block (Markdown, rendered by JupyterLab and Colab alike)."""
    display(Markdown(f"```{language}\n{text.rstrip()}\n```"))


def model_source(name: str) -> str:
    """The source of the class that builds the step ``name``, as written in utils/models.py."""
    return inspect.getsource(MODELS[name])


def diff_lines(old: str, new: str, old_label: str, new_label: str) -> list[str]:
    return list(difflib.unified_diff(old.splitlines(), new.splitlines(), old_label, new_label, lineterm=""))


def show_model(name: str) -> None:
    """The step's model class, from utils/models.py."""
    show_source(model_source(name))


def show_diff(prev: str, name: str) -> None:
    """What step ``name`` changes in the network of step ``prev``: a unified diff of the two classes'
    ``__init__`` (the layers), '-' lines removed and '+' lines added."""
    old, new = MODELS[prev], MODELS[name]
    lines = diff_lines(inspect.getsource(old.__init__), inspect.getsource(new.__init__),
                       f"{old.__name__}.__init__", f"{new.__name__}.__init__")
    if not lines:
        print(f"{new.__name__} builds exactly the layers of {old.__name__}: the network does not change.")
        return
    show_source("\n".join(lines), "diff")


def show_training_step() -> None:
    """The training step every step uses, ``utils.train.train_epoch`` (forward, loss, backward, step), and
    beside it ``evaluate`` (eval mode, no gradients), which scores the network after every epoch."""
    from . import train

    show_source(inspect.getsource(train.train_epoch) + "\n\n" + inspect.getsource(train.evaluate))


def show_augmentation() -> None:
    """How every training image is distorted: ``utils.augment.random_affine`` and the draw behind it."""
    from . import augment

    show_source(inspect.getsource(augment.random_affine_params) + "\n\n" + inspect.getsource(augment.random_affine))


def recipe_settings(model: str) -> dict:
    """The training settings of a step (the Config fields that are not about one particular run)."""
    return {k: v for k, v in dataclasses.asdict(recipe(model)).items() if k not in RUN_FIELDS}


def recipe_lines(model: str) -> list[str]:
    """``name = value  # why`` for each training setting of the step (the why is the Config field's own)."""
    why = {f.name: f.metadata["why"] for f in dataclasses.fields(Config)}
    return [f"{k} = {v!r}  # {why[k]}" for k, v in recipe_settings(model).items()]


def show_recipe(model: str) -> None:
    """The step's training settings, from ``utils.config.Config`` and ``RECIPES``, each with its reason."""
    show_source("\n".join(recipe_lines(model)))


def show_recipe_diff(prev: str, name: str) -> None:
    """What step ``name`` changes in the training settings of step ``prev`` (a diff; usually nothing)."""
    lines = diff_lines("\n".join(recipe_lines(prev)), "\n".join(recipe_lines(name)), f"recipe('{prev}')",
                       f"recipe('{name}')")
    if not lines:
        print(f"Training settings: the same as step '{prev}' (utils.config.RECIPES).")
        return
    show_source("\n".join(lines), "diff")


# --------------------------------------------------------------------------------------------------
# Results of one run
# --------------------------------------------------------------------------------------------------

def earlier_metrics(run_dir: str | os.PathLike, name: str) -> dict | None:
    """metrics.json of an earlier notebook's run, stored beside this run's folder, or None if it was not
    run, or (with one line saying so) if that file is not a run's metrics."""
    path = Path(run_dir).parent / name / "metrics.json"
    if not path.is_file():
        return None
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        problem = f"{type(exc).__name__}: {exc}"
    else:
        problem = metrics_problem(metrics)
    if problem is None:
        return metrics
    print(f"{shown_path(path)} is not a run's metrics ({problem}); execute {name}.ipynb again to write it")
    return None


def gap(metrics: dict) -> float:
    """The generalisation gap at the final epoch, in points: the accuracy on clean training images minus the
    accuracy on the test images, both scored the same way (eval mode, no augmentation) by the same weights.
    (The running training accuracy is not used: it is counted with Dropout on and on augmented images.)"""
    return metrics["final_clean_train_accuracy"] - metrics["final_test_accuracy"]


def goal_met(metrics: dict) -> bool:
    return (metrics["final_test_accuracy"] >= GOAL and metrics["epochs"] <= MAX_EPOCHS
            and metrics["params"] <= MAX_PARAMS)


def result(metrics: dict) -> None:
    """A notebook's Result block, printed from its run's metrics: the final epoch, never the best one."""
    augmented = metrics["config"]["augment"]
    dropout = any(w in metrics["model"] for w in ("dropout", "gap", "final"))
    print(f"Parameters:            {metrics['params']:,}")
    print(f"Running train accuracy: {metrics['final_train_accuracy']:.2f}%  (counted during the last epoch, in "
          f"training mode{', Dropout on' if dropout else ''}{', on augmented images' if augmented else ''})")
    print(f"Clean train accuracy:  {metrics['final_clean_train_accuracy']:.2f}%  (after the last epoch, eval mode, "
          "as the test set is scored)")
    print(f"Final test accuracy:   {metrics['final_test_accuracy']:.2f}%  (epoch {metrics['epochs']}, the last one)")
    print(f"Clean train - test gap: {gap(metrics):+.2f} points")
    print(f"Seed:                  {metrics['seed']}")
    print(f"Goal ({GOAL:.2f}% at the last epoch, <= {MAX_EPOCHS} epochs, <= {MAX_PARAMS:,} parameters): "
          f"{'met' if goal_met(metrics) else 'not met'}")
    print(f"Wall time:             {metrics['wall_seconds']:.0f} s")


def compare(runs: dict[str, dict | None]) -> None:
    """One line per run: parameters, test accuracy after the first and the last epoch, train-test gap."""
    for label, m in runs.items():
        if m is None:
            print(f"{label:>12}: no stored run (execute that notebook first to compare with it)")
            continue
        h = m["history"]
        print(f"{label:>12}: {m['params']:>6,} parameters | test accuracy after epoch 1 {h[0]['test_accuracy']:.2f}%, "
              f"after epoch {m['epochs']} {m['final_test_accuracy']:.2f}% | "
              f"final clean train - test gap {gap(m):+.2f} points")
        if m.get("source"):
            print(f"{'':>12}  ({m['source']})")


def stored_step_run(notebook: str, seed: int = 1, path: str | os.PathLike | None = None) -> dict | None:
    """Seed ``seed`` of step ``notebook`` from results/steps.json, shaped like a run's metrics for
    ``compare`` and ``plots.training_curves`` (its history holds the test accuracy per epoch only),
    with a ``source`` line that says where it comes from; None when the sweep does not hold it."""
    path = STEPS_JSON if path is None else path
    found = stored_seed(notebook, seed, path)
    if found is None:
        return None
    summary, step, run = found
    curves = zip(run["test_accuracy_curve"], run["clean_train_accuracy_curve"], strict=True)
    return {"params": step["params"], "epochs": len(run["test_accuracy_curve"]),
            "final_test_accuracy": run["final_test_accuracy"],
            "final_clean_train_accuracy": run["final_clean_train_accuracy"],
            "history": [{"epoch": i, "test_accuracy": a, "clean_train_accuracy": c}
                        for i, (a, c) in enumerate(curves, 1)],
            "source": f"no run of {notebook} here: seed {seed} as stored in {shown_path(path)} ({summary['device']})"}


def previous_step(run_dir: str | os.PathLike, notebook: str) -> dict | None:
    """The run of the earlier notebook ``notebook`` to compare with: its run beside this one (executed
    in this clone), else its seed 1 from results/steps.json (a notebook opened alone, e.g. on Colab)."""
    return earlier_metrics(run_dir, notebook) or stored_step_run(notebook)


# --------------------------------------------------------------------------------------------------
# Every step on five seeds (results/steps.json)
# --------------------------------------------------------------------------------------------------

def load_steps(path: str | os.PathLike = STEPS_JSON, quiet: bool = False) -> dict | None:
    """The seed sweep written by ``python -m tools.steps``, read through ``utils.results``: None when it is missing
    or damaged, after one line saying so (unless ``quiet``), so that the rest of the notebook still runs."""
    try:
        summary = results.load(path, results.STEPS, "make steps")
    except results.StoredResultError as exc:
        summary, said = None, str(exc)
    else:
        said = None if summary is not None else (f"{shown_path(path)} not found: `make steps` trains every step "
                                                 "on seeds 1-5 (python -m tools.steps) and writes it.")
    if said and not quiet:
        print(said)
    return summary


def stored_seed(notebook: str, seed: int, path: str | os.PathLike | None = None) -> tuple[dict, dict, dict] | None:
    """(the sweep, the step's summary, the seed's run) from results/steps.json, or None if it holds no such run
    or is missing or damaged (``seed_table`` says which; the callers of this one only do without it)."""
    summary = load_steps(STEPS_JSON if path is None else path, quiet=True)
    step = next((s for s in (summary or {}).get("steps", []) if s["notebook"] == notebook), None)
    run = next((r for r in (step or {}).get("runs", []) if r["seed"] == seed), None)
    return None if run is None else (summary, step, run)


def spread(values: list[float]) -> dict:
    """Mean, sample standard deviation (0 for one value), min and max."""
    return {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "min": min(values), "max": max(values)}


def step_row(step: dict) -> str:
    acc, gp = step["test_accuracy"], step["gap"]
    return (f"{step['notebook']:<16}{step['params']:>7,}   {acc['mean']:6.2f} ± {acc['std']:.2f}  "
            f"({acc['min']:.2f}-{acc['max']:.2f})   {gp['mean']:+5.2f} ± {gp['std']:.2f}  "
            f"({gp['min']:+.2f} to {gp['max']:+.2f})")


def step_header(summary: dict) -> str:
    return (f"{len(summary['seeds'])} seeds ({', '.join(map(str, summary['seeds']))}), "
            f"{summary['config']['epochs']} epochs each, final epoch:\n"
            f"{'notebook':<16}{'params':>7}   {'test accuracy % (min-max)':<28}{'clean train - test gap (min to max)'}")


def stale_warning(summary: dict) -> str | None:
    """A line when results/steps.json was trained with other settings than the recipe in the code now."""
    shared = {**{k: v for k, v in recipe_settings("final").items() if k != "augment"}, "train_subset": 0}
    stored = stored_settings(summary["config"])
    differ = [f"{k}={stored[k]!r} (the code: {v!r})" for k, v in shared.items() if stored[k] != v]
    if differ:
        return (f"note: {shown_path(STEPS_JSON)} was made with other settings than the recipe in utils.config now: "
                f"{', '.join(differ)}; re-run `make steps`")
    return None


def seed_table(notebook: str, path: str | os.PathLike = STEPS_JSON) -> None:
    """This step and the one before it over all seeds, from results/steps.json, and the change in the means.
    A missing or damaged file gets one line saying so, not a traceback: the rest of the notebook still runs."""
    summary = load_steps(path)
    if summary is None:
        return
    steps = {s["notebook"]: s for s in summary["steps"]}
    order = list(STEPS)
    names = order[max(0, order.index(notebook) - 1): order.index(notebook) + 1]
    if notebook not in steps:
        print(f"{shown_path(path)} holds no runs of {notebook}: re-run `make steps`.")
        return
    lines = [step_header(summary)] + [step_row(steps[name]) for name in names if name in steps]
    if len(names) == 2 and names[0] in steps:
        lines.append(mean_change(steps[names[0]], steps[notebook]))
    print("\n".join(lines + [w for w in [stale_warning(summary)] if w]))


def mean_change(before: dict, now: dict) -> str:
    """The change of the means between two steps, with the unrounded means it is computed from (two
    rounded means can differ by one more or less in the last digit than their change)."""
    acc = [before["test_accuracy"]["mean"], now["test_accuracy"]["mean"]]
    gaps = [before["gap"]["mean"], now["gap"]["mean"]]
    return (f"change in the mean: test accuracy {acc[1] - acc[0]:+.2f} points ({acc[0]:.3f} -> {acc[1]:.3f}), "
            f"gap {gaps[1] - gaps[0]:+.2f} points ({gaps[0]:+.3f} -> {gaps[1]:+.3f}); from the unrounded means")


def gap_change(before: str, now: str, path: str | os.PathLike = STEPS_JSON) -> dict | None:
    """Seed by seed, from results/steps.json, the clean train - test gap of two steps, the change, the test
    accuracies, and beside them the gap the running training accuracy would give; the sweep, or None after one
    line saying why it cannot be read."""
    summary = load_steps(path)
    steps = {s["notebook"]: s for s in summary["steps"]} if summary else {}
    if before not in steps or now not in steps:
        if summary is not None:
            print(f"{shown_path(path)} holds no runs of {before} or {now}: re-run `make steps`.")
        return None
    runs_before = {r["seed"]: r for r in steps[before]["runs"]}
    pairs = [(runs_before[r["seed"]], r) for r in steps[now]["runs"] if r["seed"] in runs_before]
    if len(pairs) < max(len(runs_before), len(steps[now]["runs"])):
        print(f"note: {shown_path(path)} holds other seeds for {before} than for {now}; the seeds of both follow "
              "(re-run `make steps` for all)")
    for b, n in pairs:
        running = [r["final_train_accuracy"] - r["final_test_accuracy"] for r in (b, n)]
        print(f"seed {n['seed']}: clean gap {b['gap']:+.2f} -> {n['gap']:+.2f} points ({n['gap'] - b['gap']:+.2f}), "
              f"test {b['final_test_accuracy']:.2f}% -> {n['final_test_accuracy']:.2f}% | running-train gap "
              f"{running[0]:+.2f} -> {running[1]:+.2f}")
    narrower = sum(n["gap"] < b["gap"] for b, n in pairs)
    print(f"the clean gap is narrower on {narrower} of {len(pairs)} seeds; mean {steps[before]['gap']['mean']:+.3f} -> "
          f"{steps[now]['gap']['mean']:+.3f} points")
    return summary


def machine(summary: dict) -> str:
    """Where a stored summary was measured: its CPU model and device, as far as it names them."""
    return ", ".join(x for x in (summary.get("cpu"), summary.get("device")) if x)


def seed_note(notebook: str, seed: int = 1, path: str | os.PathLike | None = None) -> None:
    """Why this notebook's run of ``seed`` can end a few hundredths away from the same seed in the table:
    the sweep may have run on another CPU or thread count, which changes the order of the float sums."""
    found = stored_seed(notebook, seed, path)
    if found is None:
        return
    summary, _, run = found
    print(f"Seed {seed} in this table: {run['final_test_accuracy']:.2f}% ({machine(summary)}). This notebook trains "
          f"seed {seed} too, on this machine's CPU and thread count (its first training line): another CPU or thread "
          "count sums the floats in another order, so the same code and seed can end a few hundredths apart "
          "(docs/reproducibility.md, Reproducibility).")


def show_steps(path: str | os.PathLike = STEPS_JSON) -> None:
    """The whole course at a glance: the step table over seeds and every step's test-accuracy curve
    (a missing or damaged results/steps.json: one line saying so)."""
    import matplotlib.pyplot as plt

    from . import plots

    summary = load_steps(path)
    if summary is None:
        return
    lines = [step_header(summary)] + [step_row(step) for step in summary["steps"]]
    print("\n".join(lines + [w for w in [stale_warning(summary)] if w]))
    fig = plots.step_curves(summary)
    display(fig)
    plt.close(fig)
