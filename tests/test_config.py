"""utils.config: a Config refuses, when it is made, a value that cannot make a run (the seed's range, the
training images left by train_subset and holdout); every teaching step's recipe; the device a run computes on;
the allocator setting, which changes the speed and not a single number; the CPU name stored with results."""
import dataclasses
import platform
import sys

import pytest
import torch
from helpers import one_error_line, quiet, small, tiny_config, weights, without_timing

from utils import config, runs
from utils.config import cpu_name, recipe, resolve_device
from utils.train import epoch_seed, load_device_data, train
from utils.train import main as train_main

# --------------------------------------------------------------------------------------------------
# What a Config refuses
# --------------------------------------------------------------------------------------------------

def test_a_seed_out_of_range_is_named_and_the_largest_seeds_every_epoch(capsys, tmp_path):
    one_error_line(capsys, train_main, ["--seed", "99999999999999999999", "--out", str(tmp_path / "r")], "--seed")
    one_error_line(capsys, train_main, ["--seed", "-1", "--out", str(tmp_path / "r")], "--seed")
    with pytest.raises(runs.RunError, match="seed"):
        train(small(seed=2**64), tmp_path / "r", progress=False, log=quiet)
    assert not (tmp_path / "r").exists()
    big = 2**63 - 1  # the largest seed allowed: every epoch's seed must still fit torch's generator
    for epoch in (1, 15):
        torch.Generator().manual_seed(epoch_seed(big, epoch))
    assert epoch_seed(1, 3) == 100_006, "small seeds keep their epoch seeds (runs stay reproducible)"


@pytest.mark.parametrize("field", ["train_subset", "holdout"])
def test_a_negative_subset_or_holdout_is_refused(tmp_path, field):
    with pytest.raises(runs.RunError, match=field):
        train(small(**{field: -5}), tmp_path / "r", progress=False, log=quiet)
    assert not (tmp_path / "r").exists()


def test_a_holdout_that_leaves_no_training_images_is_refused():
    with pytest.raises(ValueError, match="--holdout 60000 leaves no training images"):
        load_device_data(tiny_config(holdout=60_000), torch.device("cpu"))


# --------------------------------------------------------------------------------------------------
# The recipes
# --------------------------------------------------------------------------------------------------

def test_every_step_trains_with_the_final_recipe_and_only_step_5_augments():
    final = dataclasses.asdict(recipe("final"))
    for name in ("baseline", "batchnorm", "dropout", "gap"):
        cfg = dataclasses.asdict(recipe(name))
        assert cfg["augment"] is False and final["augment"] is True
        assert {k: v for k, v in cfg.items() if k not in ("model", "augment")} == \
            {k: v for k, v in final.items() if k not in ("model", "augment")}, name


# --------------------------------------------------------------------------------------------------
# The machine: which device a run uses (--device auto / cpu / cuda / mps), and the allocator
# --------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gpu", [True, False], ids=["with a GPU", "without one"])
def test_auto_picks_cuda_when_there_is_a_gpu_else_the_cpu(monkeypatch, gpu):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpu)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cuda" if gpu else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


def test_auto_takes_apples_mps_when_there_is_no_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")


@pytest.mark.parametrize("name", ["cuda", "mps"])
def test_a_device_that_is_not_there_is_one_clear_error_before_the_run_folder(monkeypatch, tmp_path, name):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(ValueError, match=f"--device {name} was asked for, but .* use --device cpu or auto"):
        train(tiny_config(device=name), tmp_path / "run", progress=False, log=quiet)
    assert not (tmp_path / "run").exists(), "nothing written"


def test_the_allocator_setting_changes_the_speed_not_the_numbers(tmp_path, monkeypatch):
    monkeypatch.setitem(config.ALLOCATOR, "setting", "as the system set it")
    plain = train(tiny_config(epochs=2, reuse_memory=False), tmp_path / "plain", progress=False, log=quiet)
    assert plain["allocator"] == "as the system set it", "off: the process is left as it was"
    kept = train(tiny_config(epochs=2), tmp_path / "kept", progress=False, log=quiet)
    assert without_timing(kept["history"]) == without_timing(plain["history"])
    a, b = weights(tmp_path / "plain"), weights(tmp_path / "kept")
    assert all(torch.equal(a[k], b[k]) for k in a)
    if sys.platform.startswith("linux"):  # glibc on every Linux this project runs on (CI, Colab)
        assert kept["allocator"].startswith("glibc ") and "freed memory kept" in kept["allocator"]


def test_a_run_without_glibc_says_so(monkeypatch):
    def no_libc(name):
        raise OSError(f"{name}: cannot open shared object file")

    monkeypatch.setattr(config.ctypes, "CDLL", no_libc)
    monkeypatch.setitem(config.ALLOCATOR, "setting", "as the system set it")
    assert config.reuse_freed_memory() == "as the system set it (not glibc: nothing to change)"


AMD_VM = "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 17\nmodel name\t: AMD EPYC\n\n" \
         "processor\t: 1\ncpu family\t: 26\nmodel\t\t: 2\nmodel name\t: AMD EPYC\n"
XEON = "processor\t: 0\ncpu family\t: 6\nmodel\t\t: 143\nmodel name\t: Intel(R) Xeon(R) Platinum 8488C\n"


@pytest.mark.parametrize("cpuinfo, name", [
    (AMD_VM, "AMD EPYC (family 25, model 17)"),  # a bare line name: the first processor's numbers say which chip
    (XEON, "Intel(R) Xeon(R) Platinum 8488C"),  # a name with its model number is left as the CPU gives it
])
def test_the_cpu_name_tells_hosts_apart(cpuinfo, name):
    assert cpu_name(cpuinfo) == name


def test_without_a_model_name_the_cpu_name_is_the_platforms():
    assert cpu_name("processor\t: 0\n") == (platform.processor() or platform.machine())
