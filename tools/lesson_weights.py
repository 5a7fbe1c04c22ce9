"""Train and store the small networks the notebooks' concept sections look inside (results/lessons/).

    python -m tools.lesson_weights                     # every step (utils.lessons.LESSON_MODELS)
    python -m tools.lesson_weights --models gap

Each is its step's recipe (``utils.lessons.lesson_config``: seed 1, the last 10,000 training images
held out), trained into runs/lessons/<model> (a killed run is resumed, a finished one reused), then
stored as results/lessons/<model>.pt: the weights and the record of the run, a few tens of kB, read
with ``torch.load(weights_only=True)`` by ``utils.lessons.trained``. Re-run it after a change of
the recipe or of a network: the notebooks print a note when a stored network is stale.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

import torch

from tools.parallel import add_jobs_argument, interrupted_in_one_line, jobs_for, run_all
from utils import REPO_ROOT, shown_path
from utils.config import cpu_name
from utils.data import MNISTDataError
from utils.fsutil import atomic_write
from utils.lessons import LESSON_DIR, LESSON_MODELS, lesson_config, weights_path
from utils.runs import CHECKPOINT, read_checkpoint
from utils.settings import Parser, RunError, SettingsDiffer
from utils.train import train

RUNS = REPO_ROOT / "runs" / "lessons"


def train_lesson(model: str, cfg, runs_dir: Path, progress: bool) -> dict:
    """Train (or resume, or reuse) the lesson run of ``model`` (``cfg``: its lesson_config); its metrics and
    final weights."""
    out = runs_dir / model
    try:  # a run already there is continued (or reused) when it has these settings
        metrics = train(cfg, out, resume=out if (out / CHECKPOINT).exists() else None, progress=progress)
    except SettingsDiffer as exc:
        raise RunError(f"{shown_path(out)} holds a run with other settings than the lesson recipe of '{model}' now "
                       f"({exc.difference}); remove that folder") from None
    return {"metrics": metrics, "model_state": read_checkpoint(out)["model_state"]}


def record(model: str, run: dict, command: str) -> dict:
    """What results/lessons/<model>.pt holds: plain types and tensors only (weights_only loads it)."""
    m = run["metrics"]
    return {"model": model, "config": m["config"], "model_state": run["model_state"], "params": m["params"],
            "epochs": m["epochs"], "final_val_accuracy": m["final_val_accuracy"],
            "final_train_accuracy": m["final_train_accuracy"],
            "final_clean_train_accuracy": m["final_clean_train_accuracy"], "device": m["device"], "cpu": cpu_name(),
            "versions": m["versions"], "command": command}


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.lesson_weights", description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", choices=LESSON_MODELS, default=list(LESSON_MODELS))
    parser.add_argument("--runs-dir", default=str(RUNS))
    parser.add_argument("--out", default=str(LESSON_DIR), help="folder for the <model>.pt files")
    parser.add_argument("--no-progress", action="store_true")
    add_jobs_argument(parser, "networks")
    args = parser.parse_args(argv)
    progress = not args.no_progress and sys.stderr.isatty()
    command = shlex.join(["python", "-m", "tools.lesson_weights", *(argv if argv is not None else sys.argv[1:])])
    with interrupted_in_one_line(parser.prog, f"every saved epoch stays in {args.runs_dir}; the same command "
                                 "continues from them"):
        try:
            jobs = jobs_for(args.jobs, "auto", len(args.models))
            runs = run_all(train_lesson, [dict(model=m, cfg=lesson_config(m), runs_dir=Path(args.runs_dir),
                                               progress=progress and jobs == 1) for m in args.models], jobs)
        except (ValueError, MNISTDataError, OSError) as exc:  # RunError is a ValueError
            parser.error(str(exc))
    for model, run in zip(args.models, runs, strict=True):
        path = weights_path(model, args.out)
        atomic_write(path, lambda tmp, m=model, r=run: torch.save(record(m, r, command), tmp))
        print(f"{model}: validation accuracy {run['metrics']['final_val_accuracy']:.2f}% at epoch "
              f"{run['metrics']['epochs']}; stored {shown_path(path)} ({path.stat().st_size / 1e3:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
