"""Regenerate the result tables and figures of README.md and docs/reproducibility.md from stored results,
so no number in them is typed.

    python -m tools.report          # rewrite the generated blocks of both pages and results/figures/
    python -m tools.report --check  # exit 1 if a page or a figure is out of date

Each generated block sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->``, on whichever of
the pages holds it: ``notebooks`` (the course's table of notebooks, training times from
results/steps.json), ``steps`` from results/steps.json, ``seeds`` from results/seeds.json,
``architecture`` from the model itself, ``timing`` (how long each notebook takes: its prose, exercises
and the stored runs) (all in the README), ``speed`` from results/bench/*.json (docs/reproducibility.md).
The figures: the final architecture (from the model), every step's seeds (from results/steps.json) and
the training curves of the seeds (from results/seeds.json).
"""
from __future__ import annotations

import contextlib
import json
import re
import sys
from pathlib import Path

from utils import REPO_ROOT, shown_path
from utils.config import stored_settings
from utils.course import STEPS_JSON, machine
from utils.fsutil import atomic_write_all
from utils.settings import Parser

from .seeds import CUDA_SUMMARY
from .seeds import SUMMARY as SEEDS

README = REPO_ROOT / "README.md"
EXERCISES_JSON = REPO_ROOT / "results" / "exercises.json"
REPRODUCIBILITY = REPO_ROOT / "docs" / "reproducibility.md"
MAKEFILE = REPO_ROOT / "Makefile"
BENCH = REPO_ROOT / "results" / "bench"
FIGURES = REPO_ROOT / "results" / "figures"
FIGURE_DPI = 110
CHANGES = {  # notebook stem -> what its step changes, for the README table
    "01_baseline": "plain convolutions, dense head",
    "02_batchnorm": "+ BatchNorm",
    "03_dropout": "+ Dropout",
    "04_gap": "global average pooling + 1x1 conv instead of the dense head",
    "05_augmentation": "+ augmentation (same network as step 4)",
}

TEACHES = {  # notebook stem -> what a student learns there, for the README's table of notebooks
    "01_baseline": "the data and its normalisation; a convolution by hand; feature maps; parameter arithmetic; "
                   "the receptive field, computed and measured; the training loop and the LR schedule",
    "02_batchnorm": "BatchNorm by hand, checked against nn.BatchNorm2d; activations and gradients per layer; "
                    "train versus eval mode; recalibrating the running statistics",
    "03_dropout": "Dropout masks and the 1/(1-p) scaling; why 0.05 and where; its effect on the gap over seeds",
    "04_gap": "global average pooling against Flatten + Linear; the 1x1 convolution as a Linear; "
              "class activation maps",
    "05_augmentation": "step 4's mistakes; affine augmentation on a batch, exaggerated and at the recipe's "
                       "strength; the final model's mistakes",
}
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
STUDENT_BRANCH = "student"  # tools.student.STUDENT_BRANCH (not imported: tools.student runs in .venv-otter)


UNREADABLE = (ValueError, KeyError, TypeError, IndexError, AttributeError)  # what reading a damaged result raises


class StoredResultError(Exception):
    """A stored result is damaged or not what its writer writes; the message names it and how to write it again."""


@contextlib.contextmanager
def reading(path: Path, remedy: str):
    """Turn what a damaged ``path`` makes the code below raise into one StoredResultError naming it."""
    try:
        yield
    except UNREADABLE as exc:
        reason = f"{type(exc).__name__}: {exc}".splitlines()[0]
        raise StoredResultError(f"{shown_path(path)} is not what `{remedy}` writes ({reason}); write it again with "
                                f"`{remedy}`, or restore it from git") from exc


def read_json(path: Path, remedy: str):
    with reading(path, remedy):
        return json.loads(path.read_text())


def steps_block(path: Path | None = None) -> str:
    """The step table over seeds, from results/steps.json (python -m tools.steps), and its figure."""
    path = STEPS_JSON if path is None else path
    if not path.exists():
        return "_Not measured yet: run `make steps`._"
    with reading(path, "make steps"):
        return steps_table(read_json(path, "make steps"))


