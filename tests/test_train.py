"""Determinism, resume, what a run writes, and that the test set never steers training.

Every run here is the final recipe (augmentation on, one-cycle LR) on 1,024 training images for
3 epochs on the CPU; the 10k test images are still evaluated after every epoch.
"""
import dataclasses
import json

import pytest
import torch
from helpers import quiet, stop_after_saving, tiny_config, without_timing

from utils import runs
from utils.config import Config, recipe
from utils.models import build_model
from utils.summary import count_parameters
from utils.train import evaluate, load_device_data, schedule, train


def weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=True)["model_state"]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def files_in(run_dir):
    return sorted(p.name for p in run_dir.iterdir())


@pytest.fixture
def reference(one_cpu_thread, tiny_run):
    """One uninterrupted 3-epoch run: (run folder, returned metrics), shared by the session."""
    return tiny_run(tiny_config())


def test_the_tiny_runs_use_the_final_recipe():
    cfg = tiny_config()
    assert cfg.model == "final" and cfg.augment and cfg.recalibrate_bn and cfg.device == "cpu"


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


def test_metrics_json_contents(reference):
    ref_dir, ref = reference
    on_disk = json.loads((ref_dir / "metrics.json").read_text())
    assert on_disk == ref
    for key in ("model", "params", "epochs", "final_test_accuracy", "history", "wall_seconds", "device",
                "seed", "versions", "config"):
        assert key in on_disk, key
    assert on_disk["model"] == "final" and on_disk["seed"] == 1 and on_disk["device"].startswith("cpu")
    assert on_disk["epochs"] == 3 and [row["epoch"] for row in on_disk["history"]] == [1, 2, 3]
    assert on_disk["params"] == count_parameters(build_model("final"))
    assert on_disk["final_test_accuracy"] == on_disk["history"][-1]["test_accuracy"]
    assert 10 < on_disk["final_test_accuracy"] <= 100, "a percentage, and better than chance after 3 epochs"
    assert on_disk["wall_seconds"] > 0
    assert on_disk["peak_memory_mb"] > 100, "this process's peak resident memory, torch and MNIST included"
    assert on_disk["versions"]["torch"] == torch.__version__
    assert on_disk["config"] == dataclasses.asdict(tiny_config())


def test_checkpoint_holds_the_weights_that_scored_the_reported_accuracy(reference):
    ref_dir, ref = reference
    ckpt = torch.load(ref_dir / "checkpoint.pt", weights_only=True)
    assert ckpt["model"] == "final" and ckpt["config"] == ref["config"]
    model = build_model(ckpt["model"])
    model.load_state_dict(ckpt["model_state"])  # strict: a complete state_dict of the named model
    cfg = Config(**ckpt["config"])
    dd = load_device_data(cfg, torch.device("cpu"))
    result = evaluate(model, dd.test_x, dd.test_y)
    assert result["accuracy"] == ref["final_test_accuracy"]


def test_run_folder_holds_only_the_checkpoint_and_the_metrics(reference):
    assert files_in(reference[0]) == ["checkpoint.pt", "metrics.json"]  # no temporary files left


def test_existing_run_folder_is_not_overwritten(reference):
    ref_dir, _ = reference
    before = {name: (ref_dir / name).read_bytes() for name in files_in(ref_dir)}
    with pytest.raises(runs.RunError, match="--resume"):
        train(tiny_config(), ref_dir, progress=False, log=quiet)
    assert {name: (ref_dir / name).read_bytes() for name in files_in(ref_dir)} == before


def test_resuming_a_complete_run_changes_nothing(reference):
    ref_dir, ref = reference
    before = (ref_dir / "checkpoint.pt").read_bytes()
    assert train(None, resume=ref_dir, progress=False, log=quiet) == ref
    assert (ref_dir / "checkpoint.pt").read_bytes() == before


def interrupt_after_epoch_2(monkeypatch):
    """Ctrl-C right after epoch 2 was saved."""
    stop_after_saving(monkeypatch, 2)
    return 2  # epochs on disk afterwards


def interrupt_while_writing_checkpoint_2(monkeypatch):
    """Ctrl-C halfway through writing epoch 2's checkpoint: epoch 1's pair must survive intact."""
    real_torch_save = torch.save

    def half_save_then_stop(obj, f, *args, **kwargs):
        if isinstance(obj, dict) and len(obj.get("history", ())) == 2:
            with open(f, "wb") as fh:
                fh.write(b"PK\x03\x04 half a checkpoint")
            raise KeyboardInterrupt("stopped while writing checkpoint 2")
        return real_torch_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", half_save_then_stop)
    return 1


