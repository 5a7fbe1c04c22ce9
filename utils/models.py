"""The five teaching steps, each its own class, so that a diff between two steps shows the change.

Every step writes its layers out in full (no shared builder): reading ``BatchNormNet.__init__``
after ``BaselineNet.__init__`` shows exactly the lines BatchNorm adds. The notebooks display these
classes and their diffs with ``utils.course.show_model`` / ``show_diff``.

    step        change against the step before                      head
    baseline    3x3 convolutions + ReLU                              Flatten -> Linear(400, 10)
    batchnorm   + BatchNorm after every convolution                  Flatten -> Linear(400, 10)
    dropout     + Dropout in the middle and at the end of the trunk  Flatten -> Linear(400, 10)
    gap         global average pooling instead of Flatten            GAP -> Conv1x1 (a Linear(16, 10) on 1x1)
    final       the same network as gap; only training changes: augmentation

The trunk: a 3x3 convolution to 10 channels at full resolution (28 -> 26) pooled at once to
13x13, then four 3x3 convolutions without padding (-> 11 -> 9 -> 7 -> 5), widening 12 -> 16 -> 16
-> 16. Why (results/tuning.md has the measurements, on a validation split): on a 2-core CPU the cost
of a step is set by the full-resolution layers, so only one convolution runs at 26x26 and its
output is max-pooled *before* BatchNorm and ReLU, which then touch a quarter of the values.
"""
from __future__ import annotations

import inspect

from torch import nn

from .settings import RunError

INPUT_SHAPE = (1, 28, 28)
DROPOUT = 0.05  # Config.dropout: one rate for steps 3-5, so step 5 differs from step 4 by augmentation alone

# Notebook stem -> model name, in course order.
STEPS = {
    "01_baseline": "baseline",
    "02_batchnorm": "batchnorm",
    "03_dropout": "dropout",
    "04_gap": "gap",
    "05_augmentation": "final",
}


class MnistNet(nn.Module):
    """features -> head. Each step only says what its two parts are.

    A model trusts its input: a user's images are checked where they enter (``utils.predict``)."""

    def __init__(self, features: nn.Module, head: nn.Module):
        super().__init__()
        self.features = features
        self.head = head

    def forward(self, x):
        return self.head(self.features(x))


class BaselineNet(MnistNet):
    """Step 1: plain 3x3 convolutions with ReLU, and a dense head that flattens the last map."""

    def __init__(self):
        features = nn.Sequential(
            nn.Conv2d(1, 10, 3),  # 28x28 -> 26x26: edges and strokes
            nn.MaxPool2d(2),  # -> 13x13 at once: the layers after it see a quarter of the values
            nn.ReLU(),
            nn.Conv2d(10, 12, 3),  # -> 11x11
            nn.ReLU(),
            nn.Conv2d(12, 16, 3),  # -> 9x9: parts of digits
            nn.ReLU(),
            nn.Conv2d(16, 16, 3),  # -> 7x7
            nn.ReLU(),
            nn.Conv2d(16, 16, 3),  # -> 5x5: whole digits
            nn.ReLU(),
        )
        head = nn.Sequential(
            nn.Flatten(),  # 16 x 5 x 5 = 400 numbers
            nn.Linear(400, 10),  # 4,010 parameters
        )
        super().__init__(features, head)


class BatchNormNet(MnistNet):
    """Step 2: + BatchNorm after every convolution, which keeps each layer's inputs well scaled.

    Its learned shift does the bias's job, so the convolutions drop theirs (``bias=False``)."""

    def __init__(self):
        features = nn.Sequential(
            nn.Conv2d(1, 10, 3, bias=False),  # 28x28 -> 26x26: edges and strokes
            nn.MaxPool2d(2),  # -> 13x13 at once: the layers after it see a quarter of the values
            nn.BatchNorm2d(10),
            nn.ReLU(),
            nn.Conv2d(10, 12, 3, bias=False),  # -> 11x11
            nn.BatchNorm2d(12),
            nn.ReLU(),
            nn.Conv2d(12, 16, 3, bias=False),  # -> 9x9: parts of digits
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, bias=False),  # -> 7x7
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, bias=False),  # -> 5x5: whole digits
            nn.BatchNorm2d(16),
            nn.ReLU(),
        )
        head = nn.Sequential(
            nn.Flatten(),  # 16 x 5 x 5 = 400 numbers
            nn.Linear(400, 10),  # 4,010 parameters
        )
        super().__init__(features, head)


class DropoutNet(MnistNet):
    """Step 3: + Dropout in the middle and at the end of the trunk, to regularise (no parameters)."""

    def __init__(self, dropout: float = DROPOUT):
        features = nn.Sequential(
            nn.Conv2d(1, 10, 3, bias=False),  # 28x28 -> 26x26: edges and strokes
            nn.MaxPool2d(2),  # -> 13x13 at once: the layers after it see a quarter of the values
            nn.BatchNorm2d(10),
            nn.ReLU(),
            nn.Conv2d(10, 12, 3, bias=False),  # -> 11x11
            nn.BatchNorm2d(12),
            nn.ReLU(),
            nn.Conv2d(12, 16, 3, bias=False),  # -> 9x9: parts of digits
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv2d(16, 16, 3, bias=False),  # -> 7x7
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, bias=False),  # -> 5x5: whole digits
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        head = nn.Sequential(
            nn.Flatten(),  # 16 x 5 x 5 = 400 numbers
            nn.Linear(400, 10),  # 4,010 parameters
        )
        super().__init__(features, head)


class GapNet(MnistNet):
    """Step 4: the dense head (4,010 parameters) becomes global average pooling + a 1x1 convolution."""

    def __init__(self, dropout: float = DROPOUT):
        features = nn.Sequential(
            nn.Conv2d(1, 10, 3, bias=False),  # 28x28 -> 26x26: edges and strokes
            nn.MaxPool2d(2),  # -> 13x13 at once: the layers after it see a quarter of the values
            nn.BatchNorm2d(10),
            nn.ReLU(),
            nn.Conv2d(10, 12, 3, bias=False),  # -> 11x11
            nn.BatchNorm2d(12),
            nn.ReLU(),
            nn.Conv2d(12, 16, 3, bias=False),  # -> 9x9: parts of digits
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv2d(16, 16, 3, bias=False),  # -> 7x7
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Conv2d(16, 16, 3, bias=False),  # -> 5x5: whole digits
            nn.BatchNorm2d(16),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),  # each of the 16 maps -> one number
            nn.Conv2d(16, 10, 1),  # 16 numbers -> 10 class scores: 170 parameters
            nn.Flatten(),
        )
        super().__init__(features, head)


class FinalNet(GapNet):
    """Step 5: exactly the step-4 network. What changes is the training: augmentation
    (``utils.config.RECIPES``), so any gain over step 4 is augmentation's."""


MODELS = {
    "baseline": BaselineNet,
    "batchnorm": BatchNormNet,
    "dropout": DropoutNet,
    "gap": GapNet,
    "final": FinalNet,
}


def build_model(name: str, dropout: float = DROPOUT) -> MnistNet:
    """A fresh model for the teaching step ``name`` (one of :data:`MODELS`); ``dropout`` is the rate of its
    Dropout layers, if it has any (``utils.config.Config.dropout``)."""
    if name not in MODELS:
        raise RunError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    step = MODELS[name]
    return step(dropout) if "dropout" in inspect.signature(step).parameters else step()

