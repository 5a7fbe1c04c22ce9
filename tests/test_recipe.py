"""The recipe's levers in utils.train: BatchNorm recalibration, weight averaging, label smoothing,
augmentation ranges."""
import pytest
import torch
from helpers import tiny_config, without_timing
from torch import nn

from utils import augment
from utils import train as T
from utils.models import build_model

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def test_recalibration_sets_batchnorm_statistics_to_the_plain_average_over_the_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Dropout(0.5))
    x = torch.randn(64, 1, 8, 8) * 2 + 1
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    T.recalibrate_batchnorm(model, x, batch_size=16)  # four equal batches: the average of batch means is the mean
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
    T.recalibrate_batchnorm(model, torch.randn(8, 1, 28, 28))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_recalibration_changes_only_the_evaluation_not_the_training(tmp_path):
    on = T.train(tiny_config(recalibrate_bn=True), tmp_path / "on", progress=False, log=lambda *_: None)
    off = T.train(tiny_config(recalibrate_bn=False), tmp_path / "off", progress=False, log=lambda *_: None)
    for a, b in zip(on["history"], off["history"], strict=True):
        assert (a["train_loss"], a["train_accuracy"]) == (b["train_loss"], b["train_accuracy"])
    assert [h["test_loss"] for h in on["history"]] != [h["test_loss"] for h in off["history"]]


def test_label_smoothing_changes_the_training_loss(tmp_path):
    plain = T.train(tiny_config(epochs=1), tmp_path / "a", progress=False, log=lambda *_: None)
    smooth = T.train(tiny_config(epochs=1, label_smoothing=0.1), tmp_path / "b", progress=False, log=lambda *_: None)
    assert smooth["history"][0]["train_loss"] > plain["history"][0]["train_loss"]


def test_averaged_weights_are_the_final_model_and_survive_a_resume(tmp_path):
    cfg = tiny_config(epochs=3, ema=0.9)
    ref = T.train(cfg, tmp_path / "ref", progress=False, log=lambda *_: None)
    ckpt = torch.load(tmp_path / "ref" / "checkpoint.pt", weights_only=True)
    assert not all(torch.equal(ckpt["model_state"][k], ckpt["training_state"][k]) for k in ckpt["model_state"])
    model = build_model("final")
    model.load_state_dict(ckpt["model_state"])
    data = T.load_device_data(cfg, torch.device("cpu"))
    assert T.evaluate(model, data.test_x, data.test_y)["accuracy"] == ref["final_test_accuracy"]



def test_a_resumed_averaged_run_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    cfg = tiny_config(epochs=3, ema=0.9)
    ref = T.train(cfg, tmp_path / "ref", progress=False, log=lambda *_: None)
    real_save = T.save_run

    def save_then_stop(*args):
        real_save(*args)
        if len(args[5]) == 2:  # history
            raise KeyboardInterrupt("stopped after epoch 2")

    monkeypatch.setattr(T, "save_run", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, tmp_path / "cut", progress=False, log=lambda *_: None)
    monkeypatch.setattr(T, "save_run", real_save)
    resumed = T.train(None, resume=tmp_path / "cut", progress=False, log=lambda *_: None)
    assert without_timing(resumed["history"]) == without_timing(ref["history"])


def test_augmentation_ranges_bound_the_draws():
    gen = torch.Generator().manual_seed(0)
    angle, shift, scale = augment.random_affine_params(5000, generator=gen, degrees=12.0, translate=0.1)
    assert angle.abs().max() <= 12.0 and angle.abs().max() > 11.0
    assert shift.abs().max() == round(0.1 * 28) and torch.equal(shift, shift.round())
    assert scale.min() >= augment.SCALE[0] and scale.max() <= augment.SCALE[1]
    default = augment.random_affine_params(5000, generator=torch.Generator().manual_seed(0))
    assert default[0].abs().max() <= augment.DEGREES


def test_history_is_reproducible_with_every_lever_on(tmp_path):
    cfg = tiny_config(epochs=2, ema=0.95, label_smoothing=0.05, degrees=8.0, translate=0.08)
    a = T.train(cfg, tmp_path / "a", progress=False, log=lambda *_: None)
    b = T.train(cfg, tmp_path / "b", progress=False, log=lambda *_: None)
    assert without_timing(a["history"]) == without_timing(b["history"])


def run(tmp_path, name, **overrides):
    return T.train(tiny_config(**overrides), tmp_path / name, progress=False, log=lambda *_: None)["history"]


def test_clean_epochs_switch_augmentation_off_for_the_last_epochs_only(tmp_path):
    augmented = run(tmp_path, "aug", epochs=3)
    last_clean = run(tmp_path, "last", epochs=3, clean_epochs=1)
    assert without_timing(last_clean[:2]) == without_timing(augmented[:2])  # same draws until the last epoch
    assert last_clean[2]["train_loss"] != augmented[2]["train_loss"]
    # every epoch clean is a run without augmentation, bit for bit
    assert without_timing(run(tmp_path, "all", epochs=2, clean_epochs=2)) == \
        without_timing(run(tmp_path, "none", epochs=2, augment=False))


def test_no_norm_decay_spares_batchnorm_and_biases_only(tmp_path):
    cfg = tiny_config(norm_decay=False)
    model = build_model("final")
    opt, _ = T.make_optimizer(cfg, model, steps_per_epoch=8)
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    multiplying = {id(m.weight) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))}
    assert decayed == multiplying and len(decayed) == 6  # five convolutions and the 1x1 head
    assert opt.param_groups[0]["weight_decay"] == cfg.weight_decay
    # it changes training; with no weight decay at all it changes nothing
    assert without_timing(run(tmp_path, "a", epochs=1, norm_decay=False)) != \
        without_timing(run(tmp_path, "b", epochs=1))
    assert without_timing(run(tmp_path, "c", epochs=1, norm_decay=False, weight_decay=0.0)) == \
        without_timing(run(tmp_path, "d", epochs=1, weight_decay=0.0))


@pytest.mark.parametrize("overrides, message", [
    (dict(epochs=2, clean_epochs=3), "clean_epochs (--clean-epochs) 3 is more than the 2 epochs"),
    (dict(clean_epochs=-1), "clean_epochs (--clean-epochs) must be an integer >= 0"),
    (dict(norm_decay="no"), "norm_decay must be True or False"),
    (dict(weight_decay=-1e-4), "weight_decay (--weight-decay) must be a number >= 0"),
])
def test_new_levers_refuse_bad_values(overrides, message):
    with pytest.raises(T.RunError) as err:
        T.validate(tiny_config(**overrides))
    assert message in str(err.value)


def test_new_levers_have_flags():
    args = T.build_parser().parse_args(["--clean-epochs", "1", "--no-norm-decay", "--weight-decay", "0"])
    cfg = T.config_from_args(args)
    assert (cfg.clean_epochs, cfg.norm_decay, cfg.weight_decay) == (1, False, 0.0)
    assert T.option("norm_decay", False) == "--no-norm-decay"
    with pytest.raises(SystemExit):
        T.build_parser().parse_args(["--weight-decay", "-1"])
