"""The five teaching steps, each a small visible change from the one before.

All five share one convolutional trunk, built by :func:`trunk`. It pools early (28 -> 14 -> 7)
so most of the work happens on small maps: that is what makes a CPU epoch take seconds.

    step        change                                              head
    baseline    plain 3x3 convolutions + ReLU                       Flatten -> Linear(784, 10)
    batchnorm   + BatchNorm after every convolution                 Flatten -> Linear(784, 10)
    dropout     + Dropout after each stage                          Flatten -> Linear(784, 10)
    gap         1x1 convolution + global average pooling (no Linear) Conv1x1 -> GAP
    final       the gap network with lighter dropout, because it is trained with
                augmentation, which now does most of the regularising
"""
from __future__ import annotations

import torch
from torch import nn

INPUT_SHAPE = (1, 28, 28)


def conv_block(cin: int, cout: int, *, batchnorm: bool) -> list[nn.Module]:
    """3x3 convolution (padding 1 keeps the size) -> [BatchNorm] -> ReLU."""
    if not batchnorm:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.ReLU()]
    # BatchNorm has its own shift, so the convolution's bias would be redundant.
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def trunk(*, batchnorm: bool, dropout: float) -> nn.Sequential:
    """28x28x1 -> 7x7x16; receptive field 30 pixels, so the last layer sees the whole digit."""
    def drop():  # applied on 7x7 maps, where it is cheapest
        return [nn.Dropout(dropout)] if dropout else []

    return nn.Sequential(
        *conv_block(1, 8, batchnorm=batchnorm),  # 28x28, edges and strokes
        nn.MaxPool2d(2),  # 14x14
        *conv_block(8, 12, batchnorm=batchnorm),
        *conv_block(12, 16, batchnorm=batchnorm),
        nn.MaxPool2d(2),  # 7x7
        *drop(),
        *conv_block(16, 16, batchnorm=batchnorm),
        *conv_block(16, 16, batchnorm=batchnorm),
        *drop(),
    )


def dense_head() -> nn.Sequential:
    """Flatten the 7x7x16 map and classify with one Linear layer: 7,850 parameters."""
    return nn.Sequential(nn.Flatten(), nn.Linear(16 * 7 * 7, 10))


def gap_head() -> nn.Sequential:
    """1x1 convolution to 10 class maps, then global average pooling: 170 parameters."""
    return nn.Sequential(nn.Conv2d(16, 10, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())


def check_input(x: torch.Tensor) -> None:
    """Refuse anything that is not a float batch of 1x28x28 images, with a message that says why."""
    expected = "float tensor of shape (N, 1, 28, 28)"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"expected a {expected}, got dtype {x.dtype}; convert with x.float()")
    if x.ndim != 4:
        raise ValueError(f"expected a {expected}, got {x.ndim} dimensions {tuple(x.shape)}")
    if x.shape[1] != 1:
        raise ValueError(f"expected 1 input channel (N, 1, 28, 28), got {x.shape[1]} channels {tuple(x.shape)}")
    if tuple(x.shape[2:]) != (28, 28):
        raise ValueError(f"expected 28x28 images (N, 1, 28, 28), got {x.shape[2]}x{x.shape[3]} {tuple(x.shape)}")


class MnistNet(nn.Module):
    """features -> head, behind an input check. Subclasses only choose the two parts."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x)
        return self.head(self.features(x))


class BaselineNet(MnistNet):
    """Step 1: plain convolutions and a dense head."""

    def __init__(self):
        super().__init__(trunk(batchnorm=False, dropout=0.0), dense_head())


class BatchNormNet(MnistNet):
    """Step 2: + BatchNorm, which keeps every layer's inputs well scaled, so it trains faster."""

    def __init__(self):
        super().__init__(trunk(batchnorm=True, dropout=0.0), dense_head())


class DropoutNet(MnistNet):
    """Step 3: + Dropout, which narrows the gap between train and test accuracy."""

    def __init__(self, dropout: float = 0.1):
        super().__init__(trunk(batchnorm=True, dropout=dropout), dense_head())


class GapNet(MnistNet):
    """Step 4: the dense head (7,850 parameters) becomes 1x1 conv + GAP (170 parameters)."""

    def __init__(self, dropout: float = 0.1):
        super().__init__(trunk(batchnorm=True, dropout=dropout), gap_head())


class FinalNet(GapNet):
    """Step 5: the gap network; augmentation now regularises, so dropout is lighter."""

    def __init__(self, dropout: float = 0.05):
        super().__init__(dropout=dropout)


MODELS = {
    "baseline": BaselineNet,
    "batchnorm": BatchNormNet,
    "dropout": DropoutNet,
    "gap": GapNet,
    "final": FinalNet,
}


def build_model(name: str) -> MnistNet:
    """A fresh model for the teaching step ``name`` (one of :data:`MODELS`)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name]()
