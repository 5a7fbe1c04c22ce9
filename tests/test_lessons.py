"""utils.lessons: the concept sections' computations, on small inputs, and the stored lesson networks, which
tools.lesson_weights trains and stores. The one-cycle schedule the lessons draw: test_train.py."""
from __future__ import annotations

import dataclasses

import pytest
import torch
from torch import nn

from tools import lesson_weights
from utils import lessons
from utils.config import recipe
from utils.data import normalize
from utils.models import build_model
from utils.runs import RunError
from utils.summary import count_parameters, layer_table
from utils.train import BACKGROUND, evaluate, load_device_data


@pytest.fixture(scope="module")
def digits(mnist):
    return normalize(mnist.train_images[:64])


@pytest.mark.parametrize("name", ["baseline", "final"])
def test_measured_receptive_field_is_the_computed_one(name, digits):
    torch.manual_seed(0)
    model = build_model(name)
    for row in layer_table(model):
        if row.name.startswith("features.") and row.kind in ("Conv2d", "MaxPool2d"):
            top, left, height, width = lessons.measured_receptive_field(model, row.name, digits)
            assert height == width == row.receptive_field
            assert 0 <= top and top + height <= 28 and 0 <= left and left + width <= 28
    assert all(p.grad is None for p in model.parameters()), "measuring leaves no gradients behind"


def test_bounding_boxes_measure_the_ink():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[0, 4:24, 10:15] = 255  # 20 high, 5 wide
    images[1, 0, 0] = images[1, 27, 27] = 1
    assert lessons.bounding_boxes(images).tolist() == [[20, 5], [28, 28]]


def test_layer_outputs_name_each_layer_of_the_kind(digits):
    torch.manual_seed(0)
    model = build_model("baseline").eval()
    outs = lessons.layer_outputs(model, digits[:2], kinds=(nn.ReLU,))
    assert list(outs) == ["features.2", "features.4", "features.6", "features.8", "features.10"]
    assert outs["features.10"].shape == (2, 16, 5, 5) and (outs["features.2"] >= 0).all()


def test_activation_stats_with_and_without_batchnorm(mnist):
    x, y = normalize(mnist.train_images[:64]), mnist.train_labels[:64]
    stats = {}
    for name in ("baseline", "batchnorm"):
        torch.manual_seed(0)
        model = build_model(name)
        stats[name] = lessons.activation_stats(model, x, y)
        assert all(p.grad is None for p in model.parameters())
    assert len(stats["baseline"]) == len(stats["batchnorm"]) == 5
    assert all(abs(float(r.values.std()) - 1) < 0.01 for r in stats["batchnorm"])
    assert float(stats["baseline"][0].values.std()) > 5 * float(stats["baseline"][-1].values.std())
    assert all(r.grad_std > 0 and r.weight_grad_ratio > 0 and 0 < r.zero < 1 for rows in stats.values() for r in rows)


def test_batchnorm_in_training_mode_works_on_a_copy(digits):
    torch.manual_seed(0)
    model = build_model("final").eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    labels = torch.zeros(len(digits), dtype=torch.long)
    acc = lessons.bn_train_mode_accuracy(model, digits, labels, batch_size=8)
    assert 0 <= acc <= 100 and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items()), "the model itself is untouched"


def test_running_statistics_from_training_change_only_the_statistics():
    cfg = recipe("final", train_subset=512, epochs=1, device="cpu")
    data = load_device_data(cfg, torch.device("cpu"))
    torch.manual_seed(0)
    model = build_model("final").eval()
    replayed = lessons.running_statistics_from_training(model, cfg, data, batches=3)
    assert not replayed.training
    for (name, a), b in zip(model.state_dict().items(), replayed.state_dict().values(), strict=True):
        if "running" in name:
            assert not torch.equal(a, b), name
        elif "num_batches" not in name:
            assert torch.equal(a, b), f"{name}: weights are untouched"


def test_class_activation_maps_average_to_the_outputs(digits):
    torch.manual_seed(0)
    model = build_model("gap").eval()
    maps, scores = lessons.class_activation_maps(model, digits[:8])
    assert maps.shape == (8, 10, 5, 5)
    with torch.no_grad():
        assert torch.allclose(scores, model(digits[:8]), atol=1e-5)
    with pytest.raises(ValueError):
        lessons.class_activation_maps(build_model("baseline"), digits[:2])


def test_dropout_left_on_at_evaluation(digits):
    torch.manual_seed(0)
    model = build_model("final").eval()
    labels = evaluate(model, digits, torch.zeros(len(digits), dtype=torch.long))["predictions"]
    assert lessons.accuracy_with_dropout_on(model, digits, labels, 0.0) == 100.0
    assert lessons.accuracy_with_dropout_on(model, digits, labels, 0.9) < 100.0
    assert all(m.p == 0.05 for m in model.modules() if isinstance(m, nn.Dropout)), "the model keeps its rate"


