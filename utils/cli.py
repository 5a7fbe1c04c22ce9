"""What the command lines share: the goal, the device choices, argument types and a parser
whose errors are one line (the usage block hides the message a user needs).
"""
from __future__ import annotations

import argparse
import math

# The course's goal, in one place: this test accuracy at the final epoch, within this many epochs,
# with at most this many parameters.
GOAL = 99.40  # percent
MAX_EPOCHS = 15
MAX_PARAMS = 8000

DEVICES = ("auto", "cpu", "cuda", "mps")  # "auto": CUDA, then Apple's MPS, then the CPU


class Parser(argparse.ArgumentParser):
    """Bad arguments end in one line on stderr and exit status 2, without the usage block."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


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

SEED_LIMIT = 2**63  # seeds run from 0 to 2**63 - 1: what torch's generators take, epoch offsets included
seed_int = argument_type(int, "an integer from 0 to 2**63 - 1", "an integer from 0 to 2**63 - 1",
                         lambda v: 0 <= v < SEED_LIMIT)
