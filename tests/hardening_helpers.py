"""Helpers shared by the bad-input and fault tests (test_hardening.py and the focused files beside it)."""
from __future__ import annotations

import shutil

import pytest
import torch
from helpers import quiet, stop_after_saving, tiny_config

from utils.train import train


def small(**overrides):
    """Two epochs on 256 images: a run of a few seconds that still writes everything a real run does."""
    return tiny_config(**{"train_subset": 256, "epochs": 2, **overrides})


def copy_run(finished, tmp_path, name="copy"):
    dest = tmp_path / name
    shutil.copytree(finished[0], dest)
    return dest


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def edited_checkpoint(run_dir, **changes):
    """Rewrite ``run_dir``'s checkpoint with some entries changed (``None`` removes one)."""
    path = run_dir / "checkpoint.pt"
    state = torch.load(path, weights_only=True)
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    torch.save(state, path)
    return path


def stopped_after_epoch_1(cfg, out, monkeypatch):
    """A run of ``cfg`` in ``out`` killed right after it saved epoch 1 (what a SIGKILL then leaves)."""
    with monkeypatch.context() as patch:
        stop_after_saving(patch, 1, "stopped")
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, progress=False, log=quiet)
    return out
