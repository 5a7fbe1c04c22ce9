"""The concept sections' computations: what a layer does, measured on the real code, data and networks.

The notebooks show each concept working before they train a step: a convolution, the receptive
field, BatchNorm's statistics, a Dropout mask, class activation maps, a network's mistakes. What
needs a trained network reads one of the small trained networks stored in results/lessons/
(``trained``), so that a notebook run alone, on a fresh clone or in quick mode, shows the same
figures. ``python -m tools.lesson_weights`` trains and stores them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from torch import nn

from . import REPO_ROOT, results, shown_path
from .config import Config, recipe, stored_settings
from .data import TRAIN_SIZE
from .models import build_model
from .settings import RunError
from .summary import layer_table

# --------------------------------------------------------------------------------------------------
# The stored trained networks (results/lessons/<model>.pt)
# --------------------------------------------------------------------------------------------------

LESSON_DIR = REPO_ROOT / "results" / "lessons"
LESSON_MODELS = ("baseline", "batchnorm", "dropout", "gap", "final")  # each notebook looks inside its own step
LESSON_HOLDOUT = 10_000  # trained on the first 50,000 images: their mistakes are read on the other 10,000
LESSON_SEED = 1


def lesson_config(model: str) -> Config:
    """How a stored lesson network is trained: the step's recipe, seed 1, the last 10,000 training
    images held out as a validation split (what a notebook looks at to motivate a choice is never the test set)."""
    return recipe(model, seed=LESSON_SEED, holdout=LESSON_HOLDOUT)


def weights_path(model: str, folder: str | Path = LESSON_DIR) -> Path:
    return Path(folder) / f"{model}.pt"


def comparable_settings(config: dict) -> dict:
    """A stored config as today's code reads it, without where the data lives or which device ran it."""
    return {k: v for k, v in stored_settings(config).items() if k not in ("data_root", "device")}


def trained(model: str, folder: str | Path = LESSON_DIR) -> tuple[nn.Module, dict]:
    """The stored trained network of step ``model`` in eval mode, on the CPU, and its record (config,
    validation accuracy, command), read through ``utils.results`` (``weights_only=True``); a missing or
    damaged file, or another network's, is a RunError that says how to make it."""
    path = weights_path(model, folder)
    remake = "python -m tools.lesson_weights"
    record = results.load(path, results.LESSON, remake)
    if record is None:
        raise RunError(f"{shown_path(path)} not found: `{remake}` trains and stores it")
    if record["model"] != model:
        raise RunError(f"{shown_path(path)} holds step '{record['model']}', not '{model}'; `{remake}` stores it")
    try:
        net = build_model(model, stored_settings(record["config"])["dropout"])
        net.load_state_dict(record["model_state"])
    except (RuntimeError, RunError) as exc:  # another network's weights, or a setting this code cannot read
        raise RunError(f"{shown_path(path)} does not fit the '{model}' network of utils/models.py "
                       f"({str(exc).splitlines()[0]}); `{remake}` stores it again") from None
    expected = comparable_settings(dataclasses.asdict(lesson_config(model)))
    if comparable_settings(record["config"]) != expected:
        record["stale"] = (f"note: {shown_path(path)} was trained with other settings than the recipe now; "
                           f"re-run `{remake}`")
    return net.eval(), record


def describe_trained(record: dict) -> str:
    """One line naming a stored network: which step, how it was trained, and its validation accuracy."""
    cfg = record["config"]
    line = (f"step '{record['model']}', seed {cfg['seed']}, {cfg['epochs']} epochs on the first "
            f"{TRAIN_SIZE - cfg['holdout']:,} training images; validation accuracy (the last {cfg['holdout']:,}) "
            f"{record['final_val_accuracy']:.2f}% [{shown_path(weights_path(record['model']))}]")
    return line + (f"\n{record['stale']}" if record.get("stale") else "")


# --------------------------------------------------------------------------------------------------
# Looking inside a network: every layer's output, the receptive field
# --------------------------------------------------------------------------------------------------

