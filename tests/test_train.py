"""utils.train: the loop (determinism, the test set never steering training, the holdout), BatchNorm
recalibration, the optimizer and its one-cycle schedule, and the command line ``python -m utils.train``: its
help, one line for a bad argument, a progress bar only on a terminal, what a tuning run shows.

The runs here are the final recipe (augmentation on, one-cycle LR) on 1,024 training images for 3 epochs on the
CPU unless a test says otherwise; the 10k test images are still evaluated after every epoch. What a run writes
and how it is resumed: test_runs.py.
"""
import dataclasses
import json
import re
import subprocess
import sys

import pytest
import torch
from helpers import ROOT, cli_env, one_error_line, quiet, same_weights, tiny_config, weights, without_timing
from torch import nn

from utils import data, predict, runs
from utils.config import Config, recipe
from utils.models import build_model
from utils.train import load_device_data, make_optimizer, recalibrate_batchnorm, schedule, train
from utils.train import main as train_main


@pytest.fixture
def reference(tiny_run):
    """One uninterrupted 3-epoch run: (run folder, returned metrics), shared by the session."""
    return tiny_run(tiny_config())


def test_the_tiny_runs_use_the_final_recipe():
    cfg = tiny_config()
    assert cfg.model == "final" and cfg.augment and cfg.recalibrate_bn and cfg.device == "cpu"


# --------------------------------------------------------------------------------------------------
# The loop: the same settings give the same run; the test set never steers it
# --------------------------------------------------------------------------------------------------

def test_same_config_gives_the_same_history_and_weights(reference, tmp_path):
    ref_dir, ref = reference
    again = train(tiny_config(), tmp_path / "again", progress=False, log=quiet)
    assert without_timing(again["history"]) == without_timing(ref["history"])
    assert same_weights(weights(tmp_path / "again"), weights(ref_dir))


def test_another_seed_gives_other_metrics_and_weights(reference, tmp_path):
    ref_dir, ref = reference
    other = train(tiny_config(seed=2), tmp_path / "seed2", progress=False, log=quiet)
    a, b = without_timing(ref["history"]), without_timing(other["history"])
    assert [row["train_loss"] for row in a] != [row["train_loss"] for row in b]
    assert not same_weights(weights(tmp_path / "seed2"), weights(ref_dir))


def test_history_is_reproducible_with_other_augmentation_ranges(tmp_path):
    cfg = tiny_config(epochs=2, degrees=8.0, translate=0.08)
    a = train(cfg, tmp_path / "a", progress=False, log=quiet)
    b = train(cfg, tmp_path / "b", progress=False, log=quiet)
    assert without_timing(a["history"]) == without_timing(b["history"])


def test_a_builder_or_a_model_trains_like_the_registered_step(reference, tmp_path):
    """train(model=...) runs an architecture that is not in utils.models.MODELS, with no patching:
    a builder is seeded like a step name, so the registered final network gives the same run."""
    from utils.models import MODELS, FinalNet

    registry = dict(MODELS)
    _, ref = reference
    cfg = dataclasses.replace(tiny_config(), model="candidate")
    built = train(cfg, tmp_path / "builder", model=FinalNet, progress=False, log=quiet)
    assert without_timing(built["history"]) == without_timing(ref["history"])
    assert built["model"] == "candidate" and built["architecture"] == ref["architecture"]
    torch.manual_seed(cfg.seed)
    given = train(cfg, tmp_path / "instance", model=FinalNet(), progress=False, log=quiet)
    assert without_timing(given["history"]) == without_timing(ref["history"])
    small = train(cfg, tmp_path / "small", model=lambda: FinalNet(dropout=0.5), progress=False, log=quiet)
    assert without_timing(small["history"]) != without_timing(ref["history"])
    assert MODELS == registry, "the registry is left as it was"


def test_the_test_set_does_not_influence_training(reference, tmp_path, monkeypatch):
    ref_dir, ref = reference
    real_load = load_device_data

    def scrambled_test_set(cfg, device):
        """Shuffled test labels, and test images turned upside down: any leak would change training."""
        dd = real_load(cfg, device)
        dd.test_y = dd.test_y[torch.randperm(dd.test_y.shape[0], generator=torch.Generator().manual_seed(0))]
        dd.test_x = dd.test_x.flip(-2).contiguous(memory_format=torch.channels_last)
        return dd

    monkeypatch.setattr("utils.train.load_device_data", scrambled_test_set)
    b = train(tiny_config(), tmp_path / "shuffled", progress=False, log=quiet)
    train_part = [{k: row[k] for k in ("train_loss", "train_accuracy", "lr")} for row in b["history"]]
    assert train_part == [{k: row[k] for k in ("train_loss", "train_accuracy", "lr")} for row in ref["history"]]
    assert same_weights(weights(tmp_path / "shuffled"), weights(ref_dir))
    assert b["final_test_accuracy"] < 20  # scrambled test set scores at chance: the swap really happened


