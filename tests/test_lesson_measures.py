"""utils.lessons, the measures the concept sections added for issue 35, each on a small case whose answer is known by
hand: margins and a control group matched by margin, accuracy under shifts, the ink inside a receptive field,
He initialisation, a BatchNorm swapped for another layer, and the dynamics recorder that train() drives."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import quiet, tiny_config
from torch import nn

from utils import lessons
from utils.models import build_model

# --------------------------------------------------------------------------------------------------
# Margins, and correct images matched to the mistakes by margin (05)
# --------------------------------------------------------------------------------------------------


def test_margin_is_the_true_score_minus_the_best_other_one():
    scores = torch.tensor([[1.0, 3.0, 2.0, 0.0],  # true 1: right, 3 - 2
                           [5.0, 0.0, -1.0, 4.5],  # true 2: wrong, -1 - 5
                           [2.0, 2.0, 0.0, 1.0],  # true 0: a tie with digit 1, 2 - 2
                           [0.0, 0.0, 0.0, 9.0]])  # true 3: right, 9 - 0
    labels = torch.tensor([1, 2, 0, 3])
    assert lessons.margins(nn.Identity(), scores, labels).tolist() == [1.0, -6.0, 0.0, 9.0]


def test_margins_are_measured_in_evaluation_mode_over_every_chunk():
    """More than 2,000 images (scored in chunks), through a network whose Dropout would change the scores if it
    were left in training mode; against the margin computed another way: the two highest scores."""
    torch.manual_seed(0)
    scores = torch.randn(4_500, 10)
    labels = torch.randint(0, 10, (4_500,))
    network = nn.Sequential(nn.Dropout(0.5)).train()
    got = lessons.margins(network, scores, labels)
    top2 = scores.topk(2, dim=1).values
    true = scores[torch.arange(len(labels)), labels]
    expected = torch.where(scores.argmax(1) == labels, top2[:, 0] - top2[:, 1], true - top2[:, 0])
    assert got.shape == (4_500,) and torch.equal(got, expected)
    assert not network.training


def test_each_mistake_gets_the_correct_image_nearest_its_distance_from_the_boundary():
    margin = torch.tensor([-0.5, 2.0, 0.45, -3.0, 3.2, 0.1, 10.0, -0.05])
    wrong = torch.tensor([0, 3, 7])
    chosen = lessons.matched_by_margin(margin, wrong)
    # by hand: 0.05 (image 7) -> 0.1 (image 5); 0.5 (image 0) -> 0.45 (image 2); 3.0 (image 3) -> 3.2 (image 4)
    assert sorted(chosen.tolist()) == [2, 4, 5]
    assert chosen.dtype == torch.long


def test_each_correct_image_is_used_once_and_the_closest_mistakes_choose_first():
    #                      0     1     2    3    4
    margin = torch.tensor([-1.0, -2.0, 1.4, 3.0, 0.2])
    # closest first: 1.0 takes 1.4 (0.4 away, 0.2 is 0.8 away); 2.0 then takes 3.0 (1.0 away, 0.2 is 1.8 away).
    # (Farthest first would give 1.4 to 2.0 and 0.2 to 1.0; without the once-only rule both would take 1.4.)
    assert sorted(lessons.matched_by_margin(margin, torch.tensor([1, 0])).tolist()) == [2, 3]


def test_the_matched_group_lies_as_close_to_the_boundary_as_the_mistakes():
    """Many correct images at every distance, a few mistakes: each mistake finds a correct image at nearly its
    distance, and never one of the other mistakes."""
    torch.manual_seed(0)
    right = torch.linspace(0.01, 6.0, 600)
    mistakes = -torch.rand(25) * 5
    margin = torch.cat([right, mistakes])[torch.randperm(625)]
    wrong = (margin < 0).nonzero().flatten()
    chosen = lessons.matched_by_margin(margin, wrong)
    assert len(chosen) == len(wrong) == 25 and len(set(chosen.tolist())) == 25
    assert (margin[chosen] > 0).all()
    assert torch.allclose(margin[chosen].sort().values, margin[wrong].abs().sort().values, atol=0.05)


# --------------------------------------------------------------------------------------------------
# Accuracy under shifts (04)
# --------------------------------------------------------------------------------------------------

class BrightestColumn(nn.Module):
    """Reads the digit as the column of the brightest pixel of a 1 x 10 image; a Dropout that would blank almost
    every pixel if it were left in training mode."""

    def __init__(self):
        super().__init__()
        self.drop = nn.Dropout(0.999)

    def forward(self, x):
        return self.drop(x.flatten(1))


def test_shifted_accuracy_moves_right_for_positive_shifts_and_counts_percent():
    images = torch.zeros(4, 1, 1, 10)
    for i, column in enumerate([1, 3, 5, 8]):
        images[i, 0, 0, column] = 1.0
    labels = torch.tensor([3, 6, 7, 8])
    # shift 0: image 3 (column 8); +2: images 0 (1->3) and 2 (5->7); +3: image 1 (3->6), image 3 goes off the
    # edge and is filled, not wrapped round to column 1; -1: none
    torch.manual_seed(0)
    model = BrightestColumn().train()
    assert lessons.shifted_accuracy(model, images, labels, [0, 2, 3, -1], fill=0.0) == [25.0, 50.0, 25.0, 0.0]
    assert not model.training


# --------------------------------------------------------------------------------------------------
# The ink inside a receptive field (01)
# --------------------------------------------------------------------------------------------------

def test_ink_in_field_on_digits_drawn_by_hand():
    images = torch.zeros(3, 1, 28, 28, dtype=torch.uint8)
    images[0, 0, 10:14, 10:14] = 255  # wholly inside the 20 x 20 field at (4, 4): rows and columns 4..23
    images[1, 0, 0, 0:2] = 80  # two pixels outside (row 0)
    images[1, 0, 10, 10:12] = 80  # two inside: half of the ink
    images[2, 0, 4, 4] = images[2, 0, 23, 23] = 1  # the field's corners, inside
    images[2, 0, 24, 24] = images[2, 0, 5, 24] = 1  # one row past the field; column 24 is past it too
    whole, mean, least = lessons.ink_in_field(images, 4, 20)
    assert whole == pytest.approx(1 / 3)
    assert mean == pytest.approx((1 + 1 / 2 + 2 / 4) / 3)
    assert least == pytest.approx(1 / 2)


def test_ink_in_field_reads_normalised_images_without_a_channel():
    """Ink is what is above zero: normalised digits, whose background is negative, read as their raw pixels do."""
    images = torch.full((2, 28, 28), -0.42)
    images[0, 13:15, 13:15] = 2.8
    images[1, 13, 13] = images[1, 27, 27] = 2.8
    assert lessons.ink_in_field(images, 10, 8) == pytest.approx((0.5, 0.75, 0.5))


# --------------------------------------------------------------------------------------------------
# He initialisation, a BatchNorm swapped for another (02)
# --------------------------------------------------------------------------------------------------

def kurtosis(values: torch.Tensor) -> float:
    centred = values.double() - values.double().mean()
    return float((centred ** 4).mean() / (centred ** 2).mean() ** 2)


def test_kaiming_init_draws_normal_weights_of_variance_two_over_fan_in_and_zero_biases():
    torch.manual_seed(0)
    conv, linear, norm = nn.Conv2d(64, 128, 3), nn.Linear(1_000, 500), nn.BatchNorm2d(8)
    bare = nn.Conv2d(16, 256, 5, bias=False)
    model = nn.Sequential(conv, nn.ReLU(), nn.Sequential(linear, norm, bare))
    assert lessons.kaiming_init(model) is model
    for layer, fan_in in ((conv, 64 * 3 * 3), (linear, 1_000), (bare, 16 * 5 * 5)):
        weights = layer.weight.detach().flatten()
        assert float(weights.std()) == pytest.approx(math.sqrt(2 / fan_in), rel=0.03), layer
        assert abs(float(weights.mean())) < 0.03 * math.sqrt(2 / fan_in)
        assert kurtosis(weights) == pytest.approx(3.0, abs=0.15), "normal, not uniform (kurtosis 1.8)"
    assert torch.equal(conv.bias, torch.zeros(128)) and torch.equal(linear.bias, torch.zeros(500))
    assert bare.bias is None
    assert torch.equal(norm.weight, torch.ones(8)) and torch.equal(norm.bias, torch.zeros(8)), "BatchNorm untouched"


def test_kaiming_init_redraws_every_layer_of_a_course_network():
    torch.manual_seed(0)
    default = build_model("baseline")
    he = lessons.kaiming_init(build_model("baseline"))
    for (name, a), b in zip(default.named_modules(), he.modules(), strict=True):
        if isinstance(a, (nn.Conv2d, nn.Linear)):
            fan_in = a.weight[0].numel()
            # PyTorch's default: uniform, variance 1 / (3 fan_in); He: 2 / fan_in, six times the variance
            ratio = float(b.weight.detach().var() / a.weight.detach().var())
            assert 2.5 < ratio < 14, (name, ratio)
            bound = 1 / math.sqrt(fan_in)  # the default's uniform draw never passes it; a normal one does
            assert float(a.weight.detach().abs().max()) <= bound + 1e-6 < float(b.weight.detach().abs().max())
            assert b.bias is None or not b.bias.any()


class Marked(nn.Module):
    """A stand-in for a BatchNorm written by hand: remembers its channels, passes its input on."""

    def __init__(self, channels):
        super().__init__()
        self.channels = channels

    def forward(self, x):
        return x


def test_swap_batchnorm_replaces_every_batchnorm2d_and_keeps_the_rest():
    torch.manual_seed(0)
    model = build_model("batchnorm")
    before = dict(model.named_modules())
    norms = {name: m.num_features for name, m in before.items() if isinstance(m, nn.BatchNorm2d)}
    assert len(norms) >= 4
    assert lessons.swap_batchnorm(model, Marked) is model
    after = dict(model.named_modules())
    assert list(after) == list(before)
    for name, module in after.items():
        if name in norms:
            assert isinstance(module, Marked) and module.channels == norms[name], name
        else:  # every other layer, and every container, is the very same object
            assert module is before[name], name
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_swap_batchnorm_reaches_nested_layers_and_only_batchnorm2d():
    inner = nn.Sequential(nn.Conv2d(1, 3, 1), nn.BatchNorm2d(3))
    flat = nn.BatchNorm1d(5)
    model = nn.Sequential(nn.BatchNorm2d(1), inner, nn.Flatten(), flat)
    lessons.swap_batchnorm(model, Marked)
    assert isinstance(model[0], Marked) and model[0].channels == 1
    assert isinstance(model[1][1], Marked) and model[1][1].channels == 3
    assert model[3] is flat, "a BatchNorm1d is not a BatchNorm2d"


# --------------------------------------------------------------------------------------------------
# The dynamics recorder (02)
# --------------------------------------------------------------------------------------------------

class Tiny(nn.Module):
    """Two convolutions with ReLUs in ``features``, a head with a ReLU of its own (not the trunk's)."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 6, 3), nn.ReLU())
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 4 * 4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.head(self.features(x))


def by_hand(model: Tiny, x, y):
    """What the recorder should see at one step, computed without hooks: each ReLU's input, its spread, the share
    at or below zero, and the spread of the loss gradient at it."""
    conv1, _, conv2, _ = model.features
    z1 = conv1(x)
    z2 = conv2(F.relu(z1))
    loss = F.cross_entropy(model.head(F.relu(z2)), y)
    g1, g2 = torch.autograd.grad(loss, [z1, z2])
    return [(name, float(z.detach().std()), float((z <= 0).float().mean()), float(g.std()))
            for name, z, g in (("features.1", z1, g1), ("features.3", z2, g2))]


def test_the_recorder_measures_each_step_and_the_chosen_steps_activations():
    torch.manual_seed(0)
    model, lr = Tiny(), 0.5
    recorder = lessons.DynamicsRecorder(model, at_steps=(0, 2))
    opt = torch.optim.SGD(model.parameters(), lr=lr)  # no momentum: the step is -lr * gradient
    convs = [model.features[0], model.features[2]]
    expected_ratios, expected_snapshots = [], {}
    for step in range(3):
        x, y = torch.randn(16, 1, 8, 8), torch.randint(0, 3, (16,))
        if step in (0, 2):
            expected_snapshots[step] = by_hand(model, x, y)
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        expected_ratios.append([float((lr * c.weight.grad).std() / c.weight.detach().std()) for c in convs])
        opt.step()
        with torch.no_grad():  # an evaluation in between: not what the step's snapshot reads
            model(torch.randn(4, 1, 8, 8))
        recorder.update(1)
    recorder.close()

    assert len(recorder.ratios) == 3 and all(len(row) == 2 for row in recorder.ratios)
    for got, expected in zip(recorder.ratios, expected_ratios, strict=True):
        assert got == pytest.approx(expected, rel=1e-4)
    assert sorted(recorder.snapshots) == [0, 2]
    for step, rows in expected_snapshots.items():
        got = recorder.snapshots[step]
        assert [r[0] for r in got] == ["features.1", "features.3"], "the trunk's ReLUs, not the head's"
        for (name, std, zero, grad), (_, std_, zero_, grad_) in zip(got, rows, strict=True):
            assert (std, zero, grad) == pytest.approx((std_, zero_, grad_), rel=1e-5), (step, name)
    assert all(not m._forward_pre_hooks for m in model.modules()), "close() removes the hooks"


def test_the_recorder_reads_the_size_of_each_step_not_of_all_steps_so_far():
    """Steps of the same size, one after another: the same ratio each time (against the weights before that step)."""
    conv = nn.Conv2d(1, 1, 2, bias=False)
    model = nn.Module()
    model.features = nn.Sequential(conv)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]]))
    recorder = lessons.DynamicsRecorder(model, at_steps=())
    for _ in range(3):
        with torch.no_grad():
            before = conv.weight.clone()
            conv.weight.add_(torch.tensor([[[[0.0, 0.0], [0.0, 1.0]]]]))
        expected = float(torch.tensor([0.0, 0.0, 0.0, 1.0]).std() / before.std())
        recorder.update()
        assert recorder.ratios[-1] == pytest.approx([expected])
    assert recorder.snapshots == {}
    assert len({round(r[0], 6) for r in recorder.ratios}) == 3, "each step against the weights it started from"


