"""Build the course as a static HTML book with Jupyter Book 1.x: ``make book`` (python -m tools.book, in .venv-book).

    .venv-book/bin/python -m tools.book           # build/book/_build/html/index.html
    .venv-book/bin/python -m tools.book --out DIR
    .venv-book/bin/python -m tools.book --student # the student edition's notebooks (make student first)

The pages (docs/book/_toc.yml): README.md as the landing page, the five notebooks as they are stored
(executed, with their outputs; the book never runs one), docs/reproducibility.md and
results/tuning.md. They are copied into ``OUT/src/`` with the repository's layout, and changed
in three ways so that the book stands alone:

* a relative link to a repository file that is not a page of the book (``utils/models.py``,
  ``LICENSE``, a folder) points at that file on GitHub, in the repository the Makefile names;
* the Colab badge image is the book's own copy (docs/book/_static/colab-badge.svg), and the README's CI
  badge is left out, so no page loads an image from elsewhere;
* the cells a reader of a page does not run are left out (tagged ``remove-cell`` for Jupyter Book): the
  set-up cell that fetches the course on Colab or finds it elsewhere, and the student edition's otter cell;
* nothing else: text, outputs and figures are the stored ones.

With ``--student`` the chapters are the student edition's notebooks (build/student/, ``make student``):
exercises left to do, no answer key, no stored outputs; links still resolve from notebooks/, where
their masters are.

Then ``jupyter-book build`` writes ``OUT/_build/html/`` with warnings as errors, so a link to a
missing page or a missing image stops the build. Imports nothing of the course (no torch).
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parent.parent
BOOK = ROOT / "docs" / "book"
OUT = ROOT / "build" / "book"
STUDENT, STUDENT_OUT = ROOT / "build" / "student", ROOT / "build" / "book-student"
JUPYTER_BOOK = Path(sys.executable).parent / "jupyter-book"
COLAB_BADGE = "https://colab.research.google.com/assets/colab-badge.svg"
CI_BADGE = "/actions/workflows/ci.yml/badge.svg"
FIGURES = "results/figures"
TARGET = re.compile(r"(\]\()([^)\s]+)(\))")  # the target of a markdown link or image, nested or not
MAKE_REPO = re.compile(r"^REPO[ \t]*\?=[ \t]*(\S+)", re.M)


class BookError(Exception):
    """One line saying what stops the book from being built."""


def pages(student: Path | None = None) -> dict[str, Path]:
    """Book path (no suffix) -> the repository file it is made from, in the order of docs/book/_toc.yml; the
    notebooks from the folder ``student`` instead, when it is given."""
    toc = yaml.safe_load((BOOK / "_toc.yml").read_text())
    names = [toc["root"]] + [chapter["file"] for chapter in toc["chapters"]]
    found = {}
    for name in names:
        if name == "index":
            found[name] = ROOT / "README.md"
            continue
        source = next((ROOT / f"{name}{ext}" for ext in (".ipynb", ".md") if (ROOT / f"{name}{ext}").is_file()), None)
        if source is None:
            raise BookError(f"docs/book/_toc.yml lists {name}, which is neither {name}.ipynb nor {name}.md")
        if student is not None and source.suffix == ".ipynb":
            source = student / source.name
            if not source.is_file():
                raise BookError(f"no {shown(source)}: run `make student` first")
        found[name] = source
    return found


def repo_slug() -> str:
    found = MAKE_REPO.findall((ROOT / "Makefile").read_text())
    if len(found) != 1:
        raise BookError(f"Makefile: expected one 'REPO ?= OWNER/NAME' line, found {len(found)}")
    return found[0]


def relink(text: str, source: Path, in_book: dict[Path, Path], slug: str) -> str:
    """``text`` of ``source`` with its links fit for the book (see the module docstring)."""
    def target(match: re.Match) -> str:
        link = match.group(2)
        if link == COLAB_BADGE:
            static = BOOK / "_static" / "colab-badge.svg"
            depth = len(in_book[source.resolve()].parent.parts)
            return match.group(1) + Path(*[".."] * depth, "_static", static.name).as_posix() + match.group(3)
        if re.match(r"^[a-z][a-z0-9+.-]*:|^#", link):  # a URL, or an anchor on the same page
            return match.group(0)
        path, _, anchor = link.partition("#")
        resolved = (source.parent / path).resolve()
        if resolved in in_book:  # a page of the book, where the book keeps it (the README is index.md)
            here = in_book[source.resolve()].parent
            relative = Path(*[".."] * len(here.parts), in_book[resolved]).as_posix()
            return match.group(1) + relative + (f"#{anchor}" if anchor else "") + match.group(3)
        if resolved.is_relative_to(ROOT / FIGURES):
            return match.group(0)
        if not resolved.exists() or not resolved.is_relative_to(ROOT):
            raise BookError(f"{shown(source)} links to {link}, which is not in the repository")
        kind = "tree" if resolved.is_dir() else "blob"
        url = f"https://github.com/{slug}/{kind}/main/{resolved.relative_to(ROOT).as_posix()}"
        return match.group(1) + url + (f"#{anchor}" if anchor else "") + match.group(3)

    lines = [line for line in text.splitlines(keepends=True) if CI_BADGE not in line]
    return TARGET.sub(target, "".join(lines))


def shown(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


MACHINERY = ("import google.colab", "# The exercises' checks (otter-grader)")  # the set-up cell, the otter cell


def assemble(src: Path, student: Path | None = None) -> None:
    """Copy the pages, the figures and the book's settings into ``src``, links made fit for the book (the
    notebooks from the student edition in ``student``, if given)."""
    if src.exists():
        shutil.rmtree(src)
    shutil.copytree(BOOK, src)
    shutil.copytree(ROOT / FIGURES, src / FIGURES)
    book_pages = pages(student)
    masters = {name: ROOT / (name + source.suffix) for name, source in book_pages.items()}  # where links start
    masters["index"] = book_pages["index"]
    in_book = {masters[name].resolve(): Path(name + source.suffix) for name, source in book_pages.items()}
    slug = repo_slug()
    for name, source in book_pages.items():
        target = src / (name + source.suffix)
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.suffix == ".ipynb":
            nb = nbformat.read(source, as_version=4)
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = relink(cell.source, masters[name], in_book, slug)
                elif cell.cell_type == "code" and any(mark in cell.source for mark in MACHINERY):
                    cell.metadata.setdefault("tags", []).append("remove-cell")
            nbformat.write(nb, target)
        else:
            target.write_text(relink(source.read_text(), source, in_book, slug))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.book", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"output folder (default: {shown(OUT)}, or {shown(STUDENT_OUT)} with --student)")
    parser.add_argument("--student", action="store_true",
                        help="chapters from the student edition in build/student/ (make student), for handing out")
    args = parser.parse_args(argv)
    if not JUPYTER_BOOK.is_file():
        parser.error(f"no jupyter-book beside {sys.executable}: run this with .venv-book/bin/python (make book)")
    out = (args.out or (STUDENT_OUT if args.student else OUT)).resolve()
    try:
        assemble(out / "src", STUDENT if args.student else None)
    except BookError as exc:
        parser.error(str(exc))
    shutil.rmtree(out / "_build", ignore_errors=True)  # nothing stale from an earlier build
    done = subprocess.run([str(JUPYTER_BOOK), "build", str(out / "src"), "--path-output", str(out), "-W",
                           "--keep-going", "-q"], capture_output=True, text=True)
    if done.returncode:
        print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
        parser.error(f"jupyter-book build failed (exit {done.returncode}); its warnings are above")
    print(f"book built: {shown(out / '_build' / 'html' / 'index.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