def layer_outputs(model: nn.Module, x: torch.Tensor, kinds: tuple = (nn.Conv2d,)) -> dict[str, torch.Tensor]:
    """The output of every layer of ``model.features`` of one of ``kinds``, by name (``features.3``),
    for the batch ``x``, in the model's current mode and without gradients."""
    outputs: dict[str, torch.Tensor] = {}
    handles = [m.register_forward_hook(lambda mod, inp, out, name=name: outputs.__setitem__(name, out.detach()))
               for name, m in model.named_modules() if name.startswith("features.") and isinstance(m, kinds)]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for h in handles:
            h.remove()
    return outputs


def measured_receptive_field(model: nn.Module, layer: str, x: torch.Tensor) -> tuple[int, int, int, int]:
    """The receptive field of layer ``layer`` measured, not computed: the box (top, left, height, width)
    of input pixels on which the output at the centre of its map depends, i.e. where the gradient of
    that output is non-zero for some image of ``x`` (one image's max-pools and ReLUs let only part of
    the field through, so it takes a batch)."""
    module = dict(model.named_modules())[layer]
    seen: dict[str, torch.Tensor] = {}
    handle = module.register_forward_hook(lambda mod, inp, out: seen.__setitem__("out", out))
    was_training = model.training
    model.eval()
    x = x.detach().clone().requires_grad_(True)
    try:
        model(x)
        out = seen["out"]
        centre = out.shape[-1] // 2
        out[:, :, centre, centre].sum().backward()
    finally:
        handle.remove()
        model.train(was_training)
        model.zero_grad(set_to_none=True)
    touched = (x.grad.abs().sum(dim=(0, 1)) > 0).nonzero()
    (top, left), (bottom, right) = touched.min(0).values.tolist(), touched.max(0).values.tolist()
    return top, left, bottom - top + 1, right - left + 1


def bounding_boxes(images: torch.Tensor) -> torch.Tensor:
    """Height and width (N, 2) of the smallest box around each image's non-zero pixels (its ink)."""
    ink = images.reshape(images.shape[0], images.shape[-2], images.shape[-1]) > 0
    def extent(mask):  # rows (or columns) holding ink: last minus first, plus one
        idx = torch.arange(mask.shape[1]).expand_as(mask)
        return idx.masked_fill(~mask, -1).max(1).values - idx.masked_fill(~mask, mask.shape[1]).min(1).values + 1
    return torch.stack([extent(ink.any(2)), extent(ink.any(1))], 1)


def ink_in_field(images: torch.Tensor, top: int, size: int) -> tuple[float, float, float]:
    """How much of the digits' ink a field of ``size`` x ``size`` pixels at (``top``, ``top``) sees: the share of
    images whose ink lies wholly inside it, and the mean and the lowest share of an image's ink that lies inside
    (blank images left out)."""
    ink = images.reshape(images.shape[0], images.shape[-2], images.shape[-1]) > 0
    ink = ink[ink.any(2).any(1)]  # a blank image has no ink to place: it counts for nothing
    inside = ink[:, top:top + size, top:top + size].sum((1, 2)).float() / ink.sum((1, 2)).float()
    return float((inside == 1).float().mean()), float(inside.mean()), float(inside.min())


# --------------------------------------------------------------------------------------------------
# Activations and gradients, layer by layer (02)
# --------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class LayerStats:
    name: str  # the ReLU's name in the model, e.g. features.4
    values: torch.Tensor  # the ReLU's input (what BatchNorm, if any, hands it), flattened
    zero: float  # share of the ReLU's outputs that are exactly 0
    grad_std: float  # standard deviation of the loss gradient at the ReLU's input
    weight_grad_ratio: float  # of the convolution before it: std(gradient) / std(weight)


