"""The five teaching steps, each a small visible change from the one before.

All five share one convolutional trunk, built by :func:`trunk`: 3x3 convolutions without
padding (28 -> 26 -> 24, widening to 20 channels), one 2x2 max-pool (-> 12), a cheap 1x1
convolution that squeezes the channels to 8, then three more 3x3 convolutions (-> 10 -> 8 -> 6).

    step        change                                               head
    baseline    plain 3x3 convolutions + ReLU                        Flatten -> Linear(576, 10)
    batchnorm   + BatchNorm after every convolution                  Flatten -> Linear(576, 10)
    dropout     + Dropout in the middle and at the end of the trunk  Flatten -> Linear(576, 10)
    gap         global average pooling + 1x1 conv (no Linear)        GAP -> Conv1x1
    final       the gap network, trained with augmentation and a one-cycle LR schedule
"""
from __future__ import annotations

import torch
from torch import nn

INPUT_SHAPE = (1, 28, 28)


def conv_block(cin: int, cout: int, *, batchnorm: bool, kernel: int = 3) -> list[nn.Module]:
    """Convolution without padding (a 3x3 one trims a pixel from each side) -> [BatchNorm] -> ReLU."""
    if not batchnorm:
        return [nn.Conv2d(cin, cout, kernel), nn.ReLU()]
    # BatchNorm has its own shift, so the convolution's bias would be redundant.
    return [nn.Conv2d(cin, cout, kernel, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]


def trunk(*, batchnorm: bool, dropout: float) -> nn.Sequential:
    """28x28x1 -> 6x6x16. A last-layer position sees 18x18 pixels; averaging the 6x6 map covers all 28."""

    def drop():
        return [nn.Dropout(dropout)] if dropout else []

    return nn.Sequential(
        *conv_block(1, 8, batchnorm=batchnorm),  # 26x26: edges and strokes
        *conv_block(8, 20, batchnorm=batchnorm),  # 24x24: the widest layer, where the detail is
        nn.MaxPool2d(2),  # 12x12
        *conv_block(20, 8, batchnorm=batchnorm, kernel=1),  # 12x12, 1x1: mix channels, squeeze them cheaply
        *conv_block(8, 16, batchnorm=batchnorm),  # 10x10
        *drop(),
        *conv_block(16, 16, batchnorm=batchnorm),  # 8x8
        *conv_block(16, 16, batchnorm=batchnorm),  # 6x6
        *drop(),
    )


def dense_head() -> nn.Sequential:
    """Flatten the 6x6x16 map and classify with one Linear layer: 5,770 parameters."""
    return nn.Sequential(nn.Flatten(), nn.Linear(16 * 6 * 6, 10))


def gap_head() -> nn.Sequential:
    """Average each of the 16 maps to one number, then a 1x1 convolution to 10 classes: 170 parameters."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(16, 10, 1), nn.Flatten())


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
    """Step 4: the dense head (5,770 parameters) becomes GAP + 1x1 conv (170 parameters)."""

    def __init__(self, dropout: float = 0.1):
        super().__init__(trunk(batchnorm=True, dropout=dropout), gap_head())


class FinalNet(GapNet):
    """Step 5: the gap network with lighter dropout, because augmentation now does most of the
    regularising; it is trained with augmentation and a one-cycle LR schedule."""

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
