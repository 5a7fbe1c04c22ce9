"""Check that every number a notebook's prose quotes is backed by data, so text and data cannot drift.

    python -m tools.quoted_numbers                      # the five course notebooks
    python -m tools.quoted_numbers notebooks/03_dropout.ipynb

The rules, small on purpose:

1. Checked cells: markdown cells whose first line is a heading that starts with ``## Target``,
   ``## Result`` or ``## Analysis`` (e.g. ``## Analysis: what BatchNorm bought``).
2. Not numbers: anything in inline code or a code block, link targets, digits glued to a letter or
   an underscore (``3x3``, ``Conv2d``, ``01_baseline``), and step / notebook references
   (``step 4``, ``steps 1-4``, ``notebook 05``).
3. Every other number (``7,816``, ``99.41%``, ``-0.12``, ``5``) must equal, once a value is written
   with as many decimals as the quote has, the size of a number printed in this notebook's stored
   outputs, or of a summary value in results/steps.json that the sentence can be about: the shared
   settings and seeds, and the row of this notebook's own step or of a step the sentence names
   (``step 3``, ``steps 1-4``, ``notebook 03``): its parameter count, each seed's final accuracies and
   gap, and their mean/std/min/max. Never another step's row, nor any step's per-epoch curves or wall
   times (hundreds of values that would back almost any 2-decimal quote by chance), nor another
   notebook's outputs. Commas group thousands; signs and ``%`` are ignored.

So an Analysis can quote its own run's Result, the seed table a code cell printed, or the 5-seed
statistics of the step it is about; a number typed from memory, left behind after a re-run, or taken
from another step's row in a sentence that does not name that step, fails.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
STEPS_JSON = ROOT / "results" / "steps.json"
SECTIONS = ("## Target", "## Result", "## Analysis")
NUMBER = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(\.\d+)?(?![\w])")
STEP_REFERENCE = re.compile(r"\b(?:steps?|notebooks?)\s+(\d+)(?:\s*(?:-|–|to|and)\s*(\d+))?", re.I)
NOT_NUMBERS = [
    re.compile(r"```.*?```", re.S),  # code blocks
    re.compile(r"`[^`]*`"),  # inline code
    re.compile(r"\]\([^)]*\)"),  # link targets
    STEP_REFERENCE,
]
# A sentence ends at . ! or ? before a space and a capital, a parenthesis or a bullet; a list item is one too.
SENTENCE_END = re.compile(r"\n\s*(?:[*-]|\d+\.)\s+|(?<=[.!?])\s+(?=[A-Z(*])")


def checked_cells(nb) -> list:
    """The markdown cells rule 1 selects."""
    return [c for c in nb.cells if c.cell_type == "markdown" and c.source.lstrip().startswith(SECTIONS)]


def without_code(text: str) -> str:
    """Prose without its code blocks, inline code and link targets (rule 2), step references kept."""
    for pattern in NOT_NUMBERS[:3]:
        text = pattern.sub(" ", text)
    return text


def quoted_numbers(text: str) -> list[str]:
    """The numbers in a piece of prose (rule 2), as written, without thousands commas."""
    text = without_code(text)
    for pattern in NOT_NUMBERS[3:]:
        text = pattern.sub(" ", text)
    return [(whole + (frac or "")).replace(",", "") for whole, frac in NUMBER.findall(text)]


def output_text(nb) -> str:
    """Everything the notebook's code cells printed or displayed as text."""
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                parts.append(out.get("text", ""))
            for mime in ("text/plain", "text/markdown"):
                value = out.get("data", {}).get(mime)
                if value:
                    parts.append(value if isinstance(value, str) else "".join(value))
    return "\n".join(parts)


def json_numbers(obj) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in json_numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in json_numbers(v)]
    return []


RUN_SUMMARY = ("seed", "final_test_accuracy", "final_train_accuracy", "gap")


def sentences(text: str) -> list[str]:
    """A checked cell's prose, cut into sentences and list items (the unit a step reference covers)."""
    return [part for part in SENTENCE_END.split(text) if part.strip()]


def named_steps(sentence: str) -> set[int]:
    """The step numbers a sentence names: ``step 3`` -> {3}, ``steps 1-4`` -> {1, 2, 3, 4}."""
    named = set()
    for first, last in STEP_REFERENCE.findall(sentence):
        named.update(range(int(first), int(last or first) + 1))
    return named


