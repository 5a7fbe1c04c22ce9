"""Small helpers shared by the test modules (imported as ``helpers``; pytest puts tests/ on sys.path)."""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import nbformat
import pytest
import torch

from utils import data
from utils.config import Config, recipe

ROOT = Path(__file__).resolve().parent.parent


def cli_env() -> dict:
    """Environment for the command-line subprocesses (one OpenMP thread, see one_cpu_thread)."""
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def without_timing(history: list[dict]) -> list[dict]:
    """A run's per-epoch history without the wall-clock fields, which legitimately differ."""
    return [{k: v for k, v in row.items() if k not in ("seconds", "wall", "wall_seconds")} for row in history]


def tiny_config(**overrides) -> Config:
    """A seconds-long run of the final recipe (augmentation, one-cycle): 1,024 training images,
    batch 128, CPU; the 10k test images are scored after every epoch."""
    base = dict(train_subset=1024, epochs=3, batch_size=128, device="cpu")
    return recipe(overrides.pop("model", "final"), **{**base, **overrides})


def small(**overrides) -> Config:
    """Two epochs on 256 images: a run of a few seconds that still writes everything a real run does."""
    return tiny_config(**{"train_subset": 256, "epochs": 2, **overrides})


def copy_of_mnist(root) -> Path:
    """A copy of the verified MNIST files under ``root`` (to break or lock without touching data/)."""
    raw = data.raw_dir(root)
    raw.mkdir(parents=True)
    for name in data.FILES:
        shutil.copyfile(data.raw_dir() / name, raw / name)
    return raw


def one_epoch_metrics(model: str, out) -> dict:
    """The metrics.json a one-epoch run of ``model`` would write into ``out`` (made by utils.runs, not trained)."""
    return metrics_of(model, out, [60.0])


def metrics_of(model: str, out, test_accuracies: list[float], seed: int = 1) -> dict:
    """The metrics.json a run of ``model`` with this test accuracy at each epoch would write into ``out``
    (made by utils.runs, not trained)."""
    from utils.runs import Run, make_metrics

    run = Run(recipe(model, epochs=len(test_accuracies), seed=seed), Path(out), torch.device("cpu"), None, False)
    run.history = [{"epoch": i, "train_loss": 1.0, "train_accuracy": 50.0 + i, "clean_train_loss": 0.5,
                    "clean_train_accuracy": 60.0 + i, "test_loss": 1.0, "test_accuracy": acc,
                    "lr": 0.1, "seconds": 1.0} for i, acc in enumerate(test_accuracies, 1)]
    run.params, run.architecture = 3, "arch"
    return make_metrics(run, 1.0)


def requirements(name: str) -> dict[str, str | None]:
    """name -> pinned version (None when unpinned) from a requirements file at the repository root."""
    reqs = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, _, version = line.partition("==")
            reqs[package.lower()] = version or None
    return reqs


def pins(name: str) -> dict[str, str]:
    """name -> version of every ``name==version`` line of a constraints file at the repository root."""
    found = {}
    for line in (ROOT / name).read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            package, version = line.strip().split("==")
            found[package.lower().replace("_", "-")] = version
    return found


def quiet(*_):
    """A log= that prints nothing."""


def no_work(*args, **kwargs):
    """Patched over the function that does a command's work, where its arguments must be refused first."""
    raise AssertionError("work started before the arguments were checked")


def stop_after_saving(patch, epochs: int, why: str = "Ctrl-C") -> None:
    """Make the next run raise KeyboardInterrupt right after it saved epoch ``epochs`` (what Ctrl-C, or a
    SIGKILL, then leaves on disk); ``patch``: a monkeypatch (context)."""
    from utils import runs

    real_save = runs.Run.save

    def save_then_stop(run, *args):
        real_save(run, *args)
        if len(run.history) == epochs:
            raise KeyboardInterrupt(f"{why} after epoch {epochs}")

    patch.setattr(runs.Run, "save", save_then_stop)


def one_error_line(capsys, main, argv, *words, status=2):
    """``main(argv)`` ends with exit status ``status`` and exactly one line on stderr, naming ``words``
    (an ``error:`` line for status 2)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    except KeyboardInterrupt as exc:  # else pytest would take it for the user's Ctrl-C and stop the session
        pytest.fail(f"KeyboardInterrupt escaped: {exc!r}")
    assert code == status, capsys.readouterr()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and (status != 2 or ": error: " in lines[0]), lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


# --------------------------------------------------------------------------------------------------
# Folders: a run copied to damage, files compared byte for byte, a checkpoint edited
# --------------------------------------------------------------------------------------------------

RUN_FILES = ["checkpoint.pt", "metrics.json"]  # all a run folder holds once its run ended: no lock, no temporary


def files_in(folder) -> list[str]:
    return sorted(p.name for p in Path(folder).iterdir())


def copy_run(finished, tmp_path, name="copy") -> Path:
    """A copy of the folder of ``finished`` (a tiny_run result: folder, metrics) in ``tmp_path``."""
    dest = tmp_path / name
    shutil.copytree(finished[0], dest)
    return dest


def snapshot(folder) -> dict[str, bytes]:
    """name -> bytes of every entry of ``folder`` (one level)."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def tree(root) -> dict[str, bytes]:
    """relative path -> bytes of every file under ``root``, at any depth."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(Path(root).rglob("*")) if p.is_file()}


def weights(run_dir) -> dict:
    return torch.load(Path(run_dir) / "checkpoint.pt", weights_only=True)["model_state"]


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def edited_checkpoint(run_dir, **changes) -> Path:
    """Rewrite ``run_dir``'s checkpoint with some entries changed (``None`` removes one)."""
    path = run_dir / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    torch.save(state, path)
    return path


# --------------------------------------------------------------------------------------------------
# Reading the committed notebooks (test_notebooks*.py)
# --------------------------------------------------------------------------------------------------

NOTEBOOKS = ROOT / "notebooks"
EPOCH_LINE = re.compile(  # (epoch, epochs, running train %, clean train %, test %, start LR) of an epoch line
    r"epoch\s+(\d+)/(\d+)\s+running train\s+([\d.]+)% \(loss \S+\)\s+clean train\s+([\d.]+)%\s+"
    r"test\s+([\d.]+)% \(loss \S+\)\s+start lr ([\d.]+)")


def read_notebook(stem: str):
    return nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4)


def copy_of(nb):
    """An independent copy of a notebook node, to edit without touching the shared one."""
    return nbformat.reads(nbformat.writes(nb), as_version=4)


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def tags(cell) -> list[str]:
    return cell.metadata.get("tags", [])


def stream_text(cell, name: str = "stdout") -> str:
    return "".join(o["text"] for o in cell.outputs if o.output_type == "stream" and o.name == name)


def stdout_of(nb) -> str:
    return "".join(stream_text(c) for c in code_cells(nb))


def markdown_outputs(cell) -> list[str]:
    return [o["data"]["text/markdown"] for o in cell.outputs if "text/markdown" in o.get("data", {})]


def cell_calling(nb, call: str):
    found = [c for c in code_cells(nb) if call in c.source]
    assert len(found) == 1, f"expected one cell calling {call}, found {len(found)}"
    return found[0]
