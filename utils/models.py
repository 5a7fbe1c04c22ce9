"""The five teaching steps, each a small visible change from the one before.

All five share one convolutional trunk, built by :func:`trunk`: a 3x3 convolution to 10 channels
at full resolution (28 -> 26) pooled at once to 13x13, then four 3x3 convolutions without padding
(-> 11 -> 9 -> 7 -> 5), widening 12 -> 16 -> 16 -> 16.

    step        change                                               head
    baseline    plain 3x3 convolutions + ReLU                        Flatten -> Linear(400, 10)
    batchnorm   + BatchNorm after every convolution                  Flatten -> Linear(400, 10)
    dropout     + Dropout in the middle and at the end of the trunk  Flatten -> Linear(400, 10)
    gap         global average pooling + 1x1 conv (no Linear)        GAP -> Conv1x1
    final       the gap network, trained with augmentation and a one-cycle LR schedule

Why this trunk (results/tuning.md has the measurements, on a validation split): on a 2-core CPU the
cost of a step is set by the full-resolution layers, so only one convolution runs at 26x26 and
its output is max-pooled *before* BatchNorm and ReLU, which then touch a quarter of the values.
The parameters sit at 13x13 and below, where each one costs few multiply-adds.
"""
from __future__ import annotations

import contextlib
import contextvars

import torch
from torch import nn

INPUT_SHAPE = (1, 28, 28)


def conv_block(cin: int, cout: int, *, batchnorm: bool, kernel: int = 3, pool: bool = False) -> list[nn.Module]:
    """Convolution without padding (a 3x3 one trims a pixel from each side) -> [2x2 max-pool] -> [BatchNorm] -> ReLU.

    With ``pool`` the max-pool comes straight after the convolution: BatchNorm and ReLU then work
    on a quarter of the values, which makes the full-resolution layer about 4x cheaper.
    """
    # BatchNorm has its own shift, so the convolution's bias would be redundant.
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, bias=not batchnorm)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU())
    return layers


def trunk(*, batchnorm: bool, dropout: float) -> nn.Sequential:
    """28x28x1 -> 5x5x16. A last-layer position sees 20x20 pixels; averaging the 5x5 map covers all 28."""

    def drop():
        return [nn.Dropout(dropout)] if dropout else []

    return nn.Sequential(
        *conv_block(1, 10, batchnorm=batchnorm, pool=True),  # 26x26 -> 13x13: edges and strokes
        *conv_block(10, 12, batchnorm=batchnorm),  # 11x11
        *conv_block(12, 16, batchnorm=batchnorm),  # 9x9: parts of digits
        *drop(),
        *conv_block(16, 16, batchnorm=batchnorm),  # 7x7
        *conv_block(16, 16, batchnorm=batchnorm),  # 5x5: whole digits
        *drop(),
    )


def dense_head(channels: int = 16, size: int = 5) -> nn.Sequential:
    """Flatten the 5x5x16 map and classify with one Linear layer: 4,010 parameters."""
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, 10))


def gap_head(channels: int = 16) -> nn.Sequential:
    """Average each of the 16 maps to one number, then a 1x1 convolution to 10 classes: 170 parameters."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, 10, 1), nn.Flatten())


_VALUES_CHECKED = contextvars.ContextVar("values_checked", default=False)


@contextlib.contextmanager
def values_checked_on_load():
    """Skip check_input's NaN/inf test inside a loop whose data was checked once when loaded.

    Testing every batch for NaN costs a host sync per step on a GPU; the training loop's batches
    are slices (and affine warps) of verified uint8 MNIST, which cannot hold a NaN."""
    token = _VALUES_CHECKED.set(True)
    try:
        yield
    finally:
        _VALUES_CHECKED.reset(token)


def check_input(x: torch.Tensor) -> None:
    """Refuse anything that is not a float32 batch of 1x28x28 finite images, with a message that says why.

    Other float types are refused rather than converted: the weights are float32, and torch's own
    error for the mismatch does not say what to do. A NaN would pass through silently and, in
    train mode, poison BatchNorm's running statistics for good."""
    expected = "float32 tensor of shape (N, 1, 28, 28)"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"expected a {expected}, got dtype {x.dtype}; convert with x.float()")
    if x.dtype != torch.float32:
        raise ValueError(f"expected a {expected} (the weights are float32), got dtype {x.dtype}; "
                         "convert with x.float()")
    if x.ndim != 4:
        raise ValueError(f"expected a {expected}, got {x.ndim} dimensions {tuple(x.shape)}")
    if x.shape[1] != 1:
        raise ValueError(f"expected 1 input channel (N, 1, 28, 28), got {x.shape[1]} channels {tuple(x.shape)}")
    if tuple(x.shape[2:]) != (28, 28):
        raise ValueError(f"expected 28x28 images (N, 1, 28, 28), got {x.shape[2]}x{x.shape[3]} {tuple(x.shape)}")
    if not _VALUES_CHECKED.get() and not torch.isfinite(x).all():
        raise ValueError("the input holds NaN or infinite values; clean the images first (normalised "
                         "MNIST pixels lie between -0.42 and 2.82)")


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
    """Step 4: the dense head (4,010 parameters) becomes GAP + 1x1 conv (170 parameters)."""

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
