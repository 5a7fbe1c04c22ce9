"""Every teaching step on several seeds, with one shared recipe: which changes are real, which are noise.

    python -m tools.steps --seeds 1 2 3 4 5       # make steps

Each (step, seed) trains into runs/steps/<model>/seed<N> with the step's recipe (utils.config.recipe:
the Config defaults, augmentation only in step 5). A finished run there is reused and an unfinished
one resumed, so a killed sweep continues where it stopped; a run made with other settings is refused.
The summary goes to results/steps.json (written atomically), which the README's step table and
figure (python -m tools.report) and the notebooks' seed tables read.
"""
from __future__ import annotations

import re
import shlex
import sys
from pathlib import Path

from tools.parallel import add_jobs_argument, interrupted_in_one_line, jobs_for, run_all
from utils import REPO_ROOT, shown_path
from utils.config import DEVICES, Config, cpu_name, recipe, stored_settings, versions
from utils.course import RUN_FIELDS, STEPS_JSON, gap, spread
from utils.data import MNISTDataError
from utils.fsutil import atomic_write_json
from utils.models import STEPS
from utils.runs import CHECKPOINT
from utils.settings import (
    Parser,
    RunError,
    SettingsDiffer,
    distinct,
    non_negative_int,
    output_file,
    output_folder,
    positive_int,
    seed_int,
)
from utils.train import train

RUNS = REPO_ROOT / "runs" / "steps"
SUMMARY = STEPS_JSON  # the notebooks' seed tables read it there


def comparable(config: dict) -> dict:
    """A run's settings without the data folder, which differs between clones of the repository; a
    setting added after the run was saved counts with its default (which is what the run trained with)."""
    return {k: v for k, v in stored_settings(config).items() if k != "data_root"}


def threads_prefix(devices) -> str:
    """``OMP_NUM_THREADS=N `` when every run names the same thread count in its device string: the
    thread count changes the order of float sums, so a command that reproduces the numbers says it."""
    threads = {m.group(1) for d in devices if (m := re.search(r"(\d+) threads", d))}
    return f"OMP_NUM_THREADS={threads.pop()} " if len(threads) == 1 else ""


def run_one(model: str, seed: int, out: Path, *, epochs: int | None, train_subset: int, device: str,
            progress: bool, tag: bool = False) -> dict:
    """Train (or reuse, or resume) one step on one seed in ``out``; its metrics. ``tag``: start each line it
    prints with the step and seed (runs side by side print in turns)."""
    log = (lambda line: print(f"[{model} seed {seed}] {line}", flush=True)) if tag else print
    overrides = {"seed": seed, "device": device, "train_subset": train_subset}
    if epochs is not None:
        overrides["epochs"] = epochs
    cfg = recipe(model, **overrides)
    try:  # a run already there is continued (or reused) when it has these settings
        return train(cfg, out, resume=out if (out / CHECKPOINT).exists() else None, progress=progress, log=log)
    except SettingsDiffer as exc:
        raise RunError(f"{out} holds a run with other settings than {model}'s recipe now ({exc.difference}); "
                       "remove that folder (or all of runs/steps/) or pass --runs-dir") from None


def step_summary(notebook: str, runs: list[dict]) -> dict:
    """One step over its seeds: per-seed finals and curves, then mean/std/min/max of accuracy and gap."""
    rows = [{"seed": r["seed"],
             "final_test_accuracy": r["final_test_accuracy"],
             "final_train_accuracy": r["final_train_accuracy"],
             "final_clean_train_accuracy": r["final_clean_train_accuracy"],
             "gap": gap(r),
             "test_accuracy_curve": [h["test_accuracy"] for h in r["history"]],
             "clean_train_accuracy_curve": [h["clean_train_accuracy"] for h in r["history"]],
             "wall_seconds": r["wall_seconds"]} for r in runs]
    return {
        "notebook": notebook,
        "model": runs[0]["model"],
        "augment": runs[0]["config"]["augment"],
        "params": runs[0]["params"],
        "runs": rows,
        "test_accuracy": spread([r["final_test_accuracy"] for r in rows]),
        "gap": spread([r["gap"] for r in rows]),
    }


