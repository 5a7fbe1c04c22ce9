"""The course as a student meets it: each notebook opened in JupyterLab in a real (headless) browser,
then Kernel > "Restart Kernel and Run All Cells…" in quick mode.

Checks, per notebook, everything a student would notice and nbval/papermill cannot see:
* opening it does not mark it changed (stored metadata = what JupyterLab writes), before anything runs;
* after the run: every code cell ran once, in order; no error and no stderr output (a tqdm bar on
  stderr shows as pink blocks); every image loaded; the Result section and the block course.result prints are there;
* the cell that trains the step's network shows a progress display: a plain-text line `epoch N/M`
  written through an IPython display handle (rendered as text/plain, unlike print() which renders as
  stdout), which ends as `N/M epochs done`; a short experiment that turns it off (progress=False, or
  a hook that records) prints its own lines instead.
A full-height screenshot of each notebook lands in build/e2e/NAME.png, pass or fail.
Run with `make e2e` (installs Chromium and Playwright first); not part of `make test`.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import nbformat
from detector import problems
from playwright.sync_api import TimeoutError as PlaywrightTimeout

ROOT = Path(__file__).resolve().parents[2]
SHOTS = ROOT / "build" / "e2e"
PANEL = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook on show (hidden panels keep their DOM)
INDICATOR = f'{PANEL} .jp-Notebook-ExecutionIndicator'
OPEN_S, START_S, RUN_S = 90, 90, 300  # page + kernel ready; run begins; whole quick run of one notebook
SETTLE_S = 2.0  # how long the kernel must stay idle (and the tab clean) before a verdict
LOCAL = re.compile(r"^(?!(http|ws)://127\.0\.0\.1[:/])")  # every URL except our server's


def prompts(page) -> list[str]:
    return page.eval_on_selector_all(f"{PANEL} .jp-CodeCell .jp-InputArea-prompt", "els => els.map(e => e.innerText)")


def settled(page, seconds: float = SETTLE_S) -> None:
    """Wait until the kernel is idle with no cell queued or running, and stays so for ``seconds``."""
    deadline = time.monotonic() + RUN_S
    calm_since = None
    while time.monotonic() < deadline:
        idle = page.get_attribute(INDICATOR, "data-status") == "idle"
        if idle and "[*]:" not in prompts(page):
            calm_since = calm_since or time.monotonic()
            if time.monotonic() - calm_since >= seconds:
                return
        else:
            calm_since = None
        time.sleep(0.25)
    raise AssertionError(f"still running after {RUN_S} s; prompts {prompts(page)}")


def dismiss_news_toast(page) -> None:
    """JupyterLab asks once whether to fetch Jupyter news: answer No, so it covers nothing."""
    no = page.locator('.Toastify__toast button:text-is("No")')
    try:
        no.first.click(timeout=5_000)
    except PlaywrightTimeout:  # no toast this time: nothing to dismiss
        pass


def dirty_tabs(page) -> list[str]:
    return page.eval_on_selector_all(".lm-TabBar-tab.jp-mod-dirty", "els => els.map(e => e.innerText.trim())")


def restart_and_run_all(page) -> None:
    """Kernel menu > Restart Kernel and Run All Cells…, accept the dialog, wait for the queue to start."""
    page.click('.lm-MenuBar-itemLabel:text-is("Kernel")')
    page.click('.lm-Menu-itemLabel:text-is("Restart Kernel and Run All Cells…")')
    page.click(".jp-Dialog .jp-mod-accept", timeout=10_000)
    page.wait_for_function(
        """panel => [...document.querySelectorAll(panel + ' .jp-CodeCell .jp-InputArea-prompt')]
                    .some(e => e.innerText === '[*]:')""", arg=PANEL, timeout=START_S * 1000)


def show_everything(page) -> None:
    """Grow the viewport to the notebook's full height and scroll it to the top, so that every cell is
    attached and laid out (JupyterLab only renders the cells near the view) and the screenshot holds the
    whole notebook. The notebook scrolls inside .jp-WindowedPanel-outer; its content is the -inner part
    (the outer one also holds a viewport's height of blank space to scroll past the end)."""
    for _ in range(6):
        content, view = page.evaluate(f"""() => [
            document.querySelector('{PANEL} .jp-WindowedPanel-inner').offsetHeight,
            document.querySelector('{PANEL} .jp-WindowedPanel-outer').clientHeight]""")
        height = page.viewport_size["height"]
        wanted = min(height - view + content + 40, 30_000)
        if wanted <= height:
            break
        page.set_viewport_size({"width": page.viewport_size["width"], "height": wanted})
        page.wait_for_timeout(700)  # cells attach and take their real heights, which may grow the content
    page.evaluate(f"document.querySelector('{PANEL} .jp-WindowedPanel-outer').scrollTop = 0")
    page.wait_for_timeout(500)


def cell_reports(page) -> list[dict]:
    """Per code cell, what it shows: source, prompt, outputs as (mime type, text)."""
    return page.eval_on_selector_all(f"{PANEL} .jp-CodeCell", """cells => cells.map(cell => ({
        source: cell.querySelector('.jp-InputArea-editor').innerText,
        prompt: cell.querySelector('.jp-InputArea-prompt').innerText,
        outputs: [...cell.querySelectorAll('.jp-OutputArea-output')].map(o => [
            o.getAttribute('data-mime-type') || '', o.innerText]),
    }))""")


def problems_after_run(page, notebook: Path) -> list[str]:
    """What a student would see go wrong, one line each (empty: all good): what the page shows, judged by
    detector.problems (tests/test_e2e_detector.py shows it reports each kind of problem)."""
    stored = nbformat.read(notebook, as_version=4)
    images = page.eval_on_selector_all(f"{PANEL} .jp-OutputArea-output img",
                                       "els => els.map(e => [e.complete, e.naturalWidth])")
    headings = page.eval_on_selector_all(f"{PANEL} .jp-MarkdownCell h2", "els => els.map(e => e.innerText)")
    return problems(sum(c.cell_type == "code" for c in stored.cells), cell_reports(page), images, headings)


def test_notebook_in_jupyterlab(notebook, lab, browser):
    SHOTS.mkdir(parents=True, exist_ok=True)
    shot = SHOTS / f"{notebook.stem}.png"
    shot.unlink(missing_ok=True)  # nothing stale: a screenshot here is from this run
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.route(LOCAL, lambda route: route.abort())  # offline, as here: e.g. the Colab badge is not fetched
    problems = []
    try:
        page.goto(f"{lab.url}/lab/tree/notebooks/{notebook.name}?reset&token={lab.token}")
        try:
            page.wait_for_selector(f'{INDICATOR}[data-status="idle"]', timeout=OPEN_S * 1000)
        except PlaywrightTimeout:
            raise AssertionError(f"{notebook.name}: no idle kernel {OPEN_S} s after opening it; "
                                 f"JupyterLab's log ends with:\n{lab.log.read_text()[-2000:]}") from None
        dismiss_news_toast(page)
        settled(page)  # JupyterLab marks a file changed about a second after opening it, if it will
        if dirty_tabs(page):
            stored = nbformat.read(notebook, as_version=4).metadata.get("kernelspec", {}).get("display_name")
            problems.append(f"opening it marks it changed before anything ran (tabs {dirty_tabs(page)}): "
                            "its stored metadata differs from what JupyterLab writes, e.g. kernelspec.display_name "
                            f"{stored!r}")
        restart_and_run_all(page)
        settled(page)
        show_everything(page)
        problems += problems_after_run(page, notebook)
    finally:
        try:
            show_everything(page)
            page.screenshot(path=str(shot), full_page=True)
        finally:
            page.close()
            lab.shut_down_kernels()
    where = f"{notebook.name} in JupyterLab (screenshot {shot.relative_to(ROOT)})"
    assert not problems, where + ":\n  " + "\n  ".join(problems)

