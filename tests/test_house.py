"""The shape of the code a newcomer reads: imports run one way, the loop meets its records through one narrow
door, the records office stays at the size of its job, and the repository's root fits in one look."""
from __future__ import annotations

import ast
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
UTILS = ROOT / "utils"


def imported_modules(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that the file imports anywhere, inside functions too."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level == 1 or base == package or base.startswith(package + "."):
                base = base.removeprefix(package).lstrip(".")
                if base:
                    found.add(base.split(".")[0])
                else:  # from . import a, b: the names that are modules
                    found |= {alias.name for alias in node.names if (UTILS / f"{alias.name}.py").exists()}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith(package + ".")}
    return found


def import_graph() -> dict[str, set[str]]:
    return {p.stem: imported_modules(p, "utils") - {p.stem} for p in UTILS.glob("*.py") if p.stem != "__init__"}


def circle(graph: dict[str, set[str]]) -> list[str] | None:
    """An import circle of ``graph`` (module -> the modules it imports), as a path that ends where it began."""
    done, path = set(), []

    def visit(name):
        if name in path:
            return [*path[path.index(name):], name]
        if name in done:
            return None
        path.append(name)
        found = next(filter(None, (visit(dep) for dep in sorted(graph.get(name, ())))), None)
        path.pop()
        done.add(name)
        return found

    return next(filter(None, (visit(name) for name in sorted(graph))), None)


def test_imports_in_utils_run_one_way():
    """A module never imports one that imports it, directly or through others (function-level imports count):
    the graph has no circle, so every module stands on the ones it imports (utils/__init__.py lists the order)."""
    graph = import_graph()
    assert circle(graph) is None, " -> ".join(circle(graph))
    assert graph["settings"] <= {"fsutil"}, "the argparse helpers sit at the bottom"
    assert not {"train", "course", "exercises", "lessons", "predict"} & (graph["runs"] | graph["config"])


def test_the_circle_finder_finds_the_circles_of_before():
    """The two circles this house had: cli -> train -> cli (train ran cli.main), data -> cli -> data."""
    assert circle({"cli": {"train", "data"}, "train": {"cli"}, "data": set()}) == ["cli", "train", "cli"]
    assert circle({"data": {"cli"}, "cli": {"data"}}) == ["cli", "data", "cli"]
    assert circle({"a": {"b"}, "b": set()}) is None
    assert imported_modules(UTILS / "data.py", "utils") == {"fsutil", "settings"}, "lazy imports count"


def test_nothing_in_utils_imports_the_tools():
    for path in UTILS.glob("*.py"):
        assert "tools" not in imported_modules(path, "tools") and "import tools" not in path.read_text(), path


def test_the_loop_meets_its_records_through_one_door():
    """train() reads like the anchors' loops: open the run, then per epoch train, recalibrate, evaluate, save;
    everything it needs from utils.runs comes through at most four names."""
    tree = ast.parse((UTILS / "train.py").read_text())
    train = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    from_runs = {n.attr for n in ast.walk(train) if isinstance(n, ast.Attribute) and isinstance(n.value, ast.Name)
                 and n.value.id == "runs"}
    imported = {a.asname or a.name for n in tree.body if isinstance(n, ast.ImportFrom) and n.module == "runs"
                for a in n.names}
    used = {n.id for n in ast.walk(train) if isinstance(n, ast.Name)}
    assert len(from_runs | (imported & used)) <= 4, from_runs | (imported & used)


def test_the_records_office_is_the_size_of_its_job():
    assert len((UTILS / "runs.py").read_text().splitlines()) <= 400


def test_the_root_fits_in_one_look():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    entries = {line.split("/")[0] for line in tracked.splitlines() if not line.startswith(".")}
    assert len(entries) <= 15, sorted(entries)
    pins = [e for e in entries if e.startswith(("requirements", "constraints")) and e.endswith(".txt")]
    assert sorted(pins) == ["constraints.txt", "requirements.txt"], "the other environments' pins: requirements/"
    assert "notes" not in entries, "design notes about the course live in docs/"
    assert (ROOT / "tests" / "test_runs.py").is_file(), "the records office has its test file"
