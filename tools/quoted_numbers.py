"""Check that every number a notebook's prose quotes is backed by data, so text and data cannot drift.

    python -m tools.quoted_numbers                      # the five course notebooks
    python -m tools.quoted_numbers notebooks/03_dropout.ipynb

The rules, small on purpose:

1. Checked cells: markdown cells whose first line is a heading that starts with ``## Target``,
   ``## Result``, ``## Analysis`` (e.g. ``## Analysis: what BatchNorm bought``) or ``## Answer key`` (the
   questionnaire's answers, which quote the notebook's measurements).
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

4. A number must also be the statistic its words name. Next to "mean" or "average", or followed by
   ``±``, it must be a mean; right after ``±``, a standard deviation; in the range of parentheses after a
   ``±``, a minimum or maximum; next to "epoch N", a value of epoch N; next to "final" or "last epoch", a
   value of the final epoch; next to "seed N", a value of seed N. Those are the values printed that way
   (an epoch line of epoch N, a Result line of the final epoch, a seed table's ``mean ± std (min-max)``,
   a line about "the mean") or stored that way in results/steps.json (a step's mean, std, min and max,
   and each seed's final values).

So an Analysis can quote its own run's Result, the seed table a code cell printed, or the 5-seed
statistics of the step it is about; a number typed from memory, left behind after a re-run, taken
from another step's row in a sentence that does not name that step, or called a mean when it is one
seed's or one epoch's, fails.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parent.parent
STEPS_JSON = ROOT / "results" / "steps.json"
SECTIONS = ("## Target", "## Result", "## Analysis", "## Answer key")
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
    return [quote for quote, _, _ in quoted_spans(without_code(text))]


def quoted_spans(text: str) -> list[tuple[str, int, int]]:
    """(number, start, end) of each number in prose without code (rule 2): step references blanked out, so
    that the positions are those of ``text``."""
    for pattern in NOT_NUMBERS[3:]:
        text = pattern.sub(lambda m: " " * len(m.group(0)), text)
    return [((m.group(1) + (m.group(2) or "")).replace(",", ""), m.start(), m.end()) for m in NUMBER.finditer(text)]


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


RUN_SUMMARY = ("final_test_accuracy", "final_train_accuracy", "final_clean_train_accuracy", "gap")
EPOCH_LINE = re.compile(r"^\s*epoch\s+(\d+)/(\d+)\b")
STATISTIC_WORDS = [(re.compile(r"\b(?:mean|means|average)\b", re.I), "mean"),
                   (re.compile(r"\bfinal\b|\blast epoch\b", re.I), "final")]
NAMED = re.compile(r"\b(epoch|seed)\s+(\d+)\b(?![.,]\d)", re.I)  # "epoch 3", not "epoch 99.87%"


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


def row_facts(step: dict) -> list[tuple[float, frozenset]]:
    """The summary values of one step's row (rule 3), each with the statistic it is (rule 4): parameters,
    mean/std/min/max of the accuracy and the gap, and each seed's final values."""
    facts = [(float(step["params"]), frozenset())] if "params" in step else []
    for spread in (step.get("test_accuracy", {}), step.get("gap", {})):
        facts += [(float(v), frozenset({k})) for k, v in spread.items() if k in ("mean", "std", "min", "max")]
    for run in step.get("runs", []):
        facts += [(float(run["seed"]), frozenset())]
        facts += [(float(run[k]), frozenset({"final", f"seed {run['seed']}"})) for k in RUN_SUMMARY if k in run]
    return facts


def summary_facts(steps: dict | None, step_numbers: set[int]) -> list[tuple[float, frozenset]]:
    """The values of results/steps.json that rules 3 and 4 accept in a sentence about ``step_numbers``."""
    if not steps:
        return []
    rows = [s for s in steps.get("steps", []) if step_number(s.get("notebook")) in step_numbers]
    return [(x, frozenset()) for x in shared_numbers(steps)] + [f for row in rows for f in row_facts(row)]


def number_value(whole: str, frac: str) -> float:
    return float(whole.replace(",", "") + (frac or ""))


def line_facts(line: str) -> list[tuple[float, frozenset]]:
    """The numbers of one printed line, each with the statistic the line prints it as (rule 4)."""
    epoch = EPOCH_LINE.match(line)
    tags = {f"epoch {epoch.group(1)}"} | ({"final"} if epoch.group(1) == epoch.group(2) else set()) if epoch else set()
    if re.match(r"\s*(final|clean train accuracy|running train accuracy)\b", line, re.I):
        tags.add("final")
    if re.search(r"\bthe mean\b|\bthe means\b", line, re.I):
        tags.add("mean")
    seed = re.match(r"\s*seed (\d+)\b", line, re.I)
    if seed:
        tags.add(f"seed {seed.group(1)}")
    facts = []
    for match in NUMBER.finditer(line):
        own = set(tags)
        after, before = line[match.end():].lstrip(" %"), line[:match.start()].rstrip()
        if after.startswith("±"):
            own.add("mean")
        if before.endswith("±"):
            own.add("std")
        if "±" in before and before.count("(") > before.count(")"):
            own |= {"min", "max"}
        facts.append((number_value(*match.groups()), frozenset(own)))
    return facts


