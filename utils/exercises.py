"""What the notebooks' exercises call: a judged experiment on a short budget, and the cost of a training step.

An exercise whose answer is a number (a parameter count, a receptive field, a shape) is checked in
the notebook by a plain ``assert`` that computes the answer from the code. An exercise whose answer
is an experiment calls :func:`judge`: it trains the student's variant of a step on a short budget
(``BUDGET``: two epochs on the first 10,000 training images, scored on a validation split, the last
10,000, never the test set) over ``SEEDS``, and sets it against the unchanged step on the same budget
and seeds, read from results/exercises.json (``python -m tools.exercise_baselines``) so that the
student trains only the variant. The verdict gives both means and spreads, and says "within the seed
noise" when the difference is no larger than twice its standard error. In quick mode
(``MNIST_COURSE_QUICK=1``) the budget shrinks to seconds and the unchanged step is trained as well.
"""
from __future__ import annotations

import dataclasses
import math
import re
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import REPO_ROOT, results, shown_path
from .config import AUGMENTATION_RANGES, Config, recipe
from .course import quick_mode, spread
from .lessons import comparable_settings
from .models import STEPS
from .train import train

BUDGET = {"epochs": 2, "train_subset": 10_000, "holdout": 10_000}
SEEDS = (1, 2, 3)
QUICK_BUDGET = {"epochs": 1, "train_subset": 1_000, "holdout": 1_000}
QUICK_SEEDS = (1, 2)
BASELINES = REPO_ROOT / "results" / "exercises.json"
RUNS = REPO_ROOT / "build" / "exercises"


def budget(quick: bool | None = None) -> tuple[dict, tuple[int, ...]]:
    """The short budget and the seeds of a judged experiment (quick mode's when ``quick``, default: the env)."""
    quick = quick_mode() if quick is None else quick
    return (dict(QUICK_BUDGET), QUICK_SEEDS) if quick else (dict(BUDGET), SEEDS)


def budget_config(notebook: str, seed: int, short: dict, **settings) -> Config:
    """The step's recipe on the short budget, with the variant's ``settings`` (Config fields) on top."""
    if notebook not in STEPS:
        raise ValueError(f"unknown notebook {notebook!r}; choose one of: {', '.join(STEPS)}")
    return recipe(STEPS[notebook], seed=seed, **short, **settings)


def describe_budget(short: dict, seeds) -> str:
    return (f"{short['epochs']} epoch{'s' if short['epochs'] > 1 else ''} on the first {short['train_subset']:,} "
            f"training images, scored on a validation split (the last {short['holdout']:,}), seeds "
            f"{', '.join(map(str, seeds))}")


def short_run(cfg: Config, out: Path, variant=None) -> dict:
    """Train one seed on the short budget into ``out``; the final epoch's validation numbers."""
    start = time.perf_counter()
    metrics = train(cfg, out, model=variant, progress=False, overwrite=True, log=lambda *_: None)
    return {"seed": cfg.seed, "val_accuracy": metrics["final_val_accuracy"],
            "clean_train_accuracy": metrics["final_clean_train_accuracy"],
            "gap": metrics["final_clean_train_accuracy"] - metrics["final_val_accuracy"],
            "params": metrics["params"], "seconds": time.perf_counter() - start}