def test_the_recorder_plugs_into_train_as_its_progress_reporter(tmp_path):
    """train() drives it: one ratio per optimisation step for each convolution of the trunk, the snapshot at the
    step asked for, the hooks gone when training ends."""
    from utils.train import train

    cfg = tiny_config(model="baseline", train_subset=256, epochs=1, batch_size=64, augment=False)
    torch.manual_seed(cfg.seed)
    model = build_model("baseline")
    recorder = lessons.DynamicsRecorder(model, at_steps=(1,))
    train(cfg, tmp_path / "run", model=model, progress=lambda *_: recorder, log=quiet)
    convs = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert len(recorder.ratios) == 256 // 64 and all(len(row) == len(convs) == 5 for row in recorder.ratios)
    assert all(0 < r < 1 for row in recorder.ratios for r in row)
    relus = [n for n, m in model.named_modules() if n.startswith("features.") and isinstance(m, nn.ReLU)]
    assert list(recorder.snapshots) == [1] and [r[0] for r in recorder.snapshots[1]] == relus
    assert all(0 <= zero <= 1 and std > 0 and grad > 0 for _, std, zero, grad in recorder.snapshots[1])
    assert all(not m._forward_pre_hooks for m in model.modules())


def test_matching_needs_a_correct_image_for_each_mistake_and_gives_indices_even_for_none():
    with pytest.raises(ValueError, match="2 mistakes but only 1 correctly read images"):
        lessons.matched_by_margin(torch.tensor([-1.0, -2.0, 0.5]), torch.tensor([0, 1]))
    none = lessons.matched_by_margin(torch.tensor([1.0, 2.0]), torch.tensor([], dtype=torch.long))
    assert none.dtype == torch.long and torch.zeros(2, 3)[none].shape == (0, 3)


def test_a_blank_image_leaves_ink_in_field_as_it_is():
    digit = torch.zeros(1, 6, 6)
    digit[0, 1:3, 1:3] = 1.0
    assert lessons.ink_in_field(torch.cat([digit, torch.zeros(1, 6, 6)]), 0, 4) == lessons.ink_in_field(digit, 0, 4)
