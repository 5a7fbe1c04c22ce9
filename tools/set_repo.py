"""Point the course at a GitHub repository: ``python -m tools.set_repo alice/mnist-8k`` (or ``make repo REPO=...``).

The slug lives in one place, ``REPO ?= ...`` at the top of the Makefile; this rewrites it there and
everywhere it is copied for readers who never run make:
* README.md: the CI badge and its link, the Colab badges (any ``github.com/SLUG`` or
  ``colab.research.google.com/github/SLUG`` link whose SLUG is one of the course's current slugs);
* each notebook: its ``REPO = "SLUG"`` line (the bootstrap reads it on Colab to clone the course) and the
  Colab badge in its markdown.
Everything is read and checked first; then the files that change are replaced all together or not at all
(``utils.fsutil.atomic_write_all``). Other links to GitHub (another project's) are left alone.
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

from utils.fsutil import atomic_write_all
from utils.settings import Parser  # the standard library only: no torch

ROOT = Path(__file__).resolve().parent.parent
# What GitHub accepts, matched whole (fullmatch: ``$`` would let a pasted trailing newline through): the owner
# 1-39 letters, digits or single hyphens, not first or last; the name 1-100 letters, digits, '.', '_', '-'.
SLUG = re.compile(r"(?=[^/]{1,39}/)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*/[A-Za-z0-9._-]{1,100}")
MAKE_LINE = re.compile(r"^(REPO[ \t]*\?=[ \t]*)(\S*)[ \t]*$", re.M)
REPO_LINE = re.compile(r"""^(REPO\s*=\s*)(["'])([^"'\n]*)\2""", re.M)  # in a notebook's code cell
SLUG_PART = r"[A-Za-z0-9][A-Za-z0-9-]*/[A-Za-z0-9._-]*[A-Za-z0-9_-]"
# Links that name the course's own repository: the CI badge and the Colab badges.
ANCHORS = [re.compile(rf"github\.com/({SLUG_PART})/actions/workflows/"),
           re.compile(rf"colab\.research\.google\.com/github/({SLUG_PART})/blob/")]


class RepoError(Exception):
    """Bad input: one line saying what is wrong and what to do."""


def check_slug(slug: str) -> str:
    if slug.startswith(("https://", "http://", "git@")) or slug.endswith(".git"):
        raise RepoError(f"{slug!r}: give the repository as OWNER/NAME (e.g. alice/mnist-8k), not as a URL")
    if not SLUG.fullmatch(slug):
        raise RepoError(f"{slug!r} is not a GitHub OWNER/NAME: give the owner as 1-39 letters, digits or single "
                        "'-' (not first or last) and the name as 1-100 letters, digits, '.', '_' or '-', with no "
                        "spaces or line breaks, e.g. alice/mnist-8k")
    if slug.split("/")[1] in (".", ".."):
        raise RepoError(f"{slug!r}: GitHub does not allow a repository named '.' or '..'; give its real name, "
                        "e.g. alice/mnist-8k")
    return slug


def makefile_repo(text: str) -> str:
    found = MAKE_LINE.findall(text)
    if len(found) != 1:
        raise RepoError(f"Makefile: expected one 'REPO ?= OWNER/NAME' line, found {len(found)}")
    return found[0][1]


def linked_slugs(text: str) -> set[str]:
    """Slugs that the CI and Colab badges in ``text`` point at."""
    return {m.group(1) for anchor in ANCHORS for m in anchor.finditer(text)}


def retarget_links(text: str, old: set[str], new: str) -> str:
    """Rewrite github.com/OLD and colab.research.google.com/github/OLD links to NEW, for each OLD slug."""
    for slug in sorted(old - {new}):
        text = re.sub(rf"(github\.com/|colab\.research\.google\.com/github/){re.escape(slug)}(?=[/)\s\"'#]|$)",
                      lambda m: m.group(1) + new, text)
    return text


def notebook_repo_lines(nb) -> list[tuple[int, str]]:
    """(cell index, slug) of each ``REPO = "..."`` line in the notebook's code cells."""
    return [(i, m.group(3)) for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
            for m in REPO_LINE.finditer(cell.source)]


def retarget_notebook(nb, old: set[str], new: str) -> None:
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.source = REPO_LINE.sub(lambda m: f'{m.group(1)}"{new}"', cell.source)
        elif cell.cell_type == "markdown":
            cell.source = retarget_links(cell.source, old, new)


def plan(root: Path, new: str) -> dict[Path, bytes]:
    """The new bytes of every file that changes; raises RepoError before anything is written."""
    makefile, readme = root / "Makefile", root / "README.md"
    notebooks = sorted((root / "notebooks").glob("*.ipynb"))
    for path in (makefile, readme):
        if not path.is_file():
            raise RepoError(f"{path}: not found; run this from the repository (or pass --root)")
    if not notebooks:
        raise RepoError(f"{root / 'notebooks'}: no notebooks found; run this from the repository (or pass --root)")
    make_text, readme_text = makefile.read_text(), readme.read_text()
    current = makefile_repo(make_text)
    old = {current} | linked_slugs(readme_text)
    parsed = {}
    for path in notebooks:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception as e:  # noqa: BLE001 - any unreadable notebook stops everything, nothing written
            reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RepoError(f"{path}: not a readable notebook ({reason}); fix or restore it first") from e
        lines = notebook_repo_lines(nb)
        if len(lines) != 1:
            raise RepoError(f'{path}: expected one REPO = "OWNER/NAME" line in a code cell (the bootstrap), '
                            f"found {len(lines)}")
        old |= {lines[0][1]} | linked_slugs("\n".join(c.source for c in nb.cells if c.cell_type == "markdown"))
        parsed[path] = nb
    new_text = {makefile: MAKE_LINE.sub(lambda m: m.group(1) + new, make_text),
                readme: retarget_links(readme_text, old, new)}
    changes = {path: text.encode() for path, text in new_text.items() if text != path.read_text()}
    for path, nb in parsed.items():
        retarget_notebook(nb, old, new)
        data = nbformat.writes(nb).encode() + b"\n"  # as Jupyter writes it: indent 1, sorted keys, final newline
        if data != path.read_bytes():
            changes[path] = data
    return changes


def main(argv=None) -> int:
    parser = Parser(prog="python -m tools.set_repo", usage="%(prog)s OWNER/NAME [--root FOLDER]",
                    description=__doc__.split("\n\n")[0])
    parser.add_argument("slug", nargs="?", help="the GitHub repository as OWNER/NAME, e.g. alice/mnist-8k")
    parser.add_argument("--root", type=Path, default=ROOT, help="the repository folder (default: this one)")
    args, extra = parser.parse_known_args(argv)
    if args.slug is None and extra:  # argparse takes a slug that starts with '-' for an option: check it as a slug
        args.slug, extra = extra[0], extra[1:]
    if extra or args.slug is None:
        unknown = f"unrecognized arguments: {' '.join(extra)}; " if extra else ""
        parser.error(f"{unknown}give the repository as OWNER/NAME (and at most --root FOLDER), "
                     "e.g. python -m tools.set_repo alice/mnist-8k")
    try:
        changes = plan(args.root, check_slug(args.slug))
    except RepoError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    try:
        atomic_write_all(changes)
    except OSError as e:
        print(f"{parser.prog}: error: {e.filename or ''}: cannot be written ({e.strerror or e}); nothing was "
              "changed: make every file writable, then run this again", file=sys.stderr)
        return 2
    for path in changes:
        print(f"rewrote {path.relative_to(args.root)}")
    print(f"repository: {args.slug} ({len(changes)} file(s) changed)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
