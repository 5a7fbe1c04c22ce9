"""Execute the course notebooks in place, in course order, as "Restart Kernel and Run All" would.

    python -m tools.execute_notebooks              # make notebooks: full runs with each notebook's parameters
    python -m tools.execute_notebooks --quick      # MNIST_COURSE_QUICK=1: one epoch on 2,000 images each
    python -m tools.execute_notebooks notebooks/02_batchnorm.ipynb

Runs with nbclient (no papermill, so no injected-parameters cell), from notebooks/ as Jupyter does,
then stores the notebook as JupyterLab would save it: the python3 kernelspec with JupyterLab's
display name, the kernel's own language_info, nbformat 4.5 cell ids, no per-cell timings. A notebook
whose run raised an error or wrote to stderr is not stored: it goes to build/failed/ for a look, and
the command exits 1.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.corpus.words import generate_corpus_id

from utils.course import QUICK_ENV
from utils.fsutil import atomic_write
from utils.models import STEPS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
CELL_METADATA_DROPPED = ("execution", "papermill", "collapsed", "scrolled")


def normalise(nb) -> None:
    """Make ``nb`` what JupyterLab writes, so opening it does not mark it changed."""
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    language_info = nb.metadata.get("language_info")
    nb.metadata = nbformat.NotebookNode({"kernelspec": dict(KERNELSPEC)})
    if language_info:
        nb.metadata["language_info"] = language_info
    nb.nbformat, nb.nbformat_minor = 4, 5
    for cell in nb.cells:
        for key in CELL_METADATA_DROPPED:
            cell.metadata.pop(key, None)
        if cell.metadata.get("tags") == []:
            cell.metadata.pop("tags")
        if "id" not in cell:
            cell["id"] = generate_corpus_id()
        if "outputs" in cell:
            cell.outputs = merged_streams(cell.outputs)
    nbformat.validate(nb)


def merged_streams(outputs: list) -> list:
    """Consecutive prints to one stream as one output, as JupyterLab's output area stores them
    (the kernel sends a busy host's prints one message each)."""
    merged = []
    for out in outputs:
        if (out.output_type == "stream" and merged and merged[-1].output_type == "stream"
                and merged[-1].name == out.name):
            merged[-1].text += out.text
        else:
            merged.append(out)
    return merged


def problems(nb) -> list[str]:
    """Error and stderr outputs, which a stored notebook must not hold."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out.output_type == "error":
                found.append(f"cell {i}: {out.ename}: {out.evalue}")
            elif out.output_type == "stream" and out.name == "stderr":
                found.append(f"cell {i}: stderr: {out.text.strip()[:200]}")
    return found


def execute(path: Path, timeout: int | None) -> list[str]:
    """Run one notebook; store it in place if clean, else under build/failed/. Returns the problems."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=True,
                            resources={"metadata": {"path": str(NOTEBOOKS)}})
    client.execute()
    normalise(nb)
    found = problems(nb)
    target = path if not found else ROOT / "build" / "failed" / path.name
    atomic_write(target, lambda tmp: nbformat.write(nb, tmp))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.execute_notebooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", help="default: the five course notebooks, in order")
    parser.add_argument("--quick", action="store_true", help=f"set {QUICK_ENV}=1: one short epoch per notebook")
    parser.add_argument("--timeout", type=int, default=None, help="seconds per cell (default: no limit)")
    args = parser.parse_args(argv)
    paths = [Path(p).resolve() for p in args.notebooks] or [NOTEBOOKS / f"{stem}.ipynb" for stem in STEPS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        parser.error(f"no notebook at {', '.join(missing)}")
    if args.quick:
        os.environ[QUICK_ENV] = "1"  # the kernel inherits this process's environment
    else:
        os.environ.pop(QUICK_ENV, None)
    failed = 0
    for path in paths:
        start = time.perf_counter()
        print(f"executing {path.relative_to(ROOT)} ...", flush=True)
        found = execute(path, args.timeout)
        for line in found:
            print(f"  {line}")
        if found:
            failed += 1
            print(f"  not stored; the run is in build/failed/{path.name}")
        else:
            print(f"  stored ({path.stat().st_size / 1e3:.0f} kB, {time.perf_counter() - start:.0f} s)", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
