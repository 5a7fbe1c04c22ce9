"""The default recipe on several seeds: one honest number per seed, at the final epoch.

    python -m tools.seeds --seeds 1 2 3 4 5 6 7 8 9 10

Each seed trains into runs/steps/final/seed<N>, the folder tools.steps uses for the final step, so
the two sweeps share those runs (an unfinished run there is resumed, a finished one is reused). The
summary goes to results/seeds.json, which the README table is generated from. With --device cuda
the runs go to runs/steps/final-cuda and the summary to results/seeds-cuda.json: the README shows
both tables, and the goal is judged on the CPU's.
"""
from __future__ import annotations

import sys
from pathlib import Path

from tools.parallel import add_jobs_argument, interrupted_in_one_line, jobs_for, run_all
from tools.steps import RUNS, run_one, threads_prefix
from utils import GOAL, REPO_ROOT
from utils.config import DEVICES, versions
from utils.course import spread
from utils.data import MNISTDataError
from utils.fsutil import atomic_write_json
from utils.settings import Parser, distinct, output_file, output_folder, seed_int

FINAL_RUNS = RUNS / "final"
SUMMARY = REPO_ROOT / "results" / "seeds.json"
CUDA_RUNS = RUNS / "final-cuda"
CUDA_SUMMARY = REPO_ROOT / "results" / "seeds-cuda.json"


def default_paths(device: str) -> tuple[Path, Path]:
    """Run folder and summary for ``--device``: a GPU's seeds get their own, so they never mix with,
    or replace, the CPU seeds that the goal is judged on."""
    return (CUDA_RUNS, CUDA_SUMMARY) if device == "cuda" else (FINAL_RUNS, SUMMARY)


HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "clean_train_loss", "clean_train_accuracy", "test_loss",
                "test_accuracy", "lr", "seconds")


def summarize(runs: list[dict], jobs: int = 1) -> dict:
    """results/seeds.json. ``jobs``: how many seeds trained side by side (their wall times depend on it)."""
    accs = [r["final_test_accuracy"] for r in runs]
    return {
        "recipe": "final (default)",
        "goal": GOAL,
        "runs": [
            {**{k: r[k] for k in ("seed", "final_test_accuracy", "params", "epochs", "wall_seconds", "device")},
             "history": [{k: h[k] for k in HISTORY_KEYS} for h in r["history"]]}
            for r in runs
        ],
        **spread(accs),
        "at_or_above_goal": sum(a >= GOAL for a in accs),
        "versions": versions(),
        "command": reproduce({"runs": runs}),
        "jobs": jobs,
    }


def reproduce(summary: dict) -> str:
    """The command that trains these seeds again, with the thread count the runs used."""
    seeds = " ".join(str(r["seed"]) for r in summary["runs"])
    cuda = " --device cuda" if all(r["device"].startswith("cuda") for r in summary["runs"]) else ""
    return threads_prefix(r["device"] for r in summary["runs"]) + f"python -m tools.seeds{cuda} --seeds {seeds}"


def side_by_side(summary: dict) -> str:
    """The sentence that says the wall times were measured with several seeds training at once."""
    jobs = summary.get("jobs", 1)
    if jobs == 1:
        return ""
    return f"{jobs} seeds trained side by side, so each wall time is that of a run sharing the machine. "


def markdown_table(summary: dict) -> str:
    last_epoch = max(r["epochs"] for r in summary["runs"])
    lines = [f"| seed | final test accuracy (epoch {last_epoch}) | parameters | epochs | wall (s) |",
             "|---:|---:|---:|---:|---:|"]
    for r in summary["runs"]:
        lines.append(f"| {r['seed']} | {r['final_test_accuracy']:.2f}% | {r['params']:,} | {r['epochs']} | "
                     f"{r['wall_seconds']:.0f} |")
    lines.append(f"| **mean ± std** | **{summary['mean']:.2f} ± {summary['std']:.2f}%** | | | |")
    lines.append("")
    lines.append(f"{summary['at_or_above_goal']} of {len(summary['runs'])} seeds reach ≥ {summary['goal']:.2f}% "
                 f"at the final epoch (min {summary['min']:.2f}%, max {summary['max']:.2f}%). "
                 f"Device: {summary['runs'][0]['device']}, torch {summary['versions']['torch']}. "
                 f"{side_by_side(summary)}"
                 f"Command: `{reproduce(summary)}`.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.seeds", description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=seed_int, nargs="+", default=list(range(1, 11)), metavar="N",
                        help="default: 1 to 10")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default: auto")
    parser.add_argument("--runs-dir", default=None, metavar="DIR",
                        help="one run folder per seed in here; shared with tools.steps' final step, so neither "
                             "trains a seed the other has (default: runs/steps/final; with --device cuda: "
                             "runs/steps/final-cuda)")
    parser.add_argument("--summary", default=None, metavar="FILE",
                        help="the summary the README table is made from (default: results/seeds.json; with "
                             "--device cuda: results/seeds-cuda.json)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_jobs_argument(parser, "seeds")
    args = parser.parse_args(argv)
    runs_dir, summary_path = default_paths(args.device)
    runs_dir, summary_path = Path(args.runs_dir or runs_dir), Path(args.summary or summary_path)
    distinct(parser, args.seeds, "--seeds")
    output_folder(parser, str(runs_dir), "--runs-dir")  # now, not after hours of training
    output_file(parser, args.summary if args.summary is not None else summary_path, "--summary")
    kept = f"every finished run and every saved epoch stay in {runs_dir}"
    with interrupted_in_one_line(parser.prog, f"{kept}; the same command continues from them"):
        try:
            jobs = jobs_for(args.jobs, args.device, len(args.seeds))
            runs = run_all(run_one, [dict(model="final", seed=seed, out=runs_dir / f"seed{seed}", epochs=None,
                                          train_subset=0, device=args.device,
                                          progress=jobs == 1 and not args.no_progress, tag=jobs > 1)
                                     for seed in args.seeds], jobs)
        except (ValueError, MNISTDataError, OSError) as exc:  # RunError is a ValueError
            parser.error(str(exc))
    summary = summarize(runs, jobs)
    try:
        atomic_write_json(summary_path, summary)
    except OSError as exc:  # a full disk since the check above: the runs are kept, and the next call reuses them
        parser.error(f"--summary {summary_path}: cannot be written ({exc.strerror or exc}); {kept}: free some "
                     "space, then run the same command again (it trains nothing twice)")
    print(markdown_table(summary))
    print(f"summary written to {summary_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
