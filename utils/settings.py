"""A setting is written once: a dataclass field whose metadata says why it exists and which values it
takes. The checks, the command-line flags and the reading of a saved run's settings all come from it.

``utils.train.Config`` is such a dataclass; nothing here knows its fields.
"""
from __future__ import annotations

import dataclasses
import math

SEED_LIMIT = 2**63  # seeds run from 0 to 2**63 - 1: what torch's generators take, epoch offsets included


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
    "non_negative": (lambda v, r: number(v) and v >= 0, "a number >= 0"),
    "range": (lambda v, r: number(v) and r["low"] <= v < r["high"], "a number from {low} up to (not including) {high}"),
    "switch": (lambda v, r: isinstance(v, bool), "True or False"),
    "seed": (lambda v, r: whole(v) and 0 <= v < SEED_LIMIT, "an integer from 0 to 2**63 - 1"),
    "choice": (lambda v, r: v in r["choices"], "one of: {choices}"),
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


def resumed(saved, asked, may_change: tuple[str, ...], where: str):
    """The saved settings, with only the fields ``may_change`` taken from ``asked``; any other difference
    is a RunError naming the flag to drop."""
    if asked is None:
        return saved
    for f in dataclasses.fields(saved):
        mine, theirs = getattr(asked, f.name), getattr(saved, f.name)
        if f.name not in may_change and mine != theirs:
            flags = [flag(name) for name in may_change]
            allowed = ", ".join(flags[:-1]) + " and " + flags[-1] if len(flags) > 1 else flags[0]
            raise RunError(f"{where}: {flag(f.name, mine)} asks for {f.name} {mine!r}, but the saved run has "
                             f"{theirs!r}; a resumed run keeps its settings (only {allowed} may change): drop "
                             f"{flag(f.name, mine)}, or start a new run with another --out")
    return dataclasses.replace(saved, **{name: getattr(asked, name) for name in may_change})
