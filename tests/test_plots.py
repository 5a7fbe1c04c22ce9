"""utils.plots: every figure the notebooks draw (their results and their concept sections' figures), each checked
through what it draws, on small inputs."""
from __future__ import annotations

import re

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from utils import augment, lessons, plots
from utils.data import normalize
from utils.models import build_model
from utils.predict import confusion_matrix
from utils.summary import count_parameters, layer_table

SUMMARY = {"seeds": [1, 2], "steps": [
    {"notebook": "02_batchnorm", "gap": {"mean": 0.45}, "runs": [{"gap": 0.5}, {"gap": 0.4}]},
    {"notebook": "03_dropout", "gap": {"mean": 0.35}, "runs": [{"gap": 0.4}, {"gap": 0.3}]}]}


def pixels(ax) -> torch.Tensor:
    """The image drawn in an Axes, as a tensor."""
    return torch.from_numpy(np.array(ax.images[0].get_array()))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_sample_grid_and_class_balance():
    images = torch.randint(0, 256, (12, 28, 28), dtype=torch.uint8)
    labels = torch.arange(12) % 10
    fig = plots.sample_grid(images, labels, n=12, cols=4)
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 12
    assert [ax.get_title() for ax in fig.axes] == [str(int(x)) for x in labels]
    assert torch.equal(pixels(fig.axes[5]), images[5].float())
    fig = plots.class_balance(torch.tensor([0, 0, 1, 3]), torch.tensor([1, 1]))
    heights = [p.get_height() for p in fig.axes[0].patches]
    assert heights[:10] == pytest.approx([50, 25, 0, 25] + [0] * 6)
    assert heights[10:] == pytest.approx([0, 100] + [0] * 8)


def test_training_curves_draw_every_epoch():
    history = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1.2 / e, "train_accuracy": 97 + e / 10,
                "clean_train_loss": 0.9 / e, "clean_train_accuracy": 97.8 + e / 10,
                "test_accuracy": 97.5 + e / 10} for e in range(1, 6)]
    fig = plots.training_curves(history, others={"earlier": history[:3]})
    loss_ax, acc_ax = fig.axes
    lines = {line.get_label(): line for line in acc_ax.lines}
    assert list(lines["test"].get_ydata()) == [h["test_accuracy"] for h in history]
    assert list(lines["clean train"].get_ydata()) == [h["clean_train_accuracy"] for h in history]
    assert list(lines["running train"].get_xdata()) == [1, 2, 3, 4, 5]
    assert lines["running train"].get_linestyle() == ":", "the running figure is drawn dotted, apart from the two"
    assert len(lines["test, earlier"].get_ydata()) == 3
    assert [line.get_label() for line in loss_ax.lines] == ["running train", "clean train", "test",
                                                            "clean train, earlier", "test, earlier"]


