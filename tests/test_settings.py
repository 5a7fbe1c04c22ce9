"""utils.settings: the argument types every command line of the course shares."""
import argparse

import pytest

from utils import settings


@pytest.mark.parametrize("kind, text, ok", [
    ("positive_int", "3", 3), ("positive_int", "0", None), ("positive_int", "2.5", None),
    ("non_negative_int", "0", 0), ("non_negative_int", "-1", None),
    ("positive_float", "0.05", 0.05), ("positive_float", "0", None), ("positive_float", "nan", None),
    ("positive_float", "inf", None)])
def test_shared_argument_types(kind, text, ok):
    if ok is None:
        with pytest.raises(argparse.ArgumentTypeError):
            getattr(settings, kind)(text)
    else:
        assert getattr(settings, kind)(text) == ok
