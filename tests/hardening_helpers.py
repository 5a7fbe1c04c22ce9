"""Helpers shared by the bad-input and fault tests (test_hardening.py and the focused files beside it)."""
from __future__ import annotations

import shutil

import pytest
import torch
from helpers import tiny_config

from utils import runs
from utils.train import train


def quiet(*_):
    pass


def small(**overrides):
    """Two epochs on 256 images: a run of a few seconds that still writes everything a real run does."""
    return tiny_config(**{"train_subset": 256, "epochs": 2, **overrides})


def copy_run(finished, tmp_path, name="copy"):
    dest = tmp_path / name
    shutil.copytree(finished[0], dest)
    return dest


def snapshot(folder):
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def one_error_line(capsys, main, argv, *words, status=2):
    """``main(argv)`` ends with exit status ``status`` and exactly one line on stderr, naming ``words``
    (an ``error:`` line for status 2)."""
    try:
        code = main(argv)
    except SystemExit as exit_:
        code = exit_.code
    except KeyboardInterrupt as exc:  # else pytest would take it for the user's Ctrl-C and stop the session
        pytest.fail(f"KeyboardInterrupt escaped: {exc!r}")
    assert code == status, capsys.readouterr()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and (status != 2 or ": error: " in lines[0]), lines
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


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
    real_save = runs.save_run

    def save_then_stop(out, *args):
        real_save(out, *args)
        raise KeyboardInterrupt("stopped after epoch 1")

    with monkeypatch.context() as patch:
        patch.setattr(runs, "save_run", save_then_stop)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, out, progress=False, log=quiet)
    return out
