"""A setting is written once: a dataclass field whose metadata says why it exists and which values it
takes. The checks, the command-line flags and the reading of a saved run's settings all come from it.
Below them, what every command line of the course shares: a parser whose errors are one line, and the
argument types the tools take.

``utils.config.Config`` is such a dataclass; nothing here knows its fields.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import signal
import threading
from pathlib import Path

from .fsutil import ensure_writable_dir, ensure_writable_file

SEED_LIMIT = 2**63  # seeds run from 0 to 2**63 - 1: what torch's generators take, epoch offsets included
RATE_LIMIT = 1e6  # a learning rate above it cannot train (a few units already diverge), and float32 overflows near 3e38


class RunError(ValueError):
    """A run cannot start as asked; the message says what to do instead."""

    def _render_traceback_(self) -> list[str]:
        """In a notebook (IPython asks for this), the one line of the message instead of a traceback."""
        return [f"{type(self).__name__}: {self}"]


def setting(default, why: str, check: str, **rule):
    """A field: its default, the one line that says why (``--help`` and the notebooks show it), and the
    values it takes (``check``: a key of CHECKS, with ``low``/``high``/``choices`` where it needs them;
    ``hint`` adds advice to the refusal). ``run=True`` marks a field that says how one run is carried
    out (which step, seed, device, data) rather than how the step trains. ``before``: the value the code
    used before this was a setting, which is what a record made then (without the key) trained with."""
    return dataclasses.field(default=default, metadata={"why": why, "check": check, **rule})


def whole(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


CHECKS = {  # check -> (test of a value against the field's rule, what the refusal says it must be)
    "count": (lambda v, r: whole(v) and v > 0, "a positive integer"),
    "size": (lambda v, r: whole(v) and v >= 0, "an integer >= 0 (0: none)"),
    "positive": (lambda v, r: number(v) and v > 0, "a positive number"),
    "rate": (lambda v, r: number(v) and 0 < v <= RATE_LIMIT, f"a positive number up to {RATE_LIMIT:g}"),
    "non_negative": (lambda v, r: number(v) and v >= 0, "a number >= 0"),
    "range": (lambda v, r: number(v) and r["low"] <= v < r["high"], "a number from {low} up to (not including) {high}"),
    "switch": (lambda v, r: isinstance(v, bool), "True or False"),
    "seed": (lambda v, r: whole(v) and 0 <= v < SEED_LIMIT, "an integer from 0 to 2**63 - 1"),
    "choice": (lambda v, r: v in r["choices"], "one of: {choices}"),
    "name": (lambda v, r: isinstance(v, str) and v.strip() != "", "a name (the steps: {choices})"),
    "path": (lambda v, r: isinstance(v, str) and v.strip() != "", "a folder path (an empty one would mean the "
             "current folder)"),
}


def flag(name: str, value=None) -> str:
    """The command-line flag of a setting: ``--batch-size``; ``--no-augment`` for a switch turned off."""
    return ("--no-" if value is False else "--") + name.replace("_", "-")


def named(name: str) -> str:
    """``epochs (--epochs)``: a setting named both ways, for messages that API and CLI users both read."""
    return f"{name} ({flag(name)})"


def check_fields(cfg, skip: tuple[str, ...] = ()) -> None:
    """Raise RunError for the first field of ``cfg`` whose value its rule refuses."""
    for f in dataclasses.fields(cfg):
        rule, value = f.metadata, getattr(cfg, f.name)
        ok, must = CHECKS[rule["check"]]
        if f.name not in skip and not ok(value, rule):
            must = must.format(low=rule.get("low"), high=rule.get("high"), choices=", ".join(rule.get("choices", ())))
            hint = f" ({rule['hint']})" if "hint" in rule else ""
            raise RunError(f"{named(f.name)} must be {must}, got {value!r}{hint}")


def stored(config: dict, cls) -> dict:
    """A settings dict saved by a run or sweep, as today's code reads the dataclass ``cls``: a setting added
    since then takes the value that run trained with (the field's ``before``, else its default); a setting
    the code no longer has is kept as it is. So a changed default is a difference, never silently equal."""
    unrecorded = {f.name: f.metadata.get("before", f.default) for f in dataclasses.fields(cls)}
    return {**unrecorded, **config}


class SettingsDiffer(RunError):
    """A resumed run was asked for other settings than it was saved with; ``difference`` says which, plainly,
    for a tool that words the refusal itself."""

    def __init__(self, message: str, name: str, asked, saved):
        super().__init__(message)
        self.name, self.asked, self.saved = name, asked, saved
        self.difference = f"{name} {saved!r}, not {asked!r}"

    def __reduce__(self):  # a worker process of a sweep sends it back pickled
        return type(self), (str(self), self.name, self.asked, self.saved)


def resumed(saved, asked, may_change: tuple[str, ...], where: str):
    """The saved settings, with only the fields ``may_change`` taken from ``asked`` (None, the same dataclass, or a
    dict of the settings a user typed); any other difference is a RunError naming the flag to drop."""
    asked = {} if asked is None else asked if isinstance(asked, dict) else dataclasses.asdict(asked)
    for f in dataclasses.fields(saved):
        mine, theirs = asked.get(f.name, getattr(saved, f.name)), getattr(saved, f.name)
        if f.name not in may_change and mine != theirs:
            flags = [flag(name) for name in may_change]
            allowed = ", ".join(flags[:-1]) + " and " + flags[-1] if len(flags) > 1 else flags[0]
            raise SettingsDiffer(f"{where}: {flag(f.name, mine)} asks for {f.name} {mine!r}, but the saved run has "
                                 f"{theirs!r}; a resumed run keeps its settings (only {allowed} may change): drop "
                                 f"{flag(f.name, mine)}, or start a new run with another --out", f.name, mine, theirs)
    return dataclasses.replace(saved, **{name: asked[name] for name in may_change if name in asked})


# --------------------------------------------------------------------------------------------------
# The command lines: one-line errors and the argument types the tools share
# --------------------------------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    """Bad arguments end in one line on stderr and exit status 2, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {one_line(message)}\n")


def one_line(exc) -> str:
    """An exception's message (or a text) on one line, for ``parser.error``."""
    return " ".join(str(exc).split())


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


def output_folder(parser: argparse.ArgumentParser, path: str, flag: str) -> Path:
    """The folder ``path``, made and proven writable before the work that fills it; else the parser's one-line error."""
    try:
        return ensure_writable_dir(path)
    except OSError as exc:
        parser.error(f"{flag} {path or repr(path)}: cannot be used as a folder ({exc.strerror or exc}); "
                     "choose a folder you can write to")


def output_file(parser: argparse.ArgumentParser, path: str, flag: str) -> Path:
    """``path``, proven writable before the work whose result it will hold; else the parser's one-line error."""
    try:
        return ensure_writable_file(path)
    except OSError as exc:
        parser.error(f"{flag} {path or repr(path)}: cannot write a file there ({exc.strerror or exc}); "
                     "choose a file in a folder you can write to")


@contextlib.contextmanager
def sigterm_as_interrupt():
    """SIGTERM (``kill``, a job scheduler's stop) raises KeyboardInterrupt, as Ctrl-C does, so that a command
    line ends both the same way: temporary files removed, locks released, one line on how to continue."""
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


@contextlib.contextmanager
def interrupts_held():
    """Ctrl-C or SIGTERM arriving inside waits for the block to finish, then acts as it would have: an epoch's
    two files are written both or neither, so an interrupted run never shows a checkpoint without its
    metrics.json (only a kill -9 can; resume repairs that)."""
    signals = (signal.SIGINT, signal.SIGTERM)
    handlers = [signal.getsignal(s) for s in signals] if threading.current_thread() is threading.main_thread() else []
    if not handlers or None in handlers:  # not the main thread, or a handler Python did not install: leave them be
        yield
        return
    held = []
    for s in signals:
        signal.signal(s, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for s, handler in zip(signals, handlers, strict=True):
            signal.signal(s, handler)
    if held:
        signal.raise_signal(held[0])  # the handler of before, now that the block is done