def summarize(results: dict[str, list[dict]], seeds: list[int], command: str, jobs: int = 1) -> dict:
    """results/steps.json: the shared settings once, then every step (in course order). ``jobs``: how many
    runs trained side by side, which their wall times depend on (their numbers do not)."""
    first = next(iter(results.values()))[0]
    shared = {k: v for k, v in comparable(first["config"]).items() if k not in RUN_FIELDS and k != "augment"}
    for runs in results.values():
        for r in runs:
            settings = comparable(r["config"])
            mine = {k: settings[k] for k in shared}
            if mine != shared:
                raise RunError(f"{r['model']} seed {r['seed']} trained with {mine}, not the shared {shared}")
    return {
        "config": {**shared, "train_subset": first["config"]["train_subset"]},
        "seeds": seeds,
        "device": first["device"],
        "cpu": cpu_name(),
        "versions": versions(),
        "command": command,
        "jobs": jobs,
        "steps": [step_summary(nb, results[nb]) for nb in STEPS if nb in results],
    }


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.steps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=seed_int, nargs="+", default=[1, 2, 3, 4, 5])
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS),
                        help="notebook stems to run (default: all five)")
    parser.add_argument("--epochs", type=positive_int, default=None, help="default: the recipe's (utils.config.Config)")
    parser.add_argument("--train-subset", type=non_negative_int, default=0,
                        help="first N training images only (0: all); for checks")
    parser.add_argument("--device", choices=DEVICES, default="auto")
    parser.add_argument("--runs-dir", default=str(RUNS))
    parser.add_argument("--summary", default=str(SUMMARY))
    parser.add_argument("--no-progress", action="store_true")
    add_jobs_argument(parser)
    args = parser.parse_args(argv)
    distinct(parser, args.seeds, "--seeds")
    if 0 < args.train_subset < Config.batch_size:
        parser.error(f"--train-subset {args.train_subset} is less than one batch of the recipe ({Config.batch_size} "
                     f"images); give {Config.batch_size} or more, or 0 for all the training images")
    output_folder(parser, args.runs_dir, "--runs-dir")  # now, not after hours of training
    output_file(parser, args.summary, "--summary")
    kept = f"every finished run and every saved epoch stay in {args.runs_dir}"
    with interrupted_in_one_line(parser.prog, f"{kept}; the same command continues from them"):
        summary = sweep(parser, args, argv)
    try:
        atomic_write_json(args.summary, summary)
    except OSError as exc:  # a full disk since the check above: the runs are kept, and the next call reuses them
        parser.error(f"--summary {args.summary}: cannot be written ({exc.strerror or exc}); {kept}: free some "
                     "space, then run the same command again (it trains nothing twice)")
    for step in summary["steps"]:
        acc, gp = step["test_accuracy"], step["gap"]
        print(f"{step['notebook']:<16} {step['params']:>6,} params  test {acc['mean']:.2f} ± {acc['std']:.2f}% "
              f"({acc['min']:.2f}-{acc['max']:.2f})  gap {gp['mean']:+.2f} ± {gp['std']:.2f}")
    print(f"summary written to {shown_path(args.summary)}")
    return 0


def sweep(parser, args, argv) -> dict:
    """Every (step, seed) of ``args`` trained (or reused, or resumed), summarised; a refusal is the parser's line."""
    try:
        notebooks = [nb for nb in STEPS if nb in args.steps]
        jobs = jobs_for(args.jobs, args.device, len(notebooks) * len(args.seeds))
        calls = [dict(model=STEPS[nb], seed=seed, out=Path(args.runs_dir) / STEPS[nb] / f"seed{seed}",
                      epochs=args.epochs, train_subset=args.train_subset, device=args.device,
                      progress=jobs == 1 and not args.no_progress and sys.stderr.isatty(), tag=jobs > 1)
                 for nb in notebooks for seed in args.seeds]
        runs = iter(run_all(run_one, calls, jobs))
        results: dict[str, list[dict]] = {nb: [next(runs) for _ in args.seeds] for nb in notebooks}
        devices = (r["device"] for runs in results.values() for r in runs)
        command = threads_prefix(devices) + shlex.join(["python", "-m", "tools.steps", *(argv or sys.argv[1:])])
        return summarize(results, args.seeds, command, jobs)
    except (ValueError, MNISTDataError, OSError) as exc:  # RunError is a ValueError
        parser.error(str(exc))


if __name__ == "__main__":
    sys.exit(main())
