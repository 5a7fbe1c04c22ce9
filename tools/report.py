"""Regenerate the README's result tables and figures from stored results, so no number in it is typed.

    python -m tools.report          # rewrite the generated blocks of README.md and results/figures/
    python -m tools.report --check  # exit 1 if README.md or a figure is out of date

Each generated block sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->``:
``steps`` from results/steps.json, ``seeds`` from results/seeds.json, ``speed`` from
results/bench/*.json, ``architecture`` from the model itself. The figures: the final architecture
(from the model) and the training curves of the seeds (from results/seeds.json).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from utils.cli import Parser
from utils.course import STEPS_JSON
from utils.fsutil import atomic_write
from utils.runs import REPO_ROOT
from utils.train import stored_settings

from .seeds import CUDA_SUMMARY
from .seeds import SUMMARY as SEEDS

README = REPO_ROOT / "README.md"
FIGURES = REPO_ROOT / "results" / "figures"
FIGURE_DPI = 110
CHANGES = {  # notebook stem -> what its step changes, for the README table
    "01_baseline": "plain convolutions, dense head",
    "02_batchnorm": "+ BatchNorm",
    "03_dropout": "+ Dropout",
    "04_gap": "global average pooling + 1x1 conv instead of the dense head",
    "05_augmentation": "+ augmentation (same network as step 4)",
}


def steps_block(path: Path = STEPS_JSON) -> str:
    """The step table over seeds, from results/steps.json (python -m tools.steps), and its figure."""
    if not path.exists():
        return "_Not measured yet: run `make steps`._"
    summary = json.loads(path.read_text())
    cfg = stored_settings(summary["config"])
    rows = ["| step | notebook | change | parameters | final test acc. mean ± std | min–max | "
            "train − test gap mean ± std | gap min–max |",
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
             "The gap is the final epoch's train accuracy (measured during the epoch, in training mode) minus its "
             f"test accuracy. Device: {summary['device']}, {summary['cpu']}; torch {summary['versions']['torch']}. "
             f"Command: `{summary['command']}`; `python -m tools.report` regenerates this table and the figure.",
             "",
             "![Final test accuracy per step over seeds](results/figures/steps.png)"]
    return "\n".join(rows)


def seeds_block() -> str:
    if not SEEDS.exists():
        return "_Not measured yet: run `make seeds`._"
    from .seeds import markdown_table

    summary = json.loads(SEEDS.read_text())
    block = (markdown_table(summary) + "\n\n"
             f"![Loss and accuracy per epoch of the {len(summary['runs'])} seeds](results/figures/seeds_curves.png)")
    if CUDA_SUMMARY.exists():
        block += ("\n\nThe same recipe and seeds on a GPU (results/seeds-cuda.json):\n\n"
                  + markdown_table(json.loads(CUDA_SUMMARY.read_text())))
    return block


def speed_block() -> str:
    files = sorted((REPO_ROOT / "results" / "bench").glob("*.json"))
    if not files:
        return "_Not measured yet: run `make bench`._"
    from .bench import speed_markdown

    return speed_markdown([json.loads(f.read_text()) for f in files])


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
        runs = json.loads(SEEDS.read_text())["runs"]
        first, rest = runs[0], runs[1:]
        title = f"final recipe: seed {first['seed']} (solid), other seeds' test curves (dashed)"
        return plots.training_curves(first["history"], others={f"seed {r['seed']}": r["history"] for r in rest},
                                     title=title)

    out = {"architecture.png": lambda: plots.architecture(build_model("final"))}
    if STEPS_JSON.exists():
        out["steps.png"] = lambda: plots.step_accuracy(json.loads(STEPS_JSON.read_text()))
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


def write_figures(folder: Path = FIGURES) -> None:
    import matplotlib.pyplot as plt

    from utils import plots

    for name, draw in figures().items():
        fig = draw()
        plots.save(fig, folder / name, dpi=FIGURE_DPI)
        plt.close(fig)


BLOCKS = {"steps": steps_block, "seeds": seeds_block, "speed": speed_block, "architecture": architecture_block}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m, make=make: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    old = README.read_text()
    new = render(old)
    if args.check:
        stale = (["README.md"] if new != old else []) + [f"results/figures/{n}" for n in stale_figures()]
        if stale:
            print(f"out of date: {', '.join(stale)}; run `python -m tools.report`", file=sys.stderr)
            return 1
        print("README.md and its figures are up to date")
        return 0
    atomic_write(README, lambda tmp: tmp.write_text(new))
    write_figures()
    print(("README.md regenerated" if new != old else "README.md already up to date")
          + f"; figures written to {FIGURES.relative_to(REPO_ROOT)}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