def activation_stats(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[LayerStats]:
    """One forward and backward pass of ``model`` in training mode on the batch (x, y): for every ReLU
    of the trunk, the values that enter it, how many it zeroes, the gradient that flows back into it,
    and how large the gradient of the convolution before it is against its weights."""
    import torch.nn.functional as F

    inputs: dict[str, torch.Tensor] = {}

    def keep(name):
        def hook(mod, inp):
            inp[0].retain_grad()
            inputs[name] = inp[0]
        return hook

    relus = [(n, m) for n, m in model.named_modules() if n.startswith("features.") and isinstance(m, nn.ReLU)]
    convs = [m for n, m in model.named_modules() if n.startswith("features.") and isinstance(m, nn.Conv2d)]
    handles = [m.register_forward_pre_hook(keep(n)) for n, m in relus]
    model.train()
    model.zero_grad(set_to_none=True)
    try:
        F.cross_entropy(model(x), y).backward()
    finally:
        for h in handles:
            h.remove()
    rows = [LayerStats(name=n, values=inputs[n].detach().flatten(), zero=float((inputs[n] <= 0).float().mean()),
                       grad_std=float(inputs[n].grad.std()),
                       weight_grad_ratio=float(c.weight.grad.std() / c.weight.detach().std()))
            for (n, _), c in zip(relus, convs, strict=True)]
    model.zero_grad(set_to_none=True)
    return rows


def kaiming_init(model: nn.Module) -> nn.Module:
    """``model`` with every convolution and linear layer re-drawn by He (Kaiming) initialisation for ReLU:
    normal weights of variance 2 / fan_in, zero biases, which keeps the scale of the signal from layer to layer
    (PyTorch's default draws uniform weights of variance 1 / (3 fan_in), a third of what keeps it)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


class DynamicsRecorder:
    """Training dynamics, layer by layer, recorded while ``utils.train.train`` runs: pass it as the progress
    reporter (``train(cfg, out, model=model, progress=lambda *_: recorder)``). After every optimisation step it
    records each convolution's update:data ratio, the size of the step against the size of the weights,
    std(w_after - w_before) / std(w_before); at the steps of ``at_steps`` also, for every ReLU of the trunk, the
    spread of the values entering it, the share it zeroes and the spread of the gradient flowing back into it."""

    def __init__(self, model: nn.Module, at_steps):
        self.at, self.step, self.captured = set(at_steps), 0, {}
        self.convs = [m for n, m in model.named_modules() if n.startswith("features.") and isinstance(m, nn.Conv2d)]
        relus = [(n, m) for n, m in model.named_modules() if n.startswith("features.") and isinstance(m, nn.ReLU)]
        self.handles = [m.register_forward_pre_hook(self.capture(n)) for n, m in relus]
        self.before = [c.weight.detach().clone() for c in self.convs]
        self.ratios: list[list[float]] = []  # per step, per convolution
        self.snapshots: dict[int, list[tuple[str, float, float, float]]] = {}  # step -> (ReLU, std, zero, grad std)

    def capture(self, name):
        def hook(module, inputs):
            if self.step in self.at and inputs[0].requires_grad:  # a training step, not evaluation
                inputs[0].retain_grad()
                self.captured[name] = inputs[0]
        return hook

    def update(self, steps: int = 1) -> None:
        after = [c.weight.detach() for c in self.convs]
        self.ratios.append([float((a - b).std() / b.std()) for a, b in zip(after, self.before, strict=True)])
        if self.step in self.at:
            self.snapshots[self.step] = [(name, float(t.detach().std()), float((t <= 0).float().mean()),
                                          float(t.grad.std())) for name, t in self.captured.items()]
        self.before, self.captured, self.step = [a.clone() for a in after], {}, self.step + 1

    def write(self, line: str) -> None:
        pass

    def close(self) -> None:
        for h in self.handles:
            h.remove()


def swap_batchnorm(model: nn.Module, make) -> nn.Module:
    """``model`` with every ``nn.BatchNorm2d`` replaced by ``make(channels)`` (e.g. a BatchNorm written by hand)."""
    for parent in list(model.modules()):
        for name, child in parent.named_children():
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, make(child.num_features))
    return model


# --------------------------------------------------------------------------------------------------
# BatchNorm's running statistics (02)
# --------------------------------------------------------------------------------------------------

def batchnorms(model: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def bn_train_mode_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Accuracy % of ``model`` on (x, y) when its BatchNorm layers run in training mode (each batch of
    ``batch_size`` images normalised by its own statistics), Dropout off. On a copy: training mode
    would overwrite the running statistics."""
    import copy

    net = copy.deepcopy(model).eval()
    for m in batchnorms(net):
        m.train()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(y), batch_size):
            correct += int((net(x[i:i + batch_size]).argmax(1) == y[i:i + batch_size]).sum())
    return 100.0 * correct / len(y)