def test_augmentation_preview_is_seeded():
    images = torch.zeros(2, 28, 28, dtype=torch.uint8)
    images[:, 8:20, 12:16] = 255

    def arrays(fig):
        return [pixels(ax) for ax in fig.axes]

    a, b, c = (plots.augmentation_preview(images, draws=3, seed=s) for s in (5, 5, 6))
    assert len(a.axes) == 2 * 4
    assert all(torch.equal(x, y) for x, y in zip(arrays(a), arrays(b), strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(arrays(a), arrays(c), strict=True))
    assert torch.equal(arrays(a)[0], images[0].float() / 255)  # column 0: the original
    # the draws are exactly utils.augment.random_affine under the same seeded generator
    gen = torch.Generator().manual_seed(5)
    first_row = augment.random_affine((images[:1].float() / 255).unsqueeze(1).repeat(3, 1, 1, 1), generator=gen)
    assert all(torch.allclose(arrays(a)[1 + i], first_row[i, 0]) for i in range(3))


def test_misclassified_shows_only_the_mistakes():
    images = torch.rand(6, 1, 28, 28)
    labels = torch.tensor([0, 1, 2, 3, 4, 5])
    preds = torch.tensor([0, 7, 2, 8, 4, 5])
    fig = plots.misclassified(images, labels, preds, "validation", cols=4)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["1→7", "3→8"]
    assert fig.get_suptitle() == "2 of the 2 misclassified validation images (true→predicted)", "it names its split"


def test_confusion_plot_shows_the_counts():
    m = confusion_matrix(torch.tensor([0, 1, 1]), torch.tensor([0, 1, 2]))
    fig = plots.confusion(m)
    texts = sorted(t.get_text() for t in fig.axes[0].texts)
    assert texts == ["1", "1", "1"] and fig.axes[0].get_title() == "2 of 3 correct"


@pytest.mark.parametrize("name", ["baseline", "final"])
def test_architecture_figure_has_one_block_per_convolution_and_the_head(name):
    model = build_model(name)
    fig = plots.architecture(model)
    ax = fig.axes[0]
    convs = [r for r in layer_table(model) if r.kind == "Conv2d" and r.name.startswith("features.")]
    assert len(ax.patches) == len(convs) + 1
    texts = " ".join(t.get_text() for t in ax.texts)
    # each block's output, as worked by hand in tests/test_summary.py::test_layer_table_of_the_final_model
    assert re.findall(r"RF (\d+)", texts) == ["4", "8", "12", "16", "20", "28"]
    assert "10x13x13" in texts and "16x5x5" in texts  # shapes come from a forward pass
    assert f"{count_parameters(model):,} parameters" in ax.get_title()


# --------------------------------------------------------------------------------------------------
# The concept sections' figures
# --------------------------------------------------------------------------------------------------

def test_image_grid_titles_each_image_and_hides_spare_cells():
    fig = plots.image_grid(torch.randn(5, 3, 3), [f"k{i}" for i in range(5)], cols=3, signed=True, title="kernels")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(shown) == 5 and [ax.get_title() for ax in shown] == [f"k{i}" for i in range(5)]
    assert shown[0].images[0].get_cmap().name == "RdBu_r" and fig._suptitle.get_text() == "kernels"


def test_image_grid_mixes_grey_digits_with_signed_maps_and_draws_maps_of_values_from_0_in_reds():
    digits, maps = torch.rand(2, 4, 4), torch.randn(2, 4, 4)
    fig = plots.image_grid([*digits, *maps], signed=[False, False, True, True], shared=True, cols=4)
    assert [ax.images[0].get_cmap().name for ax in fig.axes] == ["gray_r", "gray_r", "RdBu_r", "RdBu_r"]
    top = float(maps.abs().max())
    assert fig.axes[2].images[0].get_clim() == pytest.approx((-top, top)), "the maps' scale, not the digits'"
    relu_maps = torch.rand(3, 4, 4) * torch.tensor([1.0, 2.0, 4.0]).view(3, 1, 1)
    fig = plots.image_grid(relu_maps, signed=True, shared=True, cols=3)
    assert {ax.images[0].get_cmap().name for ax in fig.axes} == {"Reds"}
    assert all(ax.images[0].get_clim() == pytest.approx((0, float(relu_maps.max()))) for ax in fig.axes)


def test_a_point_below_the_accuracy_axis_is_named_on_the_figure():
    history = [{"epoch": e, "train_loss": 1 / e, "test_loss": 1 / e, "train_accuracy": 99.0,
                "clean_train_loss": 1 / e, "clean_train_accuracy": 99.5, "test_accuracy": 99.2} for e in range(1, 10)]
    history[0].update(test_accuracy=90.0, clean_train_accuracy=91.0, train_accuracy=80.0)
    history[1].update(test_accuracy=96.0)
    acc_ax = plots.training_curves(history).axes[1]
    assert acc_ax.get_ylim()[0] == 97.0
    assert acc_ax.get_title() == "below 97%, off the axis: epochs 1-2"
    history = [dict(h, test_accuracy=99.2, clean_train_accuracy=99.5, train_accuracy=99.0) for h in history]
    assert not plots.training_curves(history).axes[1].get_title(), "nothing off the axis, no note"
    assert plots._epochs([1, 2, 3, 5, 7, 8]) == "1-3, 5, 7-8"


def test_seed_curves_name_each_kind_of_curve_once():
    runs = [{"seed": s, "history": [{"epoch": e, "test_accuracy": 99.0 + s / 100, "clean_train_accuracy": 99.5,
                                     "test_loss": 0.02, "clean_train_loss": 0.01} for e in range(1, 4)]}
            for s in range(1, 11)]
    fig = plots.seed_curves(runs)
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["clean train, seed 1", "test, seed 1", "clean train, the other seeds", "test, the other seeds",
                      "goal 99.40%"]
    assert len(fig.axes[1].lines) == 2 * 10 + 1, "every seed drawn, the goal line"


def test_parameters_by_layer_names_both_kinds_where_two_networks_differ():
    fig = plots.parameters_by_layer({"dense": build_model("dropout"), "gap": build_model("gap")})
    assert fig.axes[0].get_xticklabels()[-1].get_text() == "linear / conv\nhead.1"
    assert [t.get_rotation() for t in fig.axes[0].texts] == [90.0] * len(fig.axes[0].texts)


def test_receptive_fields_draws_one_box_per_layer():
    fig = plots.receptive_fields(torch.zeros(28, 28), {"conv 1": (13, 13, 3, 3), "conv 5": (4, 4, 20, 20)})
    assert len(fig.axes[0].patches) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["conv 1: 3x3", "conv 5: 20x20"]


def test_activation_figures_take_one_panel_per_network(mnist):
    x, y = normalize(mnist.train_images[:16]), mnist.train_labels[:16]
    stats = {name: lessons.activation_stats(build_model(name), x, y) for name in ("baseline", "batchnorm")}
    assert len(plots.activation_histograms(stats).axes) == 2
    scales = plots.layer_scales(stats)
    assert len(scales.axes) == 3 and all(len(ax.get_lines()) == 2 for ax in scales.axes)


def test_line_and_bar_figures():
    assert len(plots.accuracy_by_batch_size([2, 8], [80.0, 95.0], 99.0).axes[0].get_lines()) == 2
    assert len(plots.accuracy_against([0, 0.5], [99.0, 97.0], "rate").axes[0].get_lines()) == 1
    assert len(plots.schedule_curves({"lr": [0.1, 0.2], "momentum": [0.9, 0.8]}, 1).axes) == 2
    fig = plots.gap_by_seed(SUMMARY, ["02_batchnorm", "03_dropout"])
    assert len(fig.axes[0].get_lines()) == 3  # two seeds and the mean
    pairs = plots.confusion_pairs({"a": [(9, 4, 3)], "b": [(4, 9, 1)]}, [(4, 9), (9, 4)])
    assert [round(p.get_height()) for p in pairs.axes[0].patches] == [0, 3, 1, 0]
    bars = plots.parameters_by_layer({"gap": build_model("gap")})
    assert len(bars.axes[0].patches) == 11  # the convolutions, BatchNorms and the head's 1x1 convolution


def test_class_maps_and_augmentation_strengths(mnist):
    maps = torch.zeros(2, 10, 5, 5)
    maps[0, 3], maps[0, 5] = 2.0, 1.0  # digit 0, a 3, read right; 5 the runner-up
    maps[1, 7], maps[1, 1] = 1.0, 3.0  # digit 1, a 7, read as a 1
    images = normalize(mnist.train_images[:2]).unsqueeze(1)
    fig = plots.class_maps(images, maps, torch.tensor([3, 7]))
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["digit 3", "true class 3: mean +2.0", "runner-up 5: mean +1.0",
                      "digit 7, read as 1", "true class 7: mean +1.0", "read as 1: mean +3.0"]
    drawn = [ax for ax in fig.axes if ax.images and ax.get_title().startswith(("true", "runner", "read"))]
    assert all(ax.collections for ax in drawn), "each map lies under the outline of the digit's ink"
    assert len(fig.axes) == 6 + 2, "a colour bar per digit"
    fig = plots.augmentation_strengths(mnist.train_images[:2], {"recipe": {}, "strong": {"degrees": 30.0}})
    assert len(fig.axes) == 2 * 5 and fig.axes[3].get_title() == "strong"


def test_step_curves_draw_each_steps_mean_and_name_what_runs_below_the_axis():
    summary = {"seeds": [1, 2], "steps": [
        {"notebook": "01_baseline", "runs": [{"test_accuracy_curve": [96.0, 98.5, 99.2]},
                                             {"test_accuracy_curve": [97.0, 99.1, 99.3]}]},
        {"notebook": "05_augmentation", "runs": [{"test_accuracy_curve": [98.2, 99.3, 99.5]},
                                                 {"test_accuracy_curve": [98.4, 99.2, 99.4]}]}]}
    ax = plots.step_curves(summary).axes[0]
    means = {line.get_label(): list(line.get_ydata()) for line in ax.lines}
    assert means["01_baseline (mean)"] == pytest.approx([96.5, 98.8, 99.25])
    assert [t.get_text() for t in ax.texts] == ["below 98%, off the axis: 01_baseline epoch 1"]
