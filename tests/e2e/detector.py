"""What the browser test judges a notebook's page by, apart from the browser: the code cells as the page
shows them (source, prompt, outputs as (data-mime-type, text)), its images as (loaded, natural width), its
## headings. One line per problem a student would see; an output the page does not label with a
data-mime-type is a problem too, since nothing could tell an error or stderr block from a plain one.
(Plain Python, no Playwright: tests/test_e2e_detector.py runs it in the fast suite.)"""
from __future__ import annotations

import re

PROGRESS = re.compile(r"epoch\s+\d+/\d+|\d+/\d+ epochs done")  # live line, or its final state
TRAIN_CALL = re.compile(r"(?<![\w.])train\(")
OWN_REPORT = re.compile(r"progress\s*=\s*(False|lambda)\b")  # a short experiment that prints its own lines
ERROR_LINE = re.compile(r"^\w*(Error|Exception)\b|Traceback \(most recent call last\)", re.M)
STDERR = "application/vnd.jupyter.stderr"


def first_line_of(cell: dict) -> str:
    lines = cell["source"].strip().splitlines()
    return lines[0][:60] if lines else ""


def problems(expected_cells: int, cells: list[dict], images: list, headings: list[str]) -> list[str]:
    """What is wrong with a page that shows ``cells`` (``expected_cells`` code cells in the file)."""
    found = []
    if len(cells) != expected_cells:
        found.append(f"{len(cells)} code cells on the page, {expected_cells} in the file")
    counts = [c["prompt"] for c in cells]
    if counts != [f"[{i}]:" for i in range(1, len(cells) + 1)]:
        found.append(f"not every code cell ran once, in order: prompts {counts}")
    for i, cell in enumerate(cells, 1):
        first_line = first_line_of(cell)
        for mime, text in cell["outputs"]:
            if not mime:
                found.append(f"code cell {i} ({first_line!r}) shows an output without a data-mime-type, which "
                             f"cannot be told from an error or stderr: {text.strip()[-300:]!r}")
            elif mime == STDERR:
                kind = "error" if ERROR_LINE.search(text) else "stderr"
                blank = "a blank block (e.g. a text progress bar that erased itself)"
                shown = repr(text.strip()[-300:]) if text.strip() else blank
                found.append(f"code cell {i} ({first_line!r}) shows {kind} output: {shown}")
    # images in outputs (the plots); the Colab badge in the first markdown cell is remote and never fetched
    if not images:
        found.append("no image in any output (the plots did not render)")
    broken = [i for i, (complete, width) in enumerate(images) if not complete or width == 0]
    if broken:
        found.append(f"{len(broken)} of {len(images)} images did not load")
    if not any(h.strip().startswith("Result") for h in headings):
        found.append(f"no '## Result' heading among {headings}")
    results = [text for c in cells if "course.result(" in c["source"] for mime, text in c["outputs"]
               if mime == "application/vnd.jupyter.stdout" and "Final test accuracy:" in text]
    if len(results) != 1:
        found.append(f"expected the Result cell (course.result) to print one 'Final test accuracy:' block, "
                     f"found {len(results)}")
    training = [c for c in cells if TRAIN_CALL.search(c["source"])]
    if not training:
        found.append("no code cell calls train(")
    for cell in training:
        if OWN_REPORT.search(cell["source"]):
            if not any(mime == "application/vnd.jupyter.stdout" and text.strip() for mime, text in cell["outputs"]):
                found.append(f"training cell ({first_line_of(cell)!r}) turns the progress display off and prints "
                             "nothing, so a student cannot tell it is working")
            continue
        live = [text for mime, text in cell["outputs"] if mime == "text/plain" and PROGRESS.search(text)]
        if not live:
            shown = [(mime, text.strip()[:80]) for mime, text in cell["outputs"]]
            found.append(f"training cell ({first_line_of(cell)!r}) shows no progress display "
                         f"(a text/plain 'epoch N/M' line from a display handle); its outputs: {shown}")
    return found