def running_statistics_from_training(model: nn.Module, cfg: Config, data, batches: int = 50) -> nn.Module:
    """A copy of ``model`` whose BatchNorm running statistics are what training itself leaves: the usual
    update (momentum 0.1) over ``batches`` mini-batches of the last epoch, drawn as training draws them
    (augmented when the recipe augments, Dropout on). The weights are the trained ones, untouched."""
    import copy

    from .train import batches as training_batches

    net = copy.deepcopy(model).train()
    with torch.no_grad():
        for i, (xb, _) in enumerate(training_batches(data, cfg, cfg.epochs)):
            if i == batches:
                break
            net(xb)
    return net.eval()


# --------------------------------------------------------------------------------------------------
# Dropout (03)
# --------------------------------------------------------------------------------------------------

def accuracy_with_dropout_on(model: nn.Module, x: torch.Tensor, y: torch.Tensor, p: float, seed: int = 0) -> float:
    """Accuracy % of ``model`` on (x, y) with its Dropout layers left in training mode at rate ``p`` (BatchNorm
    in evaluation mode): what scoring without ``model.eval()`` would do. On a copy; the draws follow ``seed``."""
    import copy

    net = copy.deepcopy(model).eval()
    for m in net.modules():
        if isinstance(m, nn.Dropout):
            m.p = p
            m.train()
    torch.manual_seed(seed)
    with torch.no_grad():
        return 100.0 * int((net(x).argmax(1) == y).sum()) / len(y)


# --------------------------------------------------------------------------------------------------
# The GAP head (04) and a network's mistakes (05)
# --------------------------------------------------------------------------------------------------

