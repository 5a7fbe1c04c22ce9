"""utils.predict: what a trained run predicts, for a user's images and on the test set; the input checks
(shape, dtype, NaN) for every step's network; the command line ``python -m utils.predict``."""
import contextlib
import io
import json
import math
import re

import pytest
import torch
from helpers import one_error_line

from utils import predict
from utils.data import normalize
from utils.models import build_model
from utils.predict import check_input, confusion_matrix
from utils.train import main as train_main


@pytest.fixture(scope="module")
def gap_run(tmp_path_factory):
    """``python -m utils.train --model gap ...`` through train_main in this process, its output captured as
    a pipe or a log file would take it (not a terminal)."""
    out = tmp_path_factory.mktemp("cli") / "gap"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = train_main(["--model", "gap", "--epochs", "1", "--train-subset", "512", "--device", "cpu",
                           "--out", str(out)])
    assert code == 0, stderr.getvalue()
    assert "final test accuracy" in stdout.getvalue()
    assert "step/s" not in stderr.getvalue(), "no progress bar redrawn into a pipe or a log file"
    return out


def test_confusion_matrix_counts_true_by_predicted():
    target = torch.tensor([0, 0, 1, 2, 2, 2, 9])
    pred = torch.tensor([0, 1, 1, 2, 0, 2, 9])
    m = confusion_matrix(pred, target)
    assert m.shape == (10, 10) and m.dtype == torch.int64
    expected = torch.zeros(10, 10, dtype=torch.int64)
    for t, p in zip(target.tolist(), pred.tolist(), strict=True):
        expected[t, p] += 1
    assert torch.equal(m, expected)
    assert m.sum() == len(target) and m.trace() == (pred == target).sum()
    assert m[0, 1] == 1 and m[2, 0] == 1  # row = true, column = predicted
    with pytest.raises(ValueError):
        confusion_matrix(pred[:-1], target)
    with pytest.raises(ValueError):
        confusion_matrix(torch.tensor([10]), torch.tensor([0]))


def test_predict_returns_one_digit_per_image_in_eval_mode(mnist):
    torch.manual_seed(0)
    model = build_model("final").train()
    x = normalize(mnist.test_images[:5])
    digits = predict.predict(model, x)
    assert digits.shape == (5,) and digits.dtype == torch.int64 and not model.training
    assert torch.equal(digits, model(x).argmax(1)), "the model's own argmax, in eval mode"


# --------------------------------------------------------------------------------------------------
# What predict refuses, with a message that says what it expected and what it got
# --------------------------------------------------------------------------------------------------

def test_check_input_accepts_a_normalised_batch(mnist):
    check_input(normalize(mnist.test_images[:3]))
    with pytest.raises(ValueError, match="got list"):
        check_input([[0.0]])


@pytest.mark.parametrize(
    "shape, words",
    [
        ((2, 3, 28, 28), ["1 input channel", "3 channels"]),
        ((2, 2, 28, 28), ["1 input channel", "2 channels"]),
        ((2, 1, 32, 32), ["28x28", "32x32"]),
        ((2, 1, 27, 28), ["28x28", "27x28"]),
        ((1, 28, 28), ["(N, 1, 28, 28)", "3 dimensions"]),
        ((2, 1, 1, 28, 28), ["(N, 1, 28, 28)", "5 dimensions"]),
    ],
)
def test_bad_shapes_raise_value_error_saying_expected_and_got(model, shape, words):
    with pytest.raises(ValueError) as err:
        predict.predict(model, torch.randn(*shape))
    for w in words:
        assert w in str(err.value)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.int64])
def test_integer_input_is_refused(model, dtype):
    with pytest.raises(ValueError) as err:
        predict.predict(model, torch.zeros(2, 1, 28, 28, dtype=dtype))
    assert "(N, 1, 28, 28)" in str(err.value) and str(dtype) in str(err.value)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_dtypes_are_refused_clearly(dtype):
    with pytest.raises(ValueError, match=r"float32.*x\.float\(\)"):
        predict.predict(build_model("final"), torch.zeros(2, 1, 28, 28, dtype=dtype))


def test_nan_input_is_refused_before_it_reaches_batchnorm():
    model = build_model("final").train()
    running = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.zeros(4, 1, 28, 28)
    x[1, 0, 3, 3] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        predict.predict(model, x)
    assert all(torch.equal(running[k], v) for k, v in model.state_dict().items()), "running statistics untouched"


# --------------------------------------------------------------------------------------------------
# python -m utils.predict
# --------------------------------------------------------------------------------------------------

def test_predict_reports_accuracy_and_confusion_matrix(gap_run, capsys):
    metrics = json.loads((gap_run / "metrics.json").read_text())
    assert predict.main([str(gap_run), "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert f"test accuracy {metrics['final_test_accuracy']:.2f}%" in out
    # The matrix: ten lines of eleven integers (the true class, then ten counts).
    rows = [[int(v) for v in line.split()] for line in out.splitlines()
            if re.fullmatch(r"\s*\d+(\s+\d+){10}\s*", line)]
    assert len(rows) == 10 and [row[0] for row in rows] == list(range(10))
    counts = [row[1:] for row in rows]
    assert sum(map(sum, counts)) == 10_000
    assert sum(counts[i][i] for i in range(10)) == round(metrics["final_test_accuracy"] * 100)


def test_predict_accepts_the_checkpoint_file_too(gap_run, capsys):
    metrics = json.loads((gap_run / "metrics.json").read_text())
    assert predict.main([str(gap_run / "checkpoint.pt"), "--device", "cpu"]) == 0
    assert f"test accuracy {metrics['final_test_accuracy']:.2f}%" in capsys.readouterr().out


def test_predict_bad_path_fails_with_one_line(tmp_path, capsys):
    one_error_line(capsys, predict.main, [str(tmp_path / "nothing")], "nothing")