def test_holdout_is_the_last_training_images_and_never_trained_on():
    mnist = data.load_mnist()
    cfg = tiny_config(holdout=10_000, train_subset=0)
    dd = load_device_data(cfg, torch.device("cpu"))
    assert torch.equal(dd.train_x, data.normalize(mnist.train_images[:50_000]))
    assert torch.equal(dd.val_x, data.normalize(mnist.train_images[50_000:]))
    assert torch.equal(dd.val_y, mnist.train_labels[50_000:])
    assert torch.equal(dd.test_y, mnist.test_labels), "the test set is the real one"
    subset = load_device_data(tiny_config(holdout=10_000, train_subset=1024), torch.device("cpu"))
    assert torch.equal(subset.train_x, dd.train_x[:1024]) and torch.equal(subset.val_x, dd.val_x)


# --------------------------------------------------------------------------------------------------
# BatchNorm recalibration before each evaluation
# --------------------------------------------------------------------------------------------------

def test_recalibration_sets_batchnorm_statistics_to_the_plain_average_over_the_images():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3), nn.Dropout(0.5))
    x = torch.randn(64, 1, 8, 8) * 2 + 1
    params = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    recalibrate_batchnorm(model, x, batch_size=16)  # four equal batches: the average of batch means is the mean
    features = model[0](x)
    bn = model[1]
    assert torch.allclose(bn.running_mean, features.mean(dim=(0, 2, 3)), atol=1e-5)
    batch_vars = torch.stack([features[i:i + 16].var(dim=(0, 2, 3), unbiased=True) for i in range(0, 64, 16)])
    assert torch.allclose(bn.running_var, batch_vars.mean(0), atol=1e-5)
    assert bn.momentum == 0.1 and not model.training  # restored, and left in eval mode
    for k, v in params.items():
        assert torch.equal(model.state_dict()[k], v), f"{k} changed"


def test_recalibration_ignores_a_network_without_batchnorm():
    model = build_model("baseline")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    recalibrate_batchnorm(model, torch.randn(8, 1, 28, 28))
    assert all(torch.equal(model.state_dict()[k], v) for k, v in before.items())


def test_recalibration_changes_only_the_evaluation_not_the_training(tmp_path, tiny_run):
    _, on = tiny_run(tiny_config(recalibrate_bn=True))
    off = train(tiny_config(recalibrate_bn=False), tmp_path / "off", progress=False, log=quiet)
    for a, b in zip(on["history"], off["history"], strict=True):
        assert (a["train_loss"], a["train_accuracy"]) == (b["train_loss"], b["train_accuracy"])
    assert [h["test_loss"] for h in on["history"]] != [h["test_loss"] for h in off["history"]]


# --------------------------------------------------------------------------------------------------
# The optimizer and its one-cycle schedule
# --------------------------------------------------------------------------------------------------

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


@pytest.mark.parametrize("cfg, steps", [(recipe("final", epochs=15), 100), (recipe("baseline", epochs=4), 10)],
                         ids=["final, 15 epochs of 100 steps", "baseline, 4 epochs of 10 steps"])
def test_the_schedule_is_one_cycle_with_the_momentum_against_the_lr(cfg, steps):
    """The LR from lr/25 up to lr at the end of the warm-up, then down to almost nothing; the momentum from its
    setting down to min_momentum where the LR peaks (what the notebooks' schedule figure draws)."""
    curves = schedule(cfg, steps)
    lrs, total = curves["lr"], cfg.epochs * steps
    peak = lrs.index(max(lrs))
    assert len(lrs) == len(curves["momentum"]) == total
    assert abs(max(lrs) - cfg.lr) < 1e-9 and lrs[0] == pytest.approx(cfg.lr / 25)
    assert peak in (round(cfg.warmup * total) - 1, round(cfg.warmup * total))
    assert peak < total // 2 and lrs[-1] < max(lrs) / 1000, "warm up first, then anneal"
    assert curves["momentum"][0] == pytest.approx(cfg.momentum)
    assert curves["momentum"][peak] == pytest.approx(cfg.min_momentum, abs=1e-3)


