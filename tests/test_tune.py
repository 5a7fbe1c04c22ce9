"""tools.tune: the command checks its arguments (the candidate's spelling, the settings, --out) before it trains.
That the candidate the tuning chose builds exactly the final network is tests/test_models.py's (results/tuning.md
cites it there)."""
import pytest
from helpers import no_work, one_error_line

from tools import tune

FINAL_SPEC = "q10 12 16 d 16 16 d"


@pytest.mark.parametrize("argv, words", [
    ([FINAL_SPEC, "--seed", "-1"], ["--seed"]),
    ([FINAL_SPEC, "--weight-decay", "-1"], ["--weight-decay"]),
    ([FINAL_SPEC, "--dropout", "2"], ["--dropout"]),
    ([FINAL_SPEC, "--holdout", "0"], ["--holdout", "validation"]),
    (["0"], ["'0'", "channel count"]),
    (["q10 x"], ["unknown token 'x'"]),
    (["q8 q8 q8 q8 q8"], ["shrinks the 28x28 image"]),
    ([" "], ["empty candidate"]),
])
def test_tune_refuses_bad_arguments_before_training(capsys, monkeypatch, argv, words):
    monkeypatch.setattr(tune, "train", no_work)
    one_error_line(capsys, tune.main, argv, *words)


def test_tune_refuses_an_out_that_is_not_a_folder(blocker, capsys, no_training):
    one_error_line(capsys, tune.main, [FINAL_SPEC, "--epochs", "1", "--out", str(blocker)], str(blocker))
    assert blocker.read_text() == "not a folder"