def test_shift_image_fills_what_it_uncovers():
    image = torch.arange(5.0).reshape(1, 5)
    assert lessons.shift_image(image, 2, -1.0).tolist() == [[-1, -1, 0, 1, 2]]
    assert lessons.shift_image(image, -1, 9.0).tolist() == [[1, 2, 3, 4, 9]]
    assert torch.equal(lessons.shift_image(image, 0, 0.0), image)


def test_answers_under_moves_include_the_unmoved_image(digits):
    torch.manual_seed(0)
    model = build_model("final").eval()
    answers = lessons.answers_under_moves(model, digits[:4], BACKGROUND)
    assert answers.shape == (4, 81)
    unmoved = 40  # angle 0, shift (0, 0), scale 1: the middle of the 3 x 3 x 3 x 3 grid
    plain = evaluate(model, digits[:4], torch.zeros(4, dtype=torch.long))["predictions"]
    assert torch.equal(answers[:, unmoved], plain)


def test_top_confusions_counts_pairs():
    labels = torch.tensor([1, 1, 1, 2, 2, 3, 7])
    predictions = torch.tensor([7, 7, 1, 3, 3, 3, 1])
    assert lessons.top_confusions(predictions, labels) == [(1, 7, 2), (2, 3, 2), (7, 1, 1)]
    assert lessons.top_confusions(labels, labels) == []


def test_multiply_adds_per_layer():
    rows = lessons.multiply_adds(build_model("baseline"))
    first, last = rows[0], rows[-1]
    assert first == ("features.0", "Conv2d", (10, 26, 26), 676, 90)
    assert last == ("head.1", "Linear", (10,), 1, 4000)


# --------------------------------------------------------------------------------------------------
# The stored lesson networks
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", lessons.LESSON_MODELS)
def test_the_stored_lesson_networks_load_and_match_the_recipe(name):
    model, record = lessons.trained(name)
    assert not model.training and record["model"] == name and "stale" not in record
    assert record["config"]["holdout"] == lessons.LESSON_HOLDOUT and record["final_val_accuracy"] > 98
    assert lessons.weights_path(name).stat().st_size < 80_000, "a few tens of kB"
    assert "validation accuracy (the last 10,000)" in lessons.describe_trained(record)


def record_like(model: str, **changes) -> dict:
    net = build_model(model)
    config = dataclasses.asdict(lessons.lesson_config(model))
    return {"model": model, "config": config, "model_state": net.state_dict(), "params": count_parameters(net),
            "epochs": config["epochs"], "final_val_accuracy": 99.0, "device": "cpu", **changes}


def test_trained_refuses_a_missing_a_foreign_or_another_steps_file(tmp_path):
    with pytest.raises(RunError, match="not found: `python -m tools.lesson_weights`"):
        lessons.trained("gap", tmp_path)
    (tmp_path / "gap.pt").write_bytes(b"not a torch file")
    with pytest.raises(RunError, match=r"gap.pt is damaged or is not what `python -m tools.lesson_weights` writes"):
        lessons.trained("gap", tmp_path)
    torch.save(record_like("gap", final_val_accuracy=float("nan")), tmp_path / "gap.pt")
    with pytest.raises(RunError, match=r"\['final_val_accuracy'\] is not a number"):
        lessons.trained("gap", tmp_path)
    torch.save(record_like("final"), tmp_path / "gap.pt")
    with pytest.raises(RunError, match="holds step 'final', not 'gap'"):
        lessons.trained("gap", tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("this would run",))

    torch.save({"model": "gap", "payload": Evil()}, tmp_path / "gap.pt")
    with pytest.raises(RunError, match="UnpicklingError"):
        lessons.trained("gap", tmp_path)


def test_trained_notes_a_network_made_with_other_settings(tmp_path):
    record = record_like("gap")
    record["config"]["epochs"] = 3
    torch.save(record, tmp_path / "gap.pt")
    _, loaded = lessons.trained("gap", tmp_path)
    assert "re-run `python -m tools.lesson_weights`" in loaded["stale"]


def test_lesson_weights_trains_and_stores_a_network_trained_loads(tmp_path, monkeypatch):
    tiny = lessons.lesson_config("gap")
    small = dict(epochs=1, train_subset=256, holdout=256)
    monkeypatch.setattr(lessons, "lesson_config", lambda model: lessons.recipe(model, seed=1, **small))
    monkeypatch.setattr(lesson_weights, "lesson_config", lessons.lesson_config)
    assert tiny.holdout == lessons.LESSON_HOLDOUT
    args = ["--models", "gap", "--runs-dir", str(tmp_path / "runs"), "--out", str(tmp_path / "lessons")]
    assert lesson_weights.main(args) == 0
    model, record = lessons.trained("gap", tmp_path / "lessons")
    assert "stale" not in record and record["command"].startswith("python -m tools.lesson_weights")
    assert set(record) >= {"model", "config", "model_state", "final_val_accuracy", "device", "versions"}
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    assert lesson_weights.main(args) == 0, "a finished run is reused"
