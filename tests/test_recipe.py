"""The recipe's settings in utils.train: BatchNorm recalibration, the optimizer and its schedule,
augmentation ranges."""
import pytest
import torch
from helpers import tiny_config, without_timing
from torch import nn

from utils import augment
from utils.config import Config
from utils.models import build_model
from utils.train import make_optimizer, recalibrate_batchnorm, train

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def test_recalibration_sets_batchnorm_statistics_to_the_plain_average_over_the_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Dropout(0.5))
    x = torch.randn(64, 1, 8, 8) * 2 + 1
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    recalibrate_batchnorm(model, x, batch_size=16)  # four equal batches: the average of batch means is the mean
    features = model[0](x)
    bn = model[1]
    assert torch.allclose(bn.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    batch_vars = torch.stack([features[i:i + 16].var(dim=(0, 2, 3), unbiased=True) for i in range(0, 64, 16)])
    assert torch.allclose(bn.running_var, batch_vars.mean(0), atol=1e-5)
    assert bn.momentum == 0.1 and not model.training  # restored, and left in eval mode
    for k, v in weights.items():
        assert torch.equal(model.state_dict()[k], v), f"{k} changed"


def test_recalibration_ignores_a_network_without_batchnorm():
    model = build_model("baseline")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate_batchnorm(model, torch.randn(8, 1, 28, 28))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_recalibration_changes_only_the_evaluation_not_the_training(tmp_path, tiny_run):
    _, on = tiny_run(tiny_config(recalibrate_bn=True))
    off = train(tiny_config(recalibrate_bn=False), tmp_path / "off", progress=False, log=lambda *_: None)
    for a, b in zip(on["history"], off["history"], strict=True):
        assert (a["train_loss"], a["train_accuracy"]) == (b["train_loss"], b["train_accuracy"])
    assert [h["test_loss"] for h in on["history"]] != [h["test_loss"] for h in off["history"]]


def test_the_optimizer_and_schedule_take_every_setting_from_the_config():
    """Momentum, Nesterov, weight decay, peak LR and warm-up are Config fields, so the recipe display, the
    run record and the stale-sweep check see them; one-cycle moves the momentum against the LR."""
    cfg = Config(lr=0.2, momentum=0.9, min_momentum=0.8, nesterov=False, weight_decay=1e-3, warmup=0.5, epochs=2)
    opt, sched = make_optimizer(cfg, nn.Linear(1, 1), 10)
    group = opt.param_groups[0]
    assert (group["nesterov"], group["weight_decay"], group["momentum"]) == (False, 1e-3, 0.9)
    seen = []
    for _ in range(20):
        seen.append((opt.param_groups[0]["lr"], opt.param_groups[0]["momentum"]))
        opt.step()
        sched.step()
    peak = max(range(20), key=lambda i: seen[i][0])
    assert peak == 9 and abs(seen[peak][0] - 0.2) < 1e-9, "the peak LR after half of the 20 steps (warmup 0.5)"
    assert abs(seen[peak][1] - 0.8) < 1e-9 and seen[0][1] == 0.9, "momentum lowest where the LR peaks"


def test_augmentation_ranges_bound_the_draws():
    gen = torch.Generator().manual_seed(0)
    angle, shift, scale = augment.random_affine_params(5000, generator=gen, degrees=12.0, translate=0.1)
    assert angle.abs().max() <= 12.0 and angle.abs().max() > 11.0
    assert shift.abs().max() == round(0.1 * 28) and torch.equal(shift, shift.round())
    assert scale.min() >= 1 - augment.SCALE and scale.max() <= 1 + augment.SCALE
    default = augment.random_affine_params(5000, generator=torch.Generator().manual_seed(0))
    assert default[0].abs().max() <= augment.DEGREES


def test_history_is_reproducible_with_other_augmentation_ranges(tmp_path):
    cfg = tiny_config(epochs=2, degrees=8.0, translate=0.08)
    a = train(cfg, tmp_path / "a", progress=False, log=lambda *_: None)
    b = train(cfg, tmp_path / "b", progress=False, log=lambda *_: None)
    assert without_timing(a["history"]) == without_timing(b["history"])