@pytest.mark.parametrize("epochs, steps", [(1, 1), (1, 3), (1, 4), (2, 2), (1, 5)])
def test_one_cycle_works_for_the_shortest_runs(epochs, steps):
    """A 4-step run (--train-subset 512 --epochs 1) once crashed inside torch's OneCycleLR."""
    lrs = schedule(tiny_config(epochs=epochs), steps)["lr"]
    assert len(lrs) == epochs * steps and all(0 < lr <= 0.1 for lr in lrs)


# --------------------------------------------------------------------------------------------------
# python -m utils.train
# --------------------------------------------------------------------------------------------------

def test_train_help(capsys):
    with pytest.raises(SystemExit) as exit_:
        train_main(["--help"])
    out = capsys.readouterr().out
    assert exit_.value.code == 0
    for option in ("--model", "--epochs", "--batch-size", "--resume", "--out", "--train-subset", "--no-progress"):
        assert option in out, option
    # one formatter: each option states its default once, and never as "None"
    for entry in re.split(r"\n  (?=-)", out.split("options:", 1)[1]):
        assert entry.count("default") <= 1, entry
    assert "None" not in out


@pytest.mark.parametrize("args, words", [
    (["--model", "resnet"], ["invalid choice", "resnet"]),
    (["--epochs", "0"], ["--epochs", "positive integer"]),
    (["--batch-size", "-1"], ["--batch-size", "positive integer"]),
    (["--resume", "no/such/folder"], ["no/such/folder", "no such run folder"]),
    (["--holdout", "60000"], ["--holdout 60000", "no training images"]),
    (["--lr", "-1"], ["--lr", "positive number"]),
    (["--lr", "nan"], ["--lr", "positive number"]),
])
def test_bad_arguments_fail_with_one_line(args, words, tmp_path, capsys, no_training):
    one_error_line(capsys, train_main, [*args, "--no-progress", "--out", str(tmp_path / "run")], *words)
    assert not (tmp_path / "run").exists(), "nothing is trained or written"


def test_empty_paths_are_refused_not_read_as_the_current_folder(reference, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["--train-subset", "256", "--epochs", "1", "--device", "cpu", "--no-progress"]
    one_error_line(capsys, train_main, [*common, "--data-root", "", "--out", str(tmp_path / "r")], "--data-root")
    one_error_line(capsys, train_main, [*common, "--out", ""], "--out ''")
    one_error_line(capsys, train_main, ["--resume", ""], "no such run folder")
    one_error_line(capsys, predict.main, [str(reference[0]), "--data-root", ""], "empty MNIST folder")
    with pytest.raises(data.MNISTDataError, match="empty"):
        data.load_mnist("")
    assert list(tmp_path.iterdir()) == [], "nothing written in the working folder"


def test_an_empty_mnist_root_is_refused(tmp_path):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**cli_env(), "MNIST_ROOT": "", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "utils.train", "--train-subset", "256", "--epochs", "1", "--device",
                        "cpu", "--no-progress", "--out", str(tmp_path / "run")], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "$MNIST_ROOT" in lines[0], r.stderr
    assert list(cwd.iterdir()) == [] and not (tmp_path / "run").exists()


@pytest.mark.parametrize("terminal, flags, shown", [
    (True, [], True), (True, ["--no-progress"], False), (False, [], False)])
def test_progress_bar_only_on_a_terminal_and_only_when_asked(monkeypatch, terminal, flags, shown):
    seen = []

    def record_and_stop(cfg, out, resume=None, progress=True):
        seen.append(progress)
        raise runs.RunError("stopped by the test")

    monkeypatch.setattr("utils.train.train", record_and_stop)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: terminal)
    with pytest.raises(SystemExit):
        train_main(["--epochs", "1", *flags])
    assert seen == [shown]


def test_a_tuning_run_shows_validation_numbers_and_still_records_the_test_set(tmp_path, capsys):
    assert train_main(["--holdout", "2000", "--train-subset", "512", "--epochs", "1", "--device", "cpu",
                       "--no-progress", "--out", str(tmp_path / "tune")]) == 0
    out = capsys.readouterr().out
    metrics = json.loads((tmp_path / "tune" / "metrics.json").read_text())
    row = metrics["history"][-1]
    assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= row.keys()
    assert metrics["final_val_accuracy"] == row["val_accuracy"]
    epoch_line = [line for line in out.splitlines() if line.startswith("epoch ")]
    assert len(epoch_line) == 1 and f"val {row['val_accuracy']:6.2f}% (loss {row['val_loss']:.4f})" in epoch_line[0]
    assert "test" not in epoch_line[0], "what is not on screen cannot steer a choice"
    assert f"final validation accuracy {metrics['final_val_accuracy']:.2f}%" in out
    assert not re.search(r"test (acc|accuracy)\s+[\d.]+%", out), "no test number on screen while tuning"
