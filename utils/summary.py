"""Parameter count and the per-layer table of output size and receptive field, computed from a model."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .models import INPUT_SHAPE


def count_parameters(model: nn.Module) -> int:
    """Every parameter of the module that runs, trainable or not."""
    return sum(p.numel() for p in model.parameters())


@dataclass
class LayerRow:
    name: str  # dotted path in the model, e.g. "features.0"
    kind: str  # class name, e.g. "Conv2d"
    output_shape: tuple[int, ...]  # without the batch dimension
    params: int
    receptive_field: int  # pixels of the input seen by one output position
    jump: int  # input pixels between neighbouring output positions


def _window(module: nn.Module, in_size: int) -> tuple[int, int, int]:
    """(kernel, stride, dilation) of a layer along one axis; (1, 1, 1) for pointwise layers."""
    if isinstance(module, (nn.Conv2d, nn.MaxPool2d, nn.AvgPool2d)):
        def first(v):
            return v[0] if isinstance(v, tuple) else v

        kernel, stride = first(module.kernel_size), first(module.stride)
        dilation = first(getattr(module, "dilation", 1))
        return kernel, stride, dilation
    if isinstance(module, (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Flatten)):
        # A global pool to 1x1 is a window over the whole input map; so is flattening a map for a
        # Linear layer, each of whose outputs then sees every position.
        return in_size, in_size, 1
    return 1, 1, 1


def layer_table(model: nn.Module) -> list[LayerRow]:
    """Run one (1, 1, 28, 28) probe in eval mode and record every leaf layer, in execution order.

    The receptive field grows by ``(kernel - 1) * dilation * jump`` at each layer, and the jump
    (distance between neighbouring outputs, in input pixels) multiplies by the stride.
    """
    rows: list[LayerRow] = []
    state = {"rf": 1, "jump": 1}
    names = {m: n for n, m in model.named_modules()}

    def hook(module, inputs, output):
        in_size = inputs[0].shape[-1] if inputs[0].ndim == 4 else 1
        kernel, stride, dilation = _window(module, in_size)
        state["rf"] += (kernel - 1) * dilation * state["jump"]
        state["jump"] *= stride
        rows.append(
            LayerRow(
                name=names[module],
                kind=type(module).__name__,
                output_shape=tuple(output.shape[1:]),
                params=sum(p.numel() for p in module.parameters(recurse=False)),
                receptive_field=state["rf"],
                jump=state["jump"],
            )
        )

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    was_training = model.training
    device = next(model.parameters()).device
    try:
        model.eval()
        with torch.no_grad():
            model(torch.zeros(1, *INPUT_SHAPE, device=device))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return rows


def format_layer_table(rows: list[LayerRow]) -> str:
    lines = [f"{'layer':<14}{'type':<19}{'output':>14}{'params':>9}{'RF':>5}{'jump':>6}"]
    for r in rows:
        shape = "x".join(str(d) for d in r.output_shape)
        lines.append(f"{r.name:<14}{r.kind:<19}{shape:>14}{r.params:>9,}{r.receptive_field:>5}{r.jump:>6}")
    total = sum(r.params for r in rows)
    lines.append(f"{'total':<14}{'':<19}{'':>14}{total:>9,}")
    return "\n".join(lines)


def describe(model: nn.Module) -> str:
    """Parameter count plus the layer table, as printed by the CLI and the notebooks."""
    return f"parameters: {count_parameters(model):,}\n{format_layer_table(layer_table(model))}"