def step_number(notebook: str | None) -> int | None:
    """The step a notebook stem teaches (``03_dropout`` -> 3), or None for another name."""
    match = re.match(r"(\d+)_", notebook or "")
    return int(match.group(1)) if match else None


def shared_numbers(steps: dict | None) -> list[float]:
    """The values of results/steps.json every sentence may quote: the shared settings and the seeds."""
    return json_numbers([steps.get("config", {}), steps.get("seeds", [])]) if steps else []


def row_numbers(step: dict) -> list[float]:
    """The summary values of one step's row (rule 3): parameters, per-seed finals, mean/std/min/max."""
    picked = [step.get("params"), step.get("test_accuracy", {}), step.get("gap", {})]
    picked += [{k: run.get(k) for k in RUN_SUMMARY} for run in step.get("runs", [])]
    return json_numbers(picked)


def summary_numbers(steps: dict | None, step_numbers: set[int]) -> list[float]:
    """The values of results/steps.json that rule 3 accepts in a sentence about ``step_numbers``."""
    if not steps:
        return []
    rows = [s for s in steps.get("steps", []) if step_number(s.get("notebook")) in step_numbers]
    return shared_numbers(steps) + [x for row in rows for x in row_numbers(row)]


def printed_numbers(nb) -> list[float]:
    """Sizes of the numbers this notebook's stored outputs print."""
    return [float(whole.replace(",", "") + (frac or "")) for whole, frac in NUMBER.findall(output_text(nb))]


def backed(quote: str, known: list[float]) -> bool:
    """Rule 3: some known value, written with the quote's number of decimals, reads exactly as the quote."""
    decimals = len(quote.split(".")[1]) if "." in quote else 0
    return any(f"{value:.{decimals}f}" == quote for value in known)


def check_notebook(nb, steps: dict | None, name: str = "notebook") -> list[str]:
    """One line per quoted number that neither this notebook's stored outputs nor the results/steps.json
    row of a step its sentence is about (this notebook's own, ``name``, or one it names) backs."""
    printed = printed_numbers(nb)
    own = step_number(Path(name).stem)
    problems = []
    for cell in checked_cells(nb):
        heading = cell.source.lstrip().splitlines()[0]
        for sentence in sentences(without_code(cell.source)):
            about = named_steps(sentence) | ({own} if own is not None else set())
            known = printed + [abs(x) for x in summary_numbers(steps, about)]
            for quote in quoted_numbers(sentence):
                if not backed(quote, known):
                    problems.append(f"{name}, {heading!r}: {quote} is in no stored output of this notebook nor in "
                                    f"the results/steps.json row of a step this sentence is about")
    return problems


PROG = "python -m tools.quoted_numbers"
DAMAGED = (ValueError, KeyError, TypeError, AttributeError, IndexError)  # what a damaged file makes the reading raise


def reason(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


def read_notebook(path: Path):
    """The notebook at ``path``, validated as nbformat 4; a file cut short, not JSON, or not a notebook
    raises ValueError saying which."""
    try:
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        checked_cells(nb), output_text(nb)  # the parts this checker reads
    except (OSError, *DAMAGED, nbformat.ValidationError) as exc:
        raise ValueError(f"{path} is not a readable notebook ({reason(exc)}); restore it from git or save it "
                         "again from JupyterLab") from exc
    return nb


def read_steps() -> dict | None:
    if not STEPS_JSON.is_file():
        return None
    try:
        steps = json.loads(STEPS_JSON.read_text())
        summary_numbers(steps, {step_number(s.get("notebook")) for s in steps.get("steps", [])})  # every row
    except (OSError, *DAMAGED) as exc:
        raise ValueError(f"{STEPS_JSON} is not what `python -m tools.steps` writes ({reason(exc)}); write it "
                         "again with `make steps`, or restore it from git") from exc
    return steps


def main(argv: list[str] | None = None) -> int:
    args = argv if argv is not None else sys.argv[1:]
    paths = [Path(p) for p in args] or sorted((ROOT / "notebooks").glob("0*.ipynb"))
    problems = []
    try:
        steps = read_steps()
        for path in paths:
            if not path.is_file():
                raise ValueError(f"no notebook at {path}")
            problems += check_notebook(read_notebook(path), steps, path.name)
    except ValueError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    for line in problems:
        print(line)
    print(f"{len(problems)} unbacked number(s) in {len(paths)} notebook(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
