"""The concept sections' figures (utils.plots): each draws what it is given, on small inputs."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pytest
import torch

from utils import lessons, plots
from utils.models import build_model

SUMMARY = {"seeds": [1, 2], "steps": [
    {"notebook": "02_batchnorm", "gap": {"mean": 0.45}, "runs": [{"gap": 0.5}, {"gap": 0.4}]},
    {"notebook": "03_dropout", "gap": {"mean": 0.35}, "runs": [{"gap": 0.4}, {"gap": 0.3}]}]}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_image_grid_titles_each_image_and_hides_spare_cells():
    fig = plots.image_grid(torch.randn(5, 3, 3), [f"k{i}" for i in range(5)], cols=3, signed=True, title="kernels")
    shown = [ax for ax in fig.axes if ax.images]
    assert len(fig.axes) == 6 and len(shown) == 5 and [ax.get_title() for ax in shown] == [f"k{i}" for i in range(5)]
    assert shown[0].images[0].get_cmap().name == "RdBu_r" and fig._suptitle.get_text() == "kernels"


def test_receptive_fields_draws_one_box_per_layer():
    fig = plots.receptive_fields(torch.zeros(28, 28), {"conv 1": (13, 13, 3, 3), "conv 5": (4, 4, 20, 20)})
    assert len(fig.axes[0].patches) == 2
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["conv 1: 3x3", "conv 5: 20x20"]


def test_activation_figures_take_one_panel_per_network(mnist):
    from utils.data import normalize

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
    maps = torch.randn(2, 10, 5, 5)
    fig = plots.class_maps(torch.zeros(2, 1, 28, 28), maps, torch.tensor([3, 7]))
    assert len(fig.axes) == 6 and fig.axes[1].get_title().startswith("class 3: mean")
    fig = plots.augmentation_strengths(mnist.train_images[:2], {"recipe": {}, "strong": {"degrees": 30.0}})
    assert len(fig.axes) == 2 * 5 and fig.axes[3].get_title() == "strong"