def slug(label: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", label.lower()).strip("-") or "variant"


# --------------------------------------------------------------------------------------------------
# The unchanged steps on the short budget (results/exercises.json)
# --------------------------------------------------------------------------------------------------

def load_baselines(path: str | Path | None = None) -> dict | None:
    """results/exercises.json, read through ``utils.results``: None when it is missing or damaged, after one
    line saying so, so that a notebook reading it still runs to the end."""
    path = BASELINES if path is None else path
    try:
        stored = results.load(path, results.EXERCISES, "python -m tools.exercise_baselines")
    except results.StoredResultError as exc:
        print(exc)
        return None
    if stored is None:
        print(f"{shown_path(path)} not found: `python -m tools.exercise_baselines` (make lessons) writes it")
    return stored


def stored_baseline(notebook: str, short: dict, seeds, path: str | Path | None = None) -> tuple[list | None, str]:
    """The stored runs of the unchanged step ``notebook`` on this budget and these seeds (results/exercises.json,
    read through ``utils.results``), or None and the reason they cannot be used: missing, damaged, or made with
    other settings than the code has now."""
    path = BASELINES if path is None else path
    remake = "python -m tools.exercise_baselines"
    try:
        stored = results.load(path, results.EXERCISES, remake)
    except results.StoredResultError as exc:
        return None, str(exc)
    if stored is None:
        return None, f"{shown_path(path)} not found (`{remake}` stores them)"
    step = stored["steps"].get(notebook)
    if step is None or tuple(stored["seeds"]) != tuple(seeds) or stored["budget"] != short:
        return None, f"{shown_path(path)} holds no runs of {notebook} on this budget and these seeds (`{remake}`)"
    expected = comparable_settings(dataclasses.asdict(budget_config(notebook, seeds[0], short)))
    if comparable_settings({**step["config"], "seed": seeds[0]}) != expected:
        return None, f"{shown_path(path)} was made with other settings than the recipe has now (`{remake}` again)"
    return step["runs"], f"stored in {shown_path(path)}, {stored['device']}"


# --------------------------------------------------------------------------------------------------
# The verdict
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Comparison:
    """One measure (validation accuracy, or the gap) of the variant against the unchanged step."""

    measure: str
    variant: dict  # spread(): mean, std, min, max over the seeds
    baseline: dict
    difference: float  # variant mean - baseline mean, in points
    noise: float  # twice the standard error of that difference
    verdict: str  # "higher", "lower" or "within the seed noise"


def compare_runs(measure: str, variant: list[float], baseline: list[float]) -> Comparison:
    """A difference counts only when it is larger than twice its standard error,
    sqrt(s_variant^2 / n_variant + s_baseline^2 / n_baseline); anything smaller is within the seed noise."""
    a, b = spread(variant), spread(baseline)
    difference = a["mean"] - b["mean"]
    noise = 2 * math.sqrt(a["std"] ** 2 / len(variant) + b["std"] ** 2 / len(baseline))
    verdict = "within the seed noise" if abs(difference) <= noise else ("higher" if difference > 0 else "lower")
    return Comparison(measure, a, b, difference, noise, verdict)


@dataclasses.dataclass
class Verdict:
    label: str
    notebook: str
    settings: dict  # the Config fields the variant changed
    variant_runs: list[dict]
    baseline_runs: list[dict]
    baseline_source: str
    accuracy: Comparison
    gap: Comparison
    quick: bool = False  # judged on quick mode's budget, too short for any network to learn

    @property
    def params(self) -> int:
        return self.variant_runs[0]["params"]

    def learned(self, above: float) -> bool:
        """Whether the variant learned on every seed: a validation accuracy above ``above`` % on each (answering
        one digit for every image scores about 11%). Quick mode's budget is too short for any network to learn,
        so there it is not judged (True, and the verdict says so): a check then rests on the settings alone."""
        return self.quick or all(run["val_accuracy"] > above for run in self.variant_runs)


def built(factory, label: str) -> nn.Module | None:
    """``factory()``, or None after one line saying why it cannot train: an exercise cell the student has not
    filled in yet, or one that builds something other than a classifier of 28x28 digits, must not stop "Run All"
    (its check then reports the failure) nor fail inside training with torch's own words."""
    if isinstance(factory, nn.Module):
        problem = (f"pass the class ({type(factory).__name__}), not a network built from it "
                   f"({type(factory).__name__}()): each seed builds its own")
    else:
        try:
            model = factory()
            torch.manual_seed(0)
            scores = model(torch.randn(2, 1, 28, 28))
        except Exception as exc:  # an unfinished answer: any error at all
            problem = f"the network could not be built or run ({type(exc).__name__}: {str(exc).splitlines()[0]})"
        else:
            shape = tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__
            problem = None
            if not list(model.parameters()):
                problem = "it has no parameters to train"
            elif shape != (2, 10):
                problem = f"it gives {shape} for 2 images, where a classifier gives 10 scores per image, (2, 10)"
            elif not torch.isfinite(scores).all():
                problem = ("it computes NaN or infinite scores: look for a division by zero or a log of a negative "
                           "number among its layers")
    if problem is None:
        return model
    print(f"{label}: {problem}; finish the cell above, then run it again")
    return None


def judge(notebook: str, variant=None, *, label: str, **settings) -> Verdict | None:
    """Train ``variant`` (a class or function that builds the network, or None: the step's own network)
    with the step's recipe and ``settings`` (Config fields, e.g. ``degrees=15``) on the short budget over
    the seeds; print and return how it compares with the unchanged step on the same budget and seeds.
    None, with a message, when the variant or the settings cannot make a run (an unfinished answer)."""
    short, seeds = budget()
    if variant is not None and built(variant, label) is None:
        return None
    unused = [name for name in AUGMENTATION_RANGES if name in settings]
    if unused and notebook in STEPS and not settings.get("augment", recipe(STEPS[notebook]).augment):
        # the run would train exactly the unchanged step (a Config refuses a changed range there too)
        print(f"{label}: {notebook} trains without augmentation, so {' and '.join(unused)} would change "
              "nothing; judge 05_augmentation, where augmentation is on")
        return None
    try:
        budget_config(notebook, seeds[0], short, **settings)  # a Config checks its fields as it is made
    except (TypeError, ValueError) as exc:
        print(f"{label}: these settings cannot make a run ({exc}); finish the cell above, then run it again")
        return None
    quick = quick_mode()
    folder = (REPO_ROOT / "build" / "quick" / "exercises" if quick else RUNS) / notebook
    print(f"Budget: {describe_budget(short, seeds)}.")
    # The unchanged step's runs are looked up first: a file that cannot serve is said before the variant trains.
    baseline, source = (None, "quick mode: trained here on the quick budget") if quick else stored_baseline(
        notebook, short, seeds)
    if baseline is None and not quick:
        print(f"  the unchanged step: {source}; it trains here too, after the variant")
    runs = []
    for seed in seeds:
        run = short_run(budget_config(notebook, seed, short, **settings), folder / slug(label) / f"seed{seed}", variant)
        runs.append(run)
        print(f"  {label}, seed {seed}: validation {run['val_accuracy']:.2f}%, clean train - validation gap "
              f"{run['gap']:+.2f} points ({run['seconds']:.0f} s)")
    if baseline is None:
        baseline = [short_run(budget_config(notebook, seed, short), folder / "unchanged" / f"seed{seed}")
                    for seed in seeds]
        source = source if quick else "trained here"
    verdict = Verdict(label, notebook, dict(settings), runs, baseline, source,
                      compare_runs("validation accuracy", [r["val_accuracy"] for r in runs],
                                   [r["val_accuracy"] for r in baseline]),
                      compare_runs("clean train - validation gap", [r["gap"] for r in runs],
                                   [r["gap"] for r in baseline]), quick=quick)
    print(verdict_text(verdict))
    if quick:
        print("quick mode: no network learns on this budget, so a check of what the variant learned is not judged "
              "here (only its settings are); run the notebook without MNIST_COURSE_QUICK to judge it")
    return verdict


def verdict_text(v: Verdict) -> str:
    def line(name: str, s: dict, params: int, unit: str) -> str:
        return (f"{name:<32}{params:>7,} parameters  {s['mean']:6.2f} ± {s['std']:.2f}{unit}  "
                f"({s['min']:.2f} to {s['max']:.2f})")

    lines = []
    for c, unit in ((v.accuracy, "%"), (v.gap, " points")):
        lines += [f"{c.measure}, mean ± std over the seeds (min to max):",
                  line(f"  {v.label}", c.variant, v.params, unit),
                  line(f"  unchanged {v.notebook}", c.baseline, v.baseline_runs[0]["params"], unit)
                  + f"  [{v.baseline_source}]",
                  f"  difference of the means {c.difference:+.2f} points, seed noise ±{c.noise:.2f} "
                  f"(twice its standard error): {c.verdict}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------
# The cost of a training step
# --------------------------------------------------------------------------------------------------

def training_cost(factories: dict, batch_size: int = 128) -> dict[str, float] | None:
    """Print the parameters and the milliseconds per training step of each network (``{label: factory}``),
    measured here and now; None, with a message, when one cannot be built (an unfinished answer)."""
    from .summary import count_parameters

    models = {label: built(factory, label) for label, factory in factories.items()}
    if any(m is None for m in models.values()):
        return None
    ms = time_training_steps(models, batch_size)
    first = next(iter(ms))
    for label, model in models.items():
        print(f"{label:<16} {count_parameters(model):>7,} parameters, one training step of {batch_size} images "
              f"{ms[label]:6.1f} ms ({ms[label] / ms[first]:.1f}x {first})")
    return ms


def time_training_steps(models: dict[str, nn.Module], batch_size: int = 128, rounds: int = 3,
                        steps: int = 5) -> dict[str, float]:
    """Milliseconds per training step (forward, backward, SGD update; no augmentation) of each network,
    channels_last as utils.train runs it. The networks take turns for ``rounds`` rounds and the fastest
    round counts, so that a burst of load from elsewhere on a shared machine hits them all alike."""
    torch.manual_seed(0)
    x = torch.randn(batch_size, 1, 28, 28).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 10, (batch_size,))
    setups = {}
    for name, model in models.items():
        model = model.to(memory_format=torch.channels_last).train()
        setups[name] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True))
    best = {name: float("inf") for name in models}
    for _ in range(rounds):
        for name, (model, opt) in setups.items():
            for i in range(steps + 3):  # three untimed warm-up steps
                if i == 3:
                    start = time.perf_counter()
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            best[name] = min(best[name], (time.perf_counter() - start) / steps * 1000)
    return best