def steps_table(summary: dict) -> str:
    cfg = stored_settings(summary["config"])
    rows = ["| step | notebook | change | parameters | final test acc. mean ± std | min–max | "
            "clean train − test gap mean ± std | gap min–max |",
            "|---:|---|---|---:|---:|---:|---:|---:|"]
    for i, step in enumerate(summary["steps"], 1):
        acc, gap = step["test_accuracy"], step["gap"]
        stem = step["notebook"]
        rows.append(f"| {i} | [{stem}.ipynb](notebooks/{stem}.ipynb) | {CHANGES.get(stem, '')} | {step['params']:,} | "
                    f"{acc['mean']:.2f} ± {acc['std']:.2f}% | {acc['min']:.2f}–{acc['max']:.2f}% | "
                    f"{gap['mean']:+.2f} ± {gap['std']:.2f} | {gap['min']:+.2f} to {gap['max']:+.2f} |")
    subset = f", first {cfg['train_subset']:,} training images" if cfg.get("train_subset") else ""
    rows += ["",
             f"Every step trains with one recipe: {cfg['epochs']} epochs, batch {cfg['batch_size']}, "
             f"SGD with {'Nesterov ' if cfg['nesterov'] else ''}momentum, one-cycle schedule peaking at LR "
             f"{cfg['lr']:g}{subset}; only step 5 "
             f"augments. Seeds {', '.join(map(str, summary['seeds']))}; final epoch of each run (never the best). "
             "The gap is the final epoch's accuracy on 10,000 clean training images minus its test accuracy, both "
             "scored after the epoch in evaluation mode (not the running accuracy counted during the epoch, with "
             f"Dropout on and, in step 5, on augmented images). Device: {summary['device']}, {summary['cpu']}; "
             f"torch {summary['versions']['torch']}. "
             f"Command: `{summary['command']}`; `python -m tools.report` regenerates this table and the figure.",
             "",
             "![Final test accuracy per step over seeds](results/figures/steps.png)"]
    return "\n".join(rows)


def repo_slug() -> str:
    """The course's GitHub OWNER/NAME, from the Makefile's ``REPO ?=`` line (make repo rewrites it)."""
    from .set_repo import makefile_repo

    return makefile_repo(MAKEFILE.read_text())


def runs_at_a_time(summary: dict) -> str:
    """How many runs of a sweep shared the machine, which its wall times depend on. A summary written before
    tools.steps recorded it (no "jobs") is the stored sweep of 2026-11-26, run two at a time by hand."""
    jobs = summary.get("jobs", 2)
    return {1: "one run", 2: "two runs"}.get(jobs, f"{jobs} runs") + " at a time"


def notebooks_block(path: Path | None = None) -> str:
    """The five notebooks: what each teaches, its training time (results/steps.json) and its Colab badges."""
    import statistics

    path = STEPS_JSON if path is None else path
    if not path.exists():
        return "_Not measured yet: run `make steps`._"
    slug = repo_slug()
    colab = f"https://colab.research.google.com/github/{slug}/blob"
    with reading(path, "make steps"):
        summary = read_json(path, "make steps")
        rows = ["| step | notebook | what it teaches | training | course | student edition |",
                "|---:|---|---|---:|---|---|"]
        for i, step in enumerate(summary["steps"], 1):
            stem = step["notebook"]
            wall = statistics.median(run["wall_seconds"] for run in step["runs"])
            rows.append(f"| {i} | [{stem}](notebooks/{stem}.ipynb) | {TEACHES.get(stem, '')} | {wall / 60:.1f} min | "
                        f"[![Open In Colab]({COLAB_BADGE})]({colab}/main/notebooks/{stem}.ipynb) | "
                        f"[![Open In Colab]({COLAB_BADGE})]({colab}/{STUDENT_BRANCH}/{stem}.ipynb) |")
        rows += ["", f"Training: the median wall time of the {len(summary['seeds'])} seeds of `make steps` "
                     f"(results/steps.json: {summary['cpu']}, {summary['device']}, {runs_at_a_time(summary)}). "
                     "Course: the notebook with its solutions and stored outputs; student edition: the same "
                     "notebook with the exercises left to do and their checks (`make student`)."]
    return "\n".join(rows)


