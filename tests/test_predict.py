"""utils.predict: what a trained run predicts, for a user's images and on the test set."""
import pytest
import torch

from utils.data import normalize
from utils.models import build_model
from utils.predict import check_input, confusion_matrix, predict


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
    digits = predict(model, x)
    assert digits.shape == (5,) and digits.dtype == torch.int64 and not model.training
    assert torch.equal(digits, model(x).argmax(1)), "the model's own argmax, in eval mode"


def test_check_input_accepts_a_normalised_batch(mnist):
    check_input(normalize(mnist.test_images[:3]))
    with pytest.raises(ValueError, match="got list"):
        check_input([[0.0]])
