"""Each committed notebook's stored training run is what today's code produces: the set-up line course.setup
prints for the step's recipe now (epochs, all 60,000 images, the model, augmentation; no quick mode), one
epoch line per recipe epoch with the one-cycle LR the scheduler gives today at each epoch's start, the
step's parameter count, the progress line in its final state, and a Result block that agrees with the log.
(The numbers the prose quotes are checked by tools/quoted_numbers.py, in test_notebooks.py.)
"""
from __future__ import annotations

import contextlib
import functools
import io
import re

import pytest
from helpers import EPOCH_LINE, cell_calling, copy_of, read_notebook, stream_text

from utils import GOAL, MAX_EPOCHS, MAX_PARAMS, course
from utils.data import TRAIN_SIZE
from utils.models import STEPS, build_model
from utils.summary import count_parameters
from utils.train import schedule, steps_per_epoch


@functools.lru_cache
def setup_line(stem: str) -> tuple:
    """(the first line course.setup prints for ``stem`` with its committed parameters, not in quick mode,
    and the Config it makes)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv(course.QUICK_ENV, raising=False)
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            run = course.setup(stem)
    return shown.getvalue().splitlines()[0], run.cfg


@functools.lru_cache
def start_lrs(stem: str) -> tuple[str, ...]:
    """The LR at each epoch's first step of the step's recipe, as the epoch lines print it."""
    cfg = setup_line(stem)[1]
    steps = steps_per_epoch(TRAIN_SIZE - cfg.holdout, cfg.batch_size)
    lrs = schedule(cfg, steps)["lr"]
    return tuple(f"{lrs[(epoch - 1) * steps]:.4f}" for epoch in range(1, cfg.epochs + 1))


def stored_run_problems(nb, stem: str) -> list[str]:
    """What is wrong with a notebook's stored training run against the code now (empty: nothing)."""
    line, cfg = setup_line(stem)
    model, bad = STEPS[stem], []
    setup = stream_text(cell_calling(nb, "course.setup("))
    if setup.splitlines()[:1] != [line]:
        bad.append(f"the set-up cell shows {setup.splitlines()[:1]}, the recipe now prints {line!r}")
    everything = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", ""))
                         for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    if "QUICK MODE" in everything:
        bad.append("a QUICK MODE run is stored")
    cell = cell_calling(nb, "train(run.cfg")
    out = stream_text(cell)
    params = count_parameters(build_model(model))
    if not out.startswith(f"model {model}: {params:,} parameters | "):
        bad.append(f"the training cell does not start with model {model}'s {params:,} parameters")
    log = EPOCH_LINE.findall(out)
    if [(int(e), int(n)) for e, n, *_ in log] != [(e, cfg.epochs) for e in range(1, cfg.epochs + 1)]:
        bad.append(f"the log has epochs {[f'{e}/{n}' for e, n, *_ in log]}, the recipe {cfg.epochs}")
    elif tuple(lr for *_, lr in log) != start_lrs(stem):
        bad.append(f"the start LRs {[lr for *_, lr in log]} are not today's schedule's {list(start_lrs(stem))}")
    displays = [o.data["text/plain"] for o in cell.outputs if o.output_type == "display_data"]
    if displays != [f"{model}: {cfg.epochs}/{cfg.epochs} epochs done"]:
        bad.append(f"the progress line is {displays}, not {cfg.epochs}/{cfg.epochs} epochs done")
    if stream_text(cell, "stderr"):
        bad.append("the training cell wrote to stderr")
    if not log:
        return bad + ["no epoch lines"]
    result = stream_text(cell_calling(nb, "course.result("))
    running, clean, final_test = (float(x) for x in log[-1][2:5])
    met = final_test >= GOAL and len(log) <= MAX_EPOCHS and params <= MAX_PARAMS
    for expected in (f"Parameters:            {params:,}\n",
                     f"Running train accuracy: {running:.2f}%",
                     f"Clean train accuracy:  {clean:.2f}%",
                     f"Final test accuracy:   {final_test:.2f}%  (epoch {len(log)}, the last one)\n",
                     f"Seed:                  {cfg.seed}\n",
                     f"parameters): {'met' if met else 'not met'}\n"):
        if expected not in result:
            bad.append(f"the Result block lacks {expected.strip()!r}, which its log says")
    printed_gap = re.search(r"Clean train - test gap: ([-+][\d.]+) points", result)
    if not printed_gap or abs(float(printed_gap.group(1)) - (clean - final_test)) > 0.011:  # the log's rounding
        bad.append(f"the Result block's gap is not clean train {clean:.2f}% - test {final_test:.2f}%")
    return bad


def test_the_stored_training_run_is_today_s_recipe_in_full(committed_notebook):
    stem, nb = committed_notebook
    assert stored_run_problems(nb, stem) == []


def shortened(nb, epochs: int, banner: bool):
    """A copy of ``nb`` as if its run had been cut to ``epochs`` epochs, optionally in quick mode: the
    set-up line, the log, the progress line and the Result edited to match, as a careless edit would."""
    nb = copy_of(nb)
    for cell in nb.cells:
        for o in getattr(cell, "outputs", []):
            if o.output_type == "stream":
                lines = [ln for ln in o.text.splitlines(keepends=True)
                         if not (m := EPOCH_LINE.search(ln)) or int(m.group(1)) <= epochs]
                text = "".join(lines)
                text = re.sub(r"epoch(\s+\d+)/\d+", rf"epoch\g<1>/{epochs}", text)
                text = re.sub(r"\d+ epochs on all", f"{epochs} epochs on all", text)
                text = re.sub(r"\(epoch \d+, the last one\)", f"(epoch {epochs}, the last one)", text)
                if banner and " epochs on all " in text:
                    text += f"QUICK MODE ({course.QUICK_ENV}=1): a short check run, not the course's result\n"
                o.text = text
            elif o.output_type == "display_data" and "epochs done" in o.data.get("text/plain", ""):
                o.data["text/plain"] = re.sub(r"\d+/\d+ epochs", f"{epochs}/{epochs} epochs", o.data["text/plain"])
    return nb


@pytest.mark.parametrize("banner", [False, True], ids=["shorter run", "shorter run in quick mode"])
def test_a_stored_notebook_edited_to_a_shorter_run_is_caught(banner):
    """A regression once missed: 02_batchnorm's stored run edited to 10 epochs (and a QUICK MODE
    banner) passed every notebook test."""
    nb = shortened(read_notebook("02_batchnorm"), 10, banner)
    found = " | ".join(stored_run_problems(nb, "02_batchnorm"))
    assert "10 epochs on all 60,000" in found and "epochs ['1/10'" in found
    assert ("QUICK MODE" in found) == banner


def test_a_result_that_disagrees_with_its_log_is_caught():
    nb = copy_of(read_notebook("02_batchnorm"))
    cell = cell_calling(nb, "course.result(")
    out = next(o for o in cell.outputs if o.output_type == "stream")
    out.text = re.sub(r"(Final test accuracy:\s+)[\d.]+%", r"\g<1>99.99%", out.text)
    assert any("Final test accuracy" in p for p in stored_run_problems(nb, "02_batchnorm"))
