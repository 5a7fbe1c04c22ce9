"""tools.tta: test-time shifts scored on the validation split only."""
import pytest
import torch
from helpers import tiny_config

from tools import tta
from utils.train import train


def test_views_are_the_image_and_its_four_one_pixel_shifts():
    x = torch.arange(2 * 28 * 28, dtype=torch.float32).reshape(2, 1, 28, 28)
    views = tta.shifted_views(x, fill=-1.0)
    assert len(views) == 5 and torch.equal(views[0], x)
    right = views[1]  # (dx, dy) = (1, 0): the content moves one pixel right, the fill comes in on the left
    assert torch.allclose(right[..., 1:], x[..., :-1], atol=1e-3)
    assert torch.allclose(right[..., 0], torch.tensor(-1.0), atol=1e-3)
    down = views[3]
    assert torch.allclose(down[..., 1:, :], x[..., :-1, :], atol=1e-3)
    assert torch.allclose(down[..., 0, :], torch.tensor(-1.0), atol=1e-3)


def test_scores_a_validation_run_and_refuses_one_without_a_validation_split(tmp_path, capsys):
    metrics = train(tiny_config(epochs=1, holdout=1000), tmp_path / "val", progress=False, log=lambda *_: None)
    plain, shifted = tta.score(tmp_path / "val")
    # the unshifted score is the run's own validation accuracy (the last 1,000 training images), which
    # differs from its test accuracy: scoring the test split instead would fail here
    assert plain == pytest.approx(metrics["final_val_accuracy"], abs=1e-4)
    assert abs(plain - metrics["final_test_accuracy"]) > 0.1
    assert 0 < shifted <= 100 and shifted != plain
    train(tiny_config(epochs=1), tmp_path / "test", progress=False, log=lambda *_: None)
    with pytest.raises(SystemExit):
        tta.main([str(tmp_path / "val"), str(tmp_path / "test")])
    assert "trained without --holdout" in capsys.readouterr().err