def printed_facts(nb) -> list[tuple[float, frozenset]]:
    """The numbers this notebook's stored outputs print, each with the statistic it is printed as."""
    return [f for line in output_text(nb).splitlines() for f in line_facts(line)]


def printed_numbers(nb) -> list[float]:
    """Sizes of the numbers this notebook's stored outputs print."""
    return [value for value, _ in printed_facts(nb)]


def required(sentence: str, start: int, end: int) -> frozenset:
    """The statistic the words around the number at ``sentence[start:end]`` name (rule 4): words within six
    before it or two after it, in the same clause (no comma, semicolon, colon or bracket between) and with no
    other number between."""
    before = re.split(r"\d|[,;:()]", sentence[:start])[-1].split()[-6:]
    after = re.split(r"\d|[,;:()]", sentence[end:].lstrip(" %*"))[0].split()[:2]
    near = " ".join([*before, "#", *after])
    need = {tag for pattern, tag in STATISTIC_WORDS if pattern.search(near)}
    clause_start = max(sentence.rfind(c, 0, start) for c in ",;:()") + 1
    clause_end = min([i for i in (sentence.find(c, end) for c in ",;:()") if i >= 0] or [len(sentence)])
    need |= {f"{m.group(1).lower()} {m.group(2)}" for m in NAMED.finditer(sentence, clause_start, clause_end)
             if not m.start(2) <= start < m.end(2)}  # "epoch 1", "seed 3" in the clause, not the number itself
    if sentence[end:].lstrip(" %*").startswith("±"):
        need.add("mean")
    opened, plus_minus = sentence[:start].rfind("("), sentence[:start].rfind("±")
    if sentence[:start].rstrip(" *").endswith("±"):
        need = {"std"}
    elif plus_minus >= 0 and opened > plus_minus and ")" not in sentence[opened:start]:  # "± s (a–b)": a range
        if re.match(r"%?\s*(?:[-–]|to)\s*[-+]?\d", sentence[end:]):
            need = {"min"}
        elif re.search(r"\d%?\s*(?:[-–]|to)\s*[-+]?$", sentence[:start]):
            need = {"max"}
    return frozenset(need)


def backed(quote: str, known, need: frozenset = frozenset()) -> bool:
    """Rule 3 (and 4): some known value, written with the quote's number of decimals, reads exactly as the
    quote, and is the statistic ``need`` names (``known``: values, or (value, statistics) pairs)."""
    decimals = len(quote.split(".")[1]) if "." in quote else 0
    facts = [k if isinstance(k, tuple) else (k, frozenset()) for k in known]
    return any(f"{value:.{decimals}f}" == quote and (need <= tags or statistic_free(need, tags))
               for value, tags in facts)


def statistic_free(need: frozenset, tags: frozenset) -> bool:
    """A min or max may be any of the named range's ends (a range's ends are also some seed's finals)."""
    return bool(need) and need <= {"min", "max"} and bool(tags & {"min", "max", "final"})


def check_notebook(nb, steps: dict | None, name: str = "notebook") -> list[str]:
    """One line per quoted number that neither this notebook's stored outputs nor the results/steps.json
    row of a step its sentence is about (this notebook's own, ``name``, or one it names) backs as the
    statistic its words name."""
    printed = printed_facts(nb)
    own = step_number(Path(name).stem)
    problems = []
    for cell in checked_cells(nb):
        heading = cell.source.lstrip().splitlines()[0]
        for sentence in sentences(without_code(cell.source)):
            about = named_steps(sentence) | ({own} if own is not None else set())
            known = printed + [(abs(v), tags) for v, tags in summary_facts(steps, about)]
            for quote, start, end in quoted_spans(sentence):
                need = required(sentence, start, end)
                if not backed(quote, known, need):
                    what = f" as {' and '.join(sorted(need))}" if need else ""
                    problems.append(f"{name}, {heading!r}: {quote} is in no stored output of this notebook nor in "
                                    f"the results/steps.json row of a step this sentence is about{what}")
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
        summary_facts(steps, {step_number(s.get("notebook")) for s in steps.get("steps", [])})  # every row
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