READING_WORDS_PER_MINUTE = 200  # a careful read of technical prose; the basis of the reading times below


def notebook_time(stem: str) -> tuple[int, int, int]:
    """(minutes of reading at READING_WORDS_PER_MINUTE, exercises, of which judged experiments) of a notebook:
    its markdown, answer keys left out, and its ``### Exercise`` headings."""
    import nbformat

    nb = nbformat.read(REPO_ROOT / "notebooks" / f"{stem}.ipynb", as_version=4)
    prose = [c.source for c in nb.cells if c.cell_type == "markdown" and "answer-key" not in c.metadata.get("tags", [])]
    words = sum(len(re.sub(r"`[^`]*`|\]\([^)]*\)", " ", text).split()) for text in prose)
    exercises = sum(text.count("### Exercise") for text in prose)
    judged = sum("exercises.judge(" in c.source for c in nb.cells if c.cell_type == "code")
    return round(words / READING_WORDS_PER_MINUTE), exercises, judged


def timing_block() -> str:
    """For instructors: how long each notebook takes, from the notebooks themselves and the stored runs."""
    import statistics

    for path, remedy in ((STEPS_JSON, "make steps"), (EXERCISES_JSON, "make lessons")):
        if not path.exists():
            return f"_Not measured yet: run `{remedy}`._"
    steps = read_json(STEPS_JSON, "make steps")
    short = read_json(EXERCISES_JSON, "make lessons")
    cuda = read_json(CUDA_SUMMARY, "python -m tools.seeds --device cuda") if CUDA_SUMMARY.exists() else None
    rows = ["| notebook | reading | exercises | one judged experiment | training, 2-core CPU | training, GPU |",
            "|---|---:|---:|---:|---:|---:|"]
    with reading(STEPS_JSON, "make steps"):  # each file's damage is named as that file's
        stems = [(step["notebook"], step["model"], statistics.median(r["wall_seconds"] for r in step["runs"]) / 60)
                 for step in steps["steps"]]
    with reading(CUDA_SUMMARY, "python -m tools.seeds --device cuda"):
        gpu = statistics.median(r["wall_seconds"] for r in cuda["runs"]) / 60 if cuda else None
    for stem, model, cpu in stems:
        minutes, exercises, judged = notebook_time(stem)
        with reading(EXERCISES_JSON, "make lessons"):
            judge = sum(r["seconds"] for r in short["steps"][stem]["runs"])
        on_gpu = f"{gpu:.1f} min" if gpu is not None and model == "final" else "not measured"
        rows.append(f"| [{stem}](notebooks/{stem}.ipynb) | {minutes} min | {exercises} ({judged} judged) | "
                    f"{judge:.0f} s | {cpu:.1f} min | {on_gpu} |")
    gpu_device = cuda["runs"][0].get("device") if cuda and cuda["runs"] else None
    return "\n".join(rows + ["", f"Reading: the notebook's prose at {READING_WORDS_PER_MINUTE} words a minute, code "
                              "and answer key left out. One judged experiment: the three seeds of the unchanged step "
                              f"on the exercises' short budget as stored ({machine(short)}, results/exercises.json); "
                              "a student's variant takes about as long. Training: the notebook's own 15-epoch run, "
                              f"the median of the {len(steps['seeds'])} seeds of results/steps.json ({steps['cpu']}, "
                              f"{steps['device']}, {runs_at_a_time(steps)}); on a GPU only step 5 was timed "
                              f"(results/seeds-cuda.json{', ' + gpu_device if gpu_device else ''}: the median of "
                              "its seeds; the Speed section of docs/reproducibility.md times a lone run). Add the "
                              "time to think: the exercises ask for it."])


def seeds_block() -> str:
    if not SEEDS.exists():
        return "_Not measured yet: run `make seeds`._"
    from .seeds import markdown_table

    with reading(SEEDS, "make seeds"):
        summary = read_json(SEEDS, "make seeds")
        figure = f"![Loss and accuracy per epoch of the {len(summary['runs'])} seeds](results/figures/seeds_curves.png)"
        block = markdown_table(summary) + "\n\n" + figure
    if CUDA_SUMMARY.exists():
        remedy = "python -m tools.seeds --device cuda"
        with reading(CUDA_SUMMARY, remedy):
            block += ("\n\nThe same recipe and seeds on a GPU (results/seeds-cuda.json):\n\n"
                      + markdown_table(read_json(CUDA_SUMMARY, remedy)))
    return block


