"""utils.config.reuse_freed_memory: a speed setting that must not change a single number."""
import sys

import pytest
import torch
from helpers import tiny_config, without_timing

from utils import config
from utils.train import train

pytestmark = pytest.mark.usefixtures("one_cpu_thread")


def test_the_allocator_setting_changes_the_speed_not_the_numbers(tmp_path, monkeypatch):
    monkeypatch.setitem(config.ALLOCATOR, "setting", "as the system set it")
    plain = train(tiny_config(epochs=2, reuse_memory=False), tmp_path / "plain", progress=False, log=lambda *_: None)
    assert plain["allocator"] == "as the system set it", "off: the process is left as it was"
    kept = train(tiny_config(epochs=2), tmp_path / "kept", progress=False, log=lambda *_: None)
    assert without_timing(kept["history"]) == without_timing(plain["history"])
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["model_state"] for d in ("plain", "kept"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    if sys.platform.startswith("linux"):  # glibc on every Linux this project runs on (CI, Colab)
        assert kept["allocator"].startswith("glibc ") and "freed memory kept" in kept["allocator"]


def test_a_run_without_glibc_says_so(monkeypatch):
    def no_libc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(config.ctypes, "CDLL", no_libc)
    monkeypatch.setitem(config.ALLOCATOR, "setting", "as the system set it")
    assert config.reuse_freed_memory() == "as the system set it (not glibc: nothing to change)"
