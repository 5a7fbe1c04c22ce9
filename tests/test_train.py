"""Determinism, resume, what a run writes, and that the test set never steers training."""
import json

import pytest
import torch

from utils import train as T
from utils.models import build_model
from utils.summary import count_parameters


def without_timing(history):
    return [{k: v for k, v in row.items() if k != "seconds"} for row in history]


def weights(run_dir):
    return torch.load(run_dir / "checkpoint.pt", weights_only=False)["model_state"]


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_same_seed_same_metrics_and_weights(tiny_config, tmp_path):
    a = T.train(tiny_config(), tmp_path / "a", progress=False)
    b = T.train(tiny_config(), tmp_path / "b", progress=False)
    assert without_timing(a["history"]) == without_timing(b["history"])
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    c = T.train(tiny_config(seed=2), tmp_path / "c", progress=False)
    assert without_timing(c["history"]) != without_timing(a["history"])


def test_run_folder_contents(tiny_config, tmp_path):
    m = T.train(tiny_config(epochs=2), tmp_path / "run", progress=False)
    on_disk = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert on_disk == m
    for key in ("model", "params", "epochs", "final_test_accuracy", "history", "wall_seconds", "device",
                "seed", "versions", "config"):
        assert key in on_disk, key
    assert on_disk["model"] == "final" and on_disk["epochs"] == 2 and len(on_disk["history"]) == 2
    assert on_disk["params"] == count_parameters(build_model("final"))
    assert on_disk["final_test_accuracy"] == on_disk["history"][-1]["test_accuracy"]
    assert 0 <= on_disk["final_test_accuracy"] <= 100 and on_disk["wall_seconds"] > 0
    assert on_disk["versions"]["torch"] == torch.__version__ and on_disk["config"]["train_subset"] == 1024
    ckpt = torch.load(tmp_path / "run" / "checkpoint.pt", weights_only=False)
    assert ckpt["model"] == "final" and ckpt["config"] == on_disk["config"]
    model = build_model("final")
    model.load_state_dict(ckpt["model_state"])  # a real state_dict of the named model
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoint.pt", "metrics.json"]


def test_resume_after_interruption_ends_like_an_uninterrupted_run(tiny_config, tmp_path, monkeypatch):
    full = T.train(tiny_config(epochs=3), tmp_path / "full", progress=False)

    real_save = T.save_run

    def save_then_die(out, model, opt, sched, cfg, history, metrics):
        real_save(out, model, opt, sched, cfg, history, metrics)
        if len(history) == 2:
            raise KeyboardInterrupt("killed after epoch 2")

    monkeypatch.setattr(T, "save_run", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        T.train(tiny_config(epochs=3), tmp_path / "cut", progress=False)
    monkeypatch.setattr(T, "save_run", real_save)
    assert json.loads((tmp_path / "cut" / "metrics.json").read_text())["epochs"] == 2

    resumed = T.train(None, resume=tmp_path / "cut", progress=False)
    assert without_timing(resumed["history"]) == without_timing(full["history"])
    assert resumed["final_test_accuracy"] == full["final_test_accuracy"]
    assert same_weights(weights(tmp_path / "cut"), weights(tmp_path / "full"))


def test_test_labels_do_not_influence_training(tiny_config, tmp_path, monkeypatch):
    T.train(tiny_config(), tmp_path / "a", progress=False)
    real_load = T.load_device_data

    def shuffled_test_labels(cfg, device):
        dd = real_load(cfg, device)
        dd.test_y = dd.test_y[torch.randperm(dd.test_y.shape[0], generator=torch.Generator().manual_seed(0))]
        return dd

    monkeypatch.setattr(T, "load_device_data", shuffled_test_labels)
    b = T.train(tiny_config(), tmp_path / "b", progress=False)
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert b["final_test_accuracy"] < 20  # shuffled labels: chance level, so the swap really happened


def test_existing_run_folder_is_not_overwritten(tiny_config, tmp_path):
    T.train(tiny_config(epochs=1), tmp_path / "run", progress=False)
    with pytest.raises(T.RunError, match="--resume"):
        T.train(tiny_config(epochs=1), tmp_path / "run", progress=False)


def test_lr_schedule_is_one_cycle():
    cfg = T.recipe("final", epochs=15)
    lrs = T.lr_curve(cfg, 100)
    peak = max(lrs)
    assert len(lrs) == 1500 and abs(peak - cfg.lr) < 1e-9
    assert lrs[0] < peak / 10 and lrs[-1] < peak / 1000
    assert T.lr_curve(T.recipe("gap", epochs=2), 10) == [T.recipe("gap").lr] * 20
