"""utils.models: the seed README's model checks, made meaningful, for every teaching step (the conftest
fixture ``model`` builds each one), what each step changes in the one before, and that the trunk tools.tune
chose builds the final network. What predict refuses for every step: test_predict.py; the layer table:
test_summary.py."""
import pytest
import torch
from torch import nn

from utils import MAX_PARAMS
from utils.models import DROPOUT, MODELS, STEPS, build_model
from utils.summary import count_parameters

NAMES = list(MODELS)


def test_single_image_gives_ten_logits(model):
    model.eval()
    assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("batch", [1, 4, 16, 32])
def test_batch_sizes(model, batch):
    model.eval()
    assert model(torch.randn(batch, 1, 28, 28)).shape == (batch, 10)
    if batch > 1:  # BatchNorm in training mode needs more than one value per channel
        model.train()
        assert model(torch.randn(batch, 1, 28, 28)).shape == (batch, 10)


def test_the_outputs_are_logits_for_cross_entropy(model):
    """cross_entropy applies log-softmax itself: a network that already ended in softmax or log-softmax
    would train on a squashed loss. Its outputs are unnormalised scores, not (log-)probabilities."""
    model.eval()
    logits = model(torch.randn(8, 1, 28, 28) * 3)
    for normalised in (logits, logits.exp()):
        assert not torch.allclose(normalised.sum(dim=1), torch.ones(8), atol=1e-3)
    assert (logits > 0).any(), "some scores are positive: no log-probabilities"


def test_gradients_reach_every_parameter(model):
    model.train()
    x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
    nn.functional.cross_entropy(model(x), y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"no gradient for {name}"
        assert p.grad.abs().sum() > 0, f"zero gradient for {name}"


def test_parameter_budgets():
    for name in NAMES:
        m = build_model(name)
        n = sum(p.numel() for p in m.parameters())
        assert n == count_parameters(m)
        assert n < 20_000, name
    assert count_parameters(build_model("final")) <= MAX_PARAMS == 8000


def test_final_has_batchnorm_dropout_average_pooling_and_no_linear():
    kinds = {type(m) for m in build_model("final").modules()}
    assert nn.BatchNorm2d in kinds
    assert nn.Dropout in kinds
    assert kinds & {nn.AdaptiveAvgPool2d, nn.AvgPool2d}
    assert nn.Linear not in kinds


def test_each_step_is_one_visible_change():
    def kinds(name):
        return {type(m) for m in build_model(name).modules()}

    assert nn.BatchNorm2d not in kinds("baseline") and nn.BatchNorm2d in kinds("batchnorm")
    assert nn.Dropout not in kinds("batchnorm") and nn.Dropout in kinds("dropout")
    assert nn.Linear in kinds("dropout") and nn.Linear not in kinds("gap")
    assert count_parameters(build_model("gap")) < count_parameters(build_model("dropout"))


def test_steps_keep_the_layer_order_of_the_step_before():
    """Each step is the previous one with layers inserted (BatchNorm, Dropout) or the head swapped:
    the layers both share appear in the same order, with the same shapes."""
    def layers(name, part):
        return [repr(m).replace(", bias=False", "") for m in getattr(build_model(name), part)]

    without_bn = [x for x in layers("batchnorm", "features") if not x.startswith("BatchNorm2d")]
    assert without_bn == layers("baseline", "features")
    assert [x for x in layers("dropout", "features") if not x.startswith("Dropout")] == layers("batchnorm", "features")
    assert layers("gap", "features") == layers("dropout", "features")
    assert layers("gap", "head") != layers("dropout", "head")


def test_conv_bias_only_where_no_batchnorm_follows():
    for name in NAMES:
        model = build_model(name)
        has_bn = any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        for conv in (m for m in model.features if isinstance(m, nn.Conv2d)):
            assert (conv.bias is None) == has_bn, name


def test_one_dropout_rate_for_steps_3_to_5():
    for name in ("dropout", "gap", "final"):
        rates = {m.p for m in build_model(name).modules() if isinstance(m, nn.Dropout)}
        assert rates == {DROPOUT}, name


def test_step_5_is_the_step_4_network():
    """Step 5 changes the training only: the same layers and, for a seed, the same initial weights."""
    final, gap = build_model("final"), build_model("gap")
    assert repr(final.features) == repr(gap.features) and repr(final.head) == repr(gap.head)
    torch.manual_seed(7)
    a = build_model("gap").state_dict()
    torch.manual_seed(7)
    b = build_model("final").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_steps_name_a_model_each_in_course_order():
    assert list(STEPS.values()) == list(MODELS)
    assert [int(stem[:2]) for stem in STEPS] == [1, 2, 3, 4, 5]


def test_unknown_model_name_lists_the_choices():
    with pytest.raises(ValueError, match="baseline, batchnorm, dropout, gap, final"):
        build_model("resnet")


def test_the_tuned_candidate_is_the_final_model():
    """results/tuning.md scored the trunk "q10 12 16 d 16 16 d" with tools/tune.py: it must be exactly
    build_model("final"), same layers in the same order and the same initial weights for a seed."""
    from tools import tune

    torch.manual_seed(3)
    candidate = tune.build("q10 12 16 d 16 16 d", dropout=DROPOUT)
    torch.manual_seed(3)
    final = build_model("final")
    assert [repr(m) for m in candidate.modules()][1:] == [repr(m) for m in final.modules()][1:]
    a, b = candidate.state_dict(), final.state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(ValueError, match="unknown token"):
        tune.build("q10 x12")
