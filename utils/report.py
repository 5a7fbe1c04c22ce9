"""Regenerate the README's result tables from stored results, so no number in it is typed.

    python -m utils.report          # rewrite the generated blocks of README.md in place
    python -m utils.report --check  # exit 1 if README.md is out of date (used by the tests)

Each generated block sits between ``<!-- BEGIN name -->`` and ``<!-- END name -->``:
``steps`` from the executed notebooks, ``seeds`` from results/seeds.json, ``speed`` from
bench/results/*.json.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from .fsutil import atomic_write
from .train import REPO_ROOT, _Parser

README = REPO_ROOT / "README.md"
NOTEBOOKS = REPO_ROOT / "notebooks"
STEPS = [
    ("01_baseline", "baseline", "plain convolutions, dense head"),
    ("02_batchnorm", "batchnorm", "+ BatchNorm"),
    ("03_dropout", "dropout", "+ Dropout"),
    ("04_gap", "gap", "1x1 conv + global average pooling instead of the dense head"),
    ("05_augmentation", "final", "+ augmentation and one-cycle LR schedule"),
]


def notebook_result(path: Path) -> dict | None:
    """The ``RESULT {...}`` JSON line that a notebook's Result cell printed, from its stored outputs."""
    if not path.exists():
        return None
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            text = "".join(text) if isinstance(text, list) else text
            for line in text.splitlines():
                if line.startswith("RESULT "):
                    return json.loads(line[len("RESULT "):])
    return None


def steps_block() -> str:
    rows = ["| step | notebook | change | parameters | best train acc. | final test acc. | epochs |",
            "|---:|---|---|---:|---:|---:|---:|"]
    for i, (stem, _model, change) in enumerate(STEPS, 1):
        r = notebook_result(NOTEBOOKS / f"{stem}.ipynb")
        link = f"[{stem}.ipynb](notebooks/{stem}.ipynb)"
        if r is None:
            rows.append(f"| {i} | {link} | {change} | – | – | not run yet | – |")
            continue
        rows.append(f"| {i} | {link} | {change} | {r['params']:,} | {r['best_train_accuracy']:.2f}% | "
                    f"{r['final_test_accuracy']:.2f}% | {r['epochs']} |")
    rows.append("")
    rows.append("Numbers are the stored outputs of each notebook's Result cell (final epoch, seed 1, this "
                "repository's 2-core CPU); `python -m utils.report` regenerates this table.")
    return "\n".join(rows)


def seeds_block() -> str:
    path = REPO_ROOT / "results" / "seeds.json"
    if not path.exists():
        return "_Not measured yet: run `make seeds`._"
    from .seeds import markdown_table

    return markdown_table(json.loads(path.read_text()))


def speed_block() -> str:
    files = sorted((REPO_ROOT / "bench" / "results").glob("*.json"))
    if not files:
        return "_Not measured yet: run `make bench`._"
    from .bench import speed_markdown

    return speed_markdown([json.loads(f.read_text()) for f in files])


def architecture_block() -> str:
    from .models import build_model
    from .summary import describe

    return ("Computed from the code by `utils.summary.describe(build_model(\"final\"))` "
            "(RF: receptive field in input pixels; jump: input pixels between neighbouring outputs):\n\n"
            "```text\n" + describe(build_model("final")) + "\n```")


BLOCKS = {"steps": steps_block, "seeds": seeds_block, "speed": speed_block, "architecture": architecture_block}


def render(text: str) -> str:
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- BEGIN {name} -->\n).*?(<!-- END {name} -->)", re.S)
        if pattern.search(text):
            text = pattern.sub(lambda m: m.group(1) + make() + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = _Parser(prog="python -m utils.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    args = parser.parse_args(argv)
    old = README.read_text()
    new = render(old)
    if args.check:
        if new != old:
            print("README.md is out of date: run `python -m utils.report`", file=sys.stderr)
            return 1
        print("README.md is up to date")
        return 0
    atomic_write(README, lambda tmp: tmp.write_text(new))
    print("README.md regenerated" if new != old else "README.md already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
