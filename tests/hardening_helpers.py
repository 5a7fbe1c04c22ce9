"""Helpers shared by the bad-input and fault tests (test_hardening.py and the focused files beside it)."""
from __future__ import annotations

import shutil

import torch
from helpers import tiny_config


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