def speed_block() -> str:
    files = sorted(BENCH.glob("*.json"))
    if not files:
        return "_Not measured yet: run `make bench`._"
    from .bench import speed_markdown

    results = []
    for f in files:
        with reading(f, "make bench"):
            results.append(read_json(f, "make bench"))
            speed_markdown(results[-1:])  # each file on its own first, so that a damaged one is named
    return speed_markdown(results)


def architecture_block() -> str:
    from utils.models import build_model
    from utils.summary import describe

    return ("![The final network](results/figures/architecture.png)\n\n"
            "Computed from the code by `utils.summary.describe(build_model(\"final\"))` "
            "(RF: receptive field in input pixels; jump: input pixels between neighbouring outputs):\n\n"
            "```text\n" + describe(build_model("final")) + "\n```")


def figures() -> dict:
    """File name in results/figures/ -> a function drawing that figure from the code and stored results."""
    from utils import plots
    from utils.models import build_model

    def seeds_curves():
        with reading(SEEDS, "make seeds"):
            return plots.seed_curves(read_json(SEEDS, "make seeds")["runs"])

    def steps_figure():
        with reading(STEPS_JSON, "make steps"):
            return plots.step_accuracy(read_json(STEPS_JSON, "make steps"))

    out = {"architecture.png": lambda: plots.architecture(build_model("final"))}
    if STEPS_JSON.exists():
        out["steps.png"] = steps_figure
    if SEEDS.exists():
        out["seeds_curves.png"] = seeds_curves
    return out


def stale_figures(folder: Path = FIGURES) -> list[str]:
    """Names of the figures whose stored PNG differs (pixel for pixel) from a fresh drawing, or is missing."""
    import tempfile

    import matplotlib.image
    import numpy as np

    stale = []
    with tempfile.TemporaryDirectory() as tmp:
        write_figures(Path(tmp))
        for name in figures():
            stored = folder / name
            if not stored.exists() or not np.array_equal(matplotlib.image.imread(stored),
                                                         matplotlib.image.imread(Path(tmp) / name)):
                stale.append(name)
    return stale


def write_figures(folder: Path = FIGURES, drawn: dict | None = None) -> None:
    """Save every figure (``drawn``: figures already drawn, by name) into ``folder``."""
    import matplotlib.pyplot as plt

    from utils import plots

    for name, fig in (drawn or {name: draw() for name, draw in figures().items()}).items():
        plots.save(fig, folder / name, dpi=FIGURE_DPI)
        plt.close(fig)


BLOCKS = {"notebooks": notebooks_block, "steps": steps_block, "seeds": seeds_block, "speed": speed_block,
          "timing": timing_block,
          "architecture": architecture_block}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def pages() -> list[Path]:
    """The pages whose generated blocks come from stored results (read at call time, so tests can move them)."""
    return [README, REPRODUCIBILITY]


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if a page or a figure is out of date")
    args = parser.parse_args(argv)
    old = {page: page.read_text() for page in pages()}
    try:
        new = {page: render(text) for page, text in old.items()}
        changed = [page for page in old if new[page] != old[page]]
        if args.check:
            stale = [shown_path(page) for page in changed] + [f"results/figures/{n}" for n in stale_figures()]
        else:  # every figure drawn before any page or figure is written
            drawn = {name: draw() for name, draw in figures().items()}
    except StoredResultError as exc:
        parser.error(str(exc))
    names = " and ".join(shown_path(page) for page in old)
    if args.check:
        if stale:
            print(f"out of date: {', '.join(stale)}; run `python -m tools.report`", file=sys.stderr)
            return 1
        print(f"{names} and their figures are up to date")
        return 0
    if changed:
        atomic_write_all({page: new[page].encode() for page in changed})
    write_figures(drawn=drawn)
    print((f"regenerated {', '.join(shown_path(p) for p in changed)}" if changed else f"{names} already up to date")
          + f"; figures written to {FIGURES.relative_to(REPO_ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