@pytest.mark.parametrize("interrupt", [interrupt_after_epoch_2, interrupt_while_writing_checkpoint_2])
def test_resume_after_interruption_ends_like_an_uninterrupted_run(reference, tmp_path, monkeypatch, interrupt):
    ref_dir, ref = reference
    cut = tmp_path / "cut"
    with monkeypatch.context() as patch:
        saved_epochs = interrupt(patch)
        with pytest.raises(KeyboardInterrupt):
            train(tiny_config(), cut, progress=False, log=quiet)
    assert files_in(cut) == ["checkpoint.pt", "metrics.json"], "no temporary file left behind"
    on_disk = json.loads((cut / "metrics.json").read_text())
    assert on_disk["epochs"] == saved_epochs and len(on_disk["history"]) == saved_epochs
    assert len(torch.load(cut / "checkpoint.pt", weights_only=True)["history"]) == saved_epochs

    resumed = train(None, resume=cut, progress=False, log=quiet)
    assert resumed["epochs"] == 3
    assert without_timing(resumed["history"]) == without_timing(ref["history"])
    assert resumed["final_test_accuracy"] == ref["final_test_accuracy"]
    assert same_weights(weights(cut), weights(ref_dir))
    assert json.loads((cut / "metrics.json").read_text()) == resumed
    assert files_in(cut) == ["checkpoint.pt", "metrics.json"]


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
    from utils import data
    mnist = data.load_mnist()
    cfg = tiny_config(holdout=10_000, train_subset=0)
    dd = load_device_data(cfg, torch.device("cpu"))
    assert torch.equal(dd.train_x, data.normalize(mnist.train_images[:50_000]))
    assert torch.equal(dd.val_x, data.normalize(mnist.train_images[50_000:]))
    assert torch.equal(dd.val_y, mnist.train_labels[50_000:])
    assert torch.equal(dd.test_y, mnist.test_labels), "the test set is the real one"
    subset = load_device_data(tiny_config(holdout=10_000, train_subset=1024), torch.device("cpu"))
    assert torch.equal(subset.train_x, dd.train_x[:1024]) and torch.equal(subset.val_x, dd.val_x)


def test_too_large_a_holdout_is_refused():
    with pytest.raises(ValueError, match="--holdout 60000 leaves no training images"):
        load_device_data(tiny_config(holdout=60_000), torch.device("cpu"))


def test_a_tuning_run_shows_validation_numbers_and_still_records_the_test_set(tmp_path):
    lines = []
    metrics = train(tiny_config(holdout=2_000, epochs=1), tmp_path / "tune", progress=False, log=lines.append)
    row = metrics["history"][-1]
    assert {"val_loss", "val_accuracy", "test_loss", "test_accuracy"} <= row.keys()
    assert metrics["final_val_accuracy"] == row["val_accuracy"]
    epoch_line = [line for line in lines if line.startswith("epoch ")]
    assert len(epoch_line) == 1 and f"val loss {row['val_loss']:.4f}" in epoch_line[0]
    assert "test" not in epoch_line[0], "what is not on screen cannot steer a choice"


def test_lr_schedule_is_one_cycle():
    cfg = recipe("final", epochs=15)
    lrs = schedule(cfg, 100)["lr"]
    peak = max(lrs)
    assert len(lrs) == 1500 and abs(peak - cfg.lr) < 1e-9
    assert lrs[0] < peak / 10 and lrs[-1] < peak / 1000
    assert lrs.index(peak) < len(lrs) // 2, "warm up first, then anneal"


@pytest.mark.parametrize("epochs, steps", [(1, 1), (1, 3), (1, 4), (2, 2), (1, 5)])
def test_one_cycle_works_for_the_shortest_runs(epochs, steps):
    """A 4-step run (--train-subset 512 --epochs 1) once crashed inside torch's OneCycleLR."""
    lrs = schedule(tiny_config(epochs=epochs), steps)["lr"]
    assert len(lrs) == epochs * steps and all(0 < lr <= 0.1 for lr in lrs)


def test_every_step_trains_with_the_final_recipe_and_only_step_5_augments():
    final = dataclasses.asdict(recipe("final"))
    for name in ("baseline", "batchnorm", "dropout", "gap"):
        cfg = dataclasses.asdict(recipe(name))
        assert cfg["augment"] is False and final["augment"] is True
        assert {k: v for k, v in cfg.items() if k not in ("model", "augment")} == \
            {k: v for k, v in final.items() if k not in ("model", "augment")}, name


def test_resume_refuses_a_run_of_another_network(reference, tmp_path, monkeypatch):
    """A checkpoint remembers its network's fingerprint: after utils/models.py changes, resuming fails
    with one clear error instead of mixing two networks in one run."""
    import shutil

    from utils.models import FinalNet

    ref_dir, ref = reference
    assert ref["architecture"] == runs.architecture_id(build_model("final"))
    copy = tmp_path / "copy"
    shutil.copytree(ref_dir, copy)
    monkeypatch.setattr("utils.runs.build_model", lambda name, dropout: FinalNet(dropout=0.3))  # the code changed
    with pytest.raises(runs.RunError, match="another 'final' network"):
        train(None, resume=copy, progress=False, log=quiet)


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


# --------------------------------------------------------------------------------------------------
# Which device a run uses (--device auto / cpu / cuda / mps)
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gpu", [True, False], ids=["with a GPU", "without one"])
def test_auto_picks_cuda_when_there_is_a_gpu_else_the_cpu(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert runs.resolve_device("auto") == torch.device("cuda" if gpu else "cpu")
    assert runs.resolve_device("cpu") == torch.device("cpu")


def test_auto_takes_apples_mps_when_there_is_no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert runs.resolve_device("auto") == torch.device("mps")


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_a_device_that_is_not_there_is_one_clear_error_before_the_run_folder(monkeypatch, tmp_path, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=f"--device {name} was asked for, but .* use --device cpu or auto"):
        train(tiny_config(device=name), tmp_path / "run", progress=False, log=quiet)
    assert not (tmp_path / "run").exists(), "nothing written"
