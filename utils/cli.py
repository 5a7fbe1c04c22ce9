"""The command lines: a parser whose errors are one line, the argument types the tools share, and
``python -m utils.train`` itself, whose flags are derived from the fields of ``utils.train.Config``.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import signal
import sys
import threading
from pathlib import Path

from . import GOAL, runs
from .data import MNISTDataError
from .fsutil import ensure_writable_file
from .settings import SEED_LIMIT, flag
from .train import RECIPES, Config, load_checkpoint, recipe, train


class Parser(argparse.ArgumentParser):
    """Bad arguments end in one line on stderr and exit status 2, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line, for ``parser.error``."""
    return " ".join(str(exc).split("\n"))


def argument_type(convert, expected: str, must: str, ok):
    """An argparse type: ``convert(text)``, refused unless ``ok(value)``, with one message per failure.
    The refusal shows a parsed integer as parsed and a float as typed (``1e999``, not ``inf``)."""
    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"must be {must}, got {value if convert is int else text}")
        return value
    return parse


positive_float = argument_type(float, "a positive number", "a positive number", lambda v: 0 < v < math.inf)
non_negative_float = argument_type(float, "a number >= 0", "a number >= 0", lambda v: 0 <= v < math.inf)
positive_int = argument_type(int, "a positive integer", "a positive integer", lambda v: v > 0)
non_negative_int = argument_type(int, "an integer >= 0", ">= 0", lambda v: v >= 0)
seed_int = argument_type(int, "an integer from 0 to 2**63 - 1", "an integer from 0 to 2**63 - 1",
                         lambda v: 0 <= v < SEED_LIMIT)
fraction = argument_type(float, "a number from 0 up to 1", "a number from 0 up to (not including) 1",
                         lambda v: 0 <= v < 1)


def distinct(parser: argparse.ArgumentParser, values: list, flag: str) -> list:
    """``values`` when none repeats; else the parser's one-line error (a seed counted twice skews a mean)."""
    repeated = sorted({v for v in values if values.count(v) > 1})
    if repeated:
        parser.error(f"{flag} names {', '.join(map(str, repeated))} more than once; give each once")
    return values


def output_file(parser: argparse.ArgumentParser, path: str, flag: str) -> Path:
    """``path``, proven writable before the work whose result it will hold; else the parser's one-line error."""
    try:
        return ensure_writable_file(path)
    except OSError as exc:
        parser.error(f"{flag} {path or repr(path)}: cannot write a file there ({exc.strerror or exc}); "
                     "choose a file in a folder you can write to")


# --------------------------------------------------------------------------------------------------
# python -m utils.train: one flag per field of utils.train.Config
# --------------------------------------------------------------------------------------------------

FLAG_TYPES = {"count": positive_int, "size": non_negative_int, "positive": positive_float,
              "non_negative": non_negative_float, "range": float, "seed": seed_int, "path": str}


def shown_default(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) \
        else str(value)


def build_parser() -> argparse.ArgumentParser:
    """A flag for every Config field, its help the field's own line. The settings default to None, so that
    main() knows which ones the user typed (--resume refuses a typed setting that differs from the saved run)."""
    p = Parser(prog="python -m utils.train", description="Train a teaching step on MNIST (default: the final "
               "recipe); every epoch is saved, and --resume continues a killed run to the same numbers.")
    default = Config()
    for f in dataclasses.fields(Config):
        rule, value = f.metadata, getattr(default, f.name)
        others: dict[str, list[str]] = {}  # another default -> the steps whose recipe sets it
        for step, changes in RECIPES.items():
            if f.name in changes:
                others.setdefault(shown_default(changes[f.name]), []).append(step)
        also = "".join(f"; {v} for {', '.join(steps)}" for v, steps in others.items())
        help = f"{rule['why']} (default: {shown_default(value)}{also})".replace("%", "%%")
        if rule["check"] == "switch":
            p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help)
        elif rule["check"] == "choice":
            p.add_argument(flag(f.name), choices=list(rule["choices"]), default=None, help=help)
        else:
            p.add_argument(flag(f.name), type=FLAG_TYPES[rule["check"]], default=None, help=help)
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="run folder (default: runs/<model>-seed<seed>-<time>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue a killed run from its last epoch (only --device, --data-root and --reuse-memory "
                        "may change)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal, e.g. in CI logs)")
    return p


def settings_given(args) -> dict:
    """The Config fields the user typed on the command line."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}


def config_from_args(args):
    given = settings_given(args)
    return recipe(given.pop("model", "final"), **given)


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (``kill``, a job scheduler's stop) raises KeyboardInterrupt, as Ctrl-C does, so that both end
    the same way: temporary files removed, the lock released, one line on how to continue."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum, frame):
        raise KeyboardInterrupt("terminated")

    before = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)


def main(argv: list[str] | None = None) -> int:
    """``python -m utils.train``: train, print every epoch, then the final result and the run folder."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with sigterm_as_interrupt():
        try:
            return run(parser, args)
        except KeyboardInterrupt as exc:  # utils.runs.Interrupted once the run holds its folder
            folder = args.resume or args.out
            said = str(exc) if isinstance(exc, runs.Interrupted) else "interrupted before the first epoch began; " + (
                f"{folder} is as it was" if folder else "nothing was written")
            print(f"{parser.prog}: {said}", file=sys.stderr)
            return 130


def run(parser, args) -> int:
    try:
        if args.out is not None and not args.out.strip():
            parser.error("--out '' names no folder; give a run folder, or leave --out out for the default")
        if args.resume is None:
            cfg = config_from_args(args)
        else:
            if not args.resume.strip() or not Path(args.resume).is_dir():
                parser.error(f"--resume {args.resume or repr(args.resume)}: no such run folder")
            if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
                parser.error(f"--resume continues {args.resume} in place; drop --out {args.out}")
            given = settings_given(args)  # typed settings are checked against the saved run by train()
            cfg = dataclasses.replace(Config(**load_checkpoint(args.resume)["config"]), **given) if given else None
        # A bar redrawn with \r is noise in a log file or a pipe: show it only on a terminal.
        progress = not args.no_progress and sys.stderr.isatty()
        metrics = train(cfg, args.out, resume=args.resume, progress=progress)
    except (ValueError, MNISTDataError, OSError) as exc:  # RunError is a ValueError
        parser.error(one_line(exc))
    if metrics.get("final_val_accuracy") is not None:  # a tuning run (--holdout): no test number on screen
        outcome = (f"final validation accuracy {metrics['final_val_accuracy']:.2f}% at epoch {metrics['epochs']} "
                   f"(the last {metrics['config']['holdout']:,} training images, never trained on; the test "
                   "accuracy is in metrics.json, not for tuning)")
    else:
        verdict = "meets" if metrics["goal_met"] else "misses"
        outcome = (f"final test accuracy {metrics['final_test_accuracy']:.2f}% at epoch {metrics['epochs']} "
                   f"({verdict} the {GOAL:.2f}% goal)")
    print(f"{outcome} | {metrics['params']:,} parameters | wall {metrics['wall_seconds']:.1f}s")
    print(f"run folder: {args.resume or metrics['run_dir']}")  # a resumed folder may have been moved
    return 0
