"""Train every unchanged step on the exercises' short budget and store it, so a student trains only the variant.

    python -m tools.exercise_baselines             # the five steps, seeds 1-3 (each run timed in the summary)

``utils.exercises.judge`` sets a student's variant of a step against these runs: the step's own
recipe on ``utils.exercises.BUDGET`` (two epochs on the first 10,000 training images, scored on the
last 10,000, a validation split) with the same seeds. The runs train into build/exercises/<step>/unchanged
and the summary goes to results/exercises.json (written atomically). Re-run it after any change of the
recipe, a network or the budget: ``judge`` refuses stored runs made with other settings and trains the
unchanged step itself instead (saying so).
"""
from __future__ import annotations

import dataclasses
import shlex
import sys

from tools.parallel import add_jobs_argument, interrupted_in_one_line, jobs_for, run_all, worker_device_name
from utils import shown_path
from utils.config import cpu_name, versions
from utils.data import MNISTDataError
from utils.exercises import BASELINES, BUDGET, RUNS, SEEDS, budget_config, describe_budget, short_run
from utils.fsutil import atomic_write_json
from utils.models import STEPS
from utils.settings import Parser, output_file


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.exercise_baselines", description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", nargs="+", choices=list(STEPS), default=list(STEPS))
    parser.add_argument("--summary", default=str(BASELINES))
    add_jobs_argument(parser)
    args = parser.parse_args(argv)
    print(f"Budget: {describe_budget(BUDGET, SEEDS)}.")
    output_file(parser, args.summary, "--summary")  # now, not after minutes of training
    steps = {}
    with interrupted_in_one_line(parser.prog, f"{args.summary} is as it was; run the same command again"):
        try:
            calls = [dict(cfg=budget_config(notebook, seed, BUDGET), out=RUNS / notebook / "unchanged" / f"seed{seed}")
                     for notebook in args.steps for seed in SEEDS]
            jobs = jobs_for(args.jobs, "auto", len(calls))
            done = iter(run_all(short_run, calls, jobs))
            for notebook in args.steps:
                runs = [next(done) for _ in SEEDS]
                config = {k: v for k, v in dataclasses.asdict(budget_config(notebook, SEEDS[0], BUDGET)).items()
                          if k not in ("seed", "data_root", "device")}
                steps[notebook] = {"config": config, "runs": runs}
                accs = ", ".join(f"{r['val_accuracy']:.2f}%" for r in runs)
                print(f"{notebook:<16} validation {accs} ({sum(r['seconds'] for r in runs):.0f} s)", flush=True)
        except (ValueError, MNISTDataError, OSError) as exc:  # RunError is a ValueError
            parser.error(str(exc))
    command = shlex.join(["python", "-m", "tools.exercise_baselines", *(argv if argv is not None else sys.argv[1:])])
    summary = {"budget": BUDGET, "seeds": list(SEEDS), "device": worker_device_name("auto", jobs),
               "cpu": cpu_name(), "versions": versions(), "command": command, "steps": steps}
    atomic_write_json(args.summary, summary)
    print(f"summary written to {shown_path(args.summary)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
