"""The browser test's detector (tests/e2e/detector.py) can fail: a page with an error, a stderr block, a
missing or broken image, an unlabelled output, a cell run twice or no Result is reported, one line each,
and a clean page is not. The pages are made up here, as the browser test reads them from JupyterLab."""
from __future__ import annotations

import pytest
from e2e.detector import problems

STDOUT, STDERR = "application/vnd.jupyter.stdout", "application/vnd.jupyter.stderr"


def page(**changes) -> dict:
    """A clean page of a three-cell notebook (set-up, training, Result), with ``changes`` applied."""
    cells = [
        {"source": "run = course.setup('01_baseline')", "prompt": "[1]:", "outputs": [(STDOUT, "01_baseline: ...")]},
        {"source": "metrics = train(run.cfg, run.dir)", "prompt": "[2]:",
         "outputs": [("text/plain", "baseline: 1/1 epochs done"), (STDOUT, "epoch 1/1 ..."), ("image/png", "")]},
        {"source": "course.result(metrics)", "prompt": "[3]:", "outputs": [(STDOUT, "Final test accuracy: 97.00%")]},
    ]
    shown = {"expected_cells": 3, "cells": cells, "images": [(True, 640)], "headings": ["Target", "Result"]}
    for key, edit in changes.items():
        edit(shown) if key == "edit" else shown.__setitem__(key, edit)
    return shown


def with_output(i: int, output: tuple):
    return lambda shown: shown["cells"][i]["outputs"].append(output)


def test_a_clean_page_has_no_problems():
    assert problems(**page()) == []


@pytest.mark.parametrize("changes, words", [
    (dict(edit=with_output(0, (STDERR, "Traceback (most recent call last):\nValueError: boom"))),
     "code cell 1 (\"run = course.setup"),
    (dict(edit=with_output(1, (STDERR, "Traceback (most recent call last):\nValueError: boom"))), "error output"),
    (dict(edit=with_output(1, (STDERR, " 67%|██████▋| 62/92"))), "stderr output: '67%"),
    (dict(edit=with_output(1, (STDERR, "\n"))), "a blank block"),
    (dict(edit=with_output(1, ("", "RuntimeError: no mime type on this node"))), "without a data-mime-type"),
    (dict(images=[]), "no image in any output"),
    (dict(images=[(True, 640), (False, 0)]), "1 of 2 images did not load"),
    (dict(headings=["Target"]), "no '## Result' heading"),
    (dict(edit=lambda s: s["cells"][2].__setitem__("outputs", [])), "print one 'Final test accuracy:' block"),
    (dict(edit=lambda s: s["cells"][1].__setitem__("prompt", "[4]:")), "not every code cell ran once, in order"),
    (dict(expected_cells=4), "3 code cells on the page, 4 in the file"),
    (dict(edit=lambda s: s["cells"][1].__setitem__("outputs", [(STDOUT, "epoch 1/1 ...")])), "no progress display"),
    (dict(edit=lambda s: s["cells"][1].update(source="train(cfg, out, progress=False)", outputs=[])),
     "turns the progress display off and prints nothing"),
], ids=["error in cell 1", "error", "stderr", "blank stderr", "no mime type", "no image", "broken image",
        "no Result heading", "no Result block", "run out of order", "cell missing", "no progress line",
        "silent short run"])
def test_each_problem_is_reported_in_one_line(changes, words):
    found = problems(**page(**changes))
    assert len(found) == 1 and words in found[0], found


def test_a_short_run_that_prints_its_own_lines_needs_no_progress_display():
    """A short experiment (progress=False, or a progress hook that records) reports by print()."""
    shown = page()
    shown["cells"][1].update(source="train(cfg, out, progress=False)", outputs=[(STDOUT, "by hand  epoch 1: 97.0%")])
    assert problems(**shown) == []
