"""utils.summary: the layer table (each layer's output shape from a real forward pass, its parameters and its
receptive field), worked by hand for the final network, and a model left as it was."""
import pytest
import torch

from utils.models import MODELS, build_model
from utils.summary import count_parameters, layer_table


@pytest.mark.parametrize("name", list(MODELS))
def test_layer_table_shapes_come_from_a_real_forward(name):
    model = build_model(name).eval()
    seen = []  # output shapes recorded independently, with our own hooks on every leaf layer
    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(lambda m, i, o: seen.append((type(m).__name__, tuple(o.shape[1:]))))
               for m in leaves]
    with torch.no_grad():
        model(torch.zeros(1, 1, 28, 28))
    for h in handles:
        h.remove()
    rows = layer_table(model)
    assert [(r.kind, r.output_shape) for r in rows] == seen
    assert rows[-1].output_shape == (10,)
    assert sum(r.params for r in rows) == count_parameters(model)


def test_layer_table_of_the_final_model():
    model = build_model("final")
    rows = layer_table(model)
    convs = [r for r in rows if r.kind == "Conv2d"]
    # unpadded 3x3 convolutions: 28 -> 26, pooled to 13, then 11, 9, 7, 5; the head's 1x1 after GAP
    assert [r.output_shape[-1] for r in convs] == [26, 11, 9, 7, 5, 1]
    # worked by hand: 3; the 2x2 pool adds 1 and doubles the jump; each 3x3 then adds 2 x 2 = 4;
    # GAP over the 5x5 map adds (5 - 1) x 2 = 8, so the prediction sees all 28 pixels
    assert [r.receptive_field for r in convs] == [3, 8, 12, 16, 20, 28]
    assert rows[-1].receptive_field >= 28, "the prediction must see the whole digit"
    rf = [r.receptive_field for r in rows]
    assert rf == sorted(rf), "receptive field never shrinks"


def test_a_dense_head_sees_the_whole_map_too():
    rows = layer_table(build_model("baseline"))
    flatten, linear = rows[-2], rows[-1]
    assert (flatten.kind, linear.kind) == ("Flatten", "Linear")
    assert rows[-3].receptive_field == 20 and flatten.receptive_field == linear.receptive_field == 28


@pytest.mark.parametrize("training", [True, False])
def test_layer_table_leaves_the_model_untouched(training):
    torch.manual_seed(0)
    model = build_model("final")
    model(torch.randn(16, 1, 28, 28))  # non-trivial running statistics
    model.train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    layer_table(model)
    assert model.training == training and all(m.training == training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "BatchNorm running stats unchanged"
    assert not any(m._forward_hooks for m in model.modules()), "the probe's hooks are removed"