def class_activation_maps(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The class scores of a GAP network at every position of its last map, before the average:
    (N, 10, 5, 5), and their average over the positions, (N, 10), which are the network's outputs.
    The head's 1x1 convolution is applied to the map first, then averaged: both are linear, so the
    order does not change the result."""
    head = list(model.head)
    if len(head) != 3 or not isinstance(head[0], nn.AdaptiveAvgPool2d) or not isinstance(head[1], nn.Conv2d):
        raise ValueError("class activation maps need a GAP head: global average pooling, then a 1x1 convolution")
    conv = head[1]
    model.eval()
    with torch.no_grad():
        maps = conv(model.features(x))
    return maps, maps.mean(dim=(2, 3))


def shift_image(images: torch.Tensor, pixels: int, fill: float) -> torch.Tensor:
    """``images`` (..., H, W) moved ``pixels`` to the right (left if negative), the uncovered columns ``fill``."""
    out = torch.roll(images, pixels, dims=-1)
    if pixels > 0:
        out[..., :pixels] = fill
    elif pixels < 0:
        out[..., pixels:] = fill
    return out


def answers_under_moves(model: nn.Module, x: torch.Tensor, fill: float, angles=(-5.0, 0.0, 5.0),
                        shifts=(-1, 0, 1), scales=(0.95, 1.0, 1.05)) -> torch.Tensor:
    """The digit ``model`` reads in each image of ``x`` after every combination of a rotation (degrees), a
    whole-pixel shift in x and in y, and a scale: (N, moves), in evaluation mode. With the defaults the
    moves are the corners and centres of the recipe's augmentation ranges (81 moves)."""
    from .augment import affine_theta, apply_affine

    moves = [(a, dx, dy, s) for a in angles for dx in shifts for dy in shifts for s in scales]
    angle = torch.tensor([m[0] for m in moves], dtype=torch.float32)
    shift = torch.tensor([[m[1], m[2]] for m in moves], dtype=torch.float32)
    scale = torch.tensor([m[3] for m in moves], dtype=torch.float32)
    theta = affine_theta(angle, shift, scale, x.shape[-1]).repeat(len(x), 1, 1)
    moved = apply_affine(x.repeat_interleave(len(moves), dim=0), theta, fill=fill)
    model.eval()
    with torch.no_grad():
        answers = torch.cat([model(moved[i:i + 2000]).argmax(1) for i in range(0, len(moved), 2000)])
    return answers.reshape(len(x), len(moves))


def margins(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """How sure the network is of each answer: the score of the true digit minus the highest other score
    (negative: a mistake), in evaluation mode."""
    model.eval()
    with torch.no_grad():
        scores = torch.cat([model(x[i:i + 2000]) for i in range(0, len(x), 2000)])
    true = scores.gather(1, y[:, None]).squeeze(1)
    return true - scores.scatter(1, y[:, None], float("-inf")).max(1).values


def matched_by_margin(margin: torch.Tensor, wrong: torch.Tensor) -> torch.Tensor:
    """For each mistake (indices ``wrong``, negative margins), the correctly read image whose margin is nearest to
    the mistake's distance from the boundary, each used once: a control group as close to the boundary."""
    right = (margin > 0).nonzero().flatten()
    if len(right) < len(wrong):
        raise ValueError(f"{len(wrong)} mistakes but only {len(right)} correctly read images to match them with: "
                         "pass more images")
    free = torch.ones(len(right), dtype=torch.bool)
    chosen = []
    for i in wrong[margin[wrong].abs().argsort()].tolist():  # the closest mistakes pick first
        gap = (margin[right] - margin[i].abs()).abs().masked_fill(~free, float("inf"))
        j = int(gap.argmin())
        free[j] = False
        chosen.append(int(right[j]))
    return torch.tensor(chosen, dtype=torch.long)


def shifted_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, shifts, fill: float) -> list[float]:
    """Accuracy % of ``model`` on ``x`` moved by each of ``shifts`` pixels to the right (left if negative)."""
    model.eval()
    with torch.no_grad():
        return [100.0 * float((model(shift_image(x, s, fill)).argmax(1) == y).float().mean()) for s in shifts]


def top_confusions(predictions: torch.Tensor, labels: torch.Tensor, k: int = 5) -> list[tuple[int, int, int]]:
    """The ``k`` most frequent mistakes as (true digit, predicted digit, count), most frequent first
    (ties: lower true digit first)."""
    wrong = predictions.cpu() != labels.cpu()
    pairs = torch.stack([labels.cpu()[wrong], predictions.cpu()[wrong]], 1)
    if len(pairs) == 0:
        return []
    found, counts = pairs.unique(dim=0, return_counts=True)
    order = sorted(range(len(counts)), key=lambda i: (-int(counts[i]), int(found[i, 0]), int(found[i, 1])))
    return [(int(found[i, 0]), int(found[i, 1]), int(counts[i])) for i in order[:k]]


def multiply_adds(model: nn.Module) -> list[tuple[str, str, tuple, int, int]]:
    """Per convolution or linear layer: (name, kind, output shape, output positions, weights); one image
    costs positions x weights multiply-adds there (each output position applies every weight once)."""
    modules = dict(model.named_modules())
    rows = []
    for row in layer_table(model):
        layer = modules[row.name]
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            positions = row.output_shape[1] * row.output_shape[2] if isinstance(layer, nn.Conv2d) else 1
            rows.append((row.name, row.kind, row.output_shape, positions, layer.weight.numel()))
    return rows
