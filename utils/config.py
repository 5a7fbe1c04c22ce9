"""How a run is set up: every setting of the recipe, once (``Config``, whose defaults are the final recipe),
what each teaching step changes in it (``RECIPES``), and the machine it computes on (the device, the allocator).

A Config checks its fields when it is made, so a run never starts from settings that cannot make one: a bad
value is a RunError that names the setting, raised where the value enters (a notebook's set-up cell, a flag of
``python -m utils.train``, a saved run's config). ``python -m utils.train --help`` lists every field as a flag.
"""
from __future__ import annotations

import ctypes
import dataclasses
import platform
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from .augment import DEGREES, SCALE, TRANSLATE
from .data import DEFAULT_ROOT, TRAIN_SIZE
from .models import DROPOUT, MODELS
from .settings import RunError, check_fields, named, setting, stored

DEVICES = ("auto", "cpu", "cuda", "mps")
AUGMENTATION_RANGES = ("degrees", "translate", "scale")  # Config fields that act only where augment is on


@dataclass
class Config:
    """Everything that defines a run. The defaults are the final recipe; RECIPES adjusts the earlier steps."""

    model: str = setting("final", "the teaching step (utils/models.py)", "name", choices=tuple(MODELS), run=True)
    epochs: int = setting(15, "passes over the training images (10 lost the margin on validation)", "count")
    batch_size: int = setting(128, "images per SGD step", "count")
    lr: float = setting(0.1, "peak LR: one-cycle starts at lr/25, peaks here, ends near 0", "rate",
                        hint="the final recipe peaks at 0.1")
    # before=: runs recorded before these four were settings (results/steps.json) trained with torch's
    # OneCycleLR defaults (momentum 0.95 -> 0.85 -> 0.95; the 0.9 then passed to SGD was overridden by it),
    # Nesterov on and a warm-up of 0.25 (see git show ab0e861:utils/train.py, make_optimizer).
    warmup: float = setting(0.25, "share of the steps in which the LR rises to its peak", "range", low=0.05, high=1,
                            before=0.25)
    momentum: float = setting(0.95, "SGD momentum at the start and the end", "range", low=0, high=1, before=0.95)
    min_momentum: float = setting(0.85, "one-cycle lowers the momentum to this while the LR peaks", "range",
                                  low=0, high=1, before=0.85)
    nesterov: bool = setting(True, "Nesterov momentum: the gradient is taken one step ahead", "switch", before=True)
    weight_decay: float = setting(5e-4, "L2 pull of every weight towards 0, BatchNorm's included", "non_negative")
    dropout: float = setting(DROPOUT, "share of the values a Dropout layer zeroes while training (the networks of "
                             "steps 3-5 have Dropout layers)", "range", low=0, high=1, before=DROPOUT)
    augment: bool = setting(True, "random rotation, shift and scale of every training image", "switch")
    degrees: float = setting(DEGREES, "augmentation: rotation range, +-degrees", "range", low=0, high=180)
    translate: float = setting(TRANSLATE, "augmentation: shift range, a fraction of the image size",
                               "range", low=0, high=0.5)
    scale: float = setting(SCALE, "augmentation: size range, 1 +- this", "range", low=0, high=1, before=SCALE)
    recalibrate_bn: bool = setting(True, "recompute BatchNorm statistics on 10,000 clean training images "
                                   "before each evaluation", "switch")
    seed: int = setting(1, "the initial weights, the shuffle, augmentation and dropout draws", "seed", run=True)
    device: str = setting("auto", "auto: CUDA, then Apple's MPS, then the CPU", "choice", choices=DEVICES, run=True)
    train_subset: int = setting(0, "train on the first N images only (0: all); for quick runs", "size", run=True)
    reuse_memory: bool = setting(True, "keep freed memory for the next step (glibc; faster, same numbers)", "switch",
                                 run=True)
    holdout: int = setting(0, "hold out the last N training images to tune on (never tune on test)", "size", run=True)
    data_root: str = setting(str(DEFAULT_ROOT), "where MNIST is kept", "path", run=True,
                             hint="default: $MNIST_ROOT, else data/; set neither to ''")

    def __post_init__(self):
        """Refuse a value that its field's rule refuses (``utils.settings.setting``), then what two fields
        refuse together: a range of an augmentation that is off, a holdout of every training image."""
        check_fields(self)
        defaults = {f.name: f.default for f in dataclasses.fields(self)}
        changed = [f"{named(name)} {getattr(self, name):g}" for name in AUGMENTATION_RANGES
                   if getattr(self, name) != defaults[name]]
        if changed and not self.augment:  # the run would train as if the range were never given
            raise RunError(f"{' and '.join(changed)} would change nothing: augmentation is off (augment False: "
                           "--no-augment, or a step before step 5); turn it on with --augment (augment=True), or "
                           "leave the range out")
        if self.holdout >= TRAIN_SIZE:
            raise RunError(f"--holdout {self.holdout} leaves no training images: hold out fewer than the "
                           f"{TRAIN_SIZE:,} training images (10000 is the usual validation split)")

    @property
    def training_images(self) -> int:
        return min(TRAIN_SIZE - self.holdout, self.train_subset or TRAIN_SIZE)


# Every step trains with the final recipe. Steps 1-4 only switch augmentation off, so each step differs
# from the one before by the one change it teaches, and step 5 differs from step 4 by augmentation alone.
RECIPES: dict[str, dict] = {
    "baseline": dict(augment=False),
    "batchnorm": dict(augment=False),
    "dropout": dict(augment=False),
    "gap": dict(augment=False),
    "final": dict(),
}
# where a run computes and reads MNIST, and how its memory is managed: not what it computes
RESUME_MAY_CHANGE = ("device", "data_root", "reuse_memory")


def recipe(model: str, **overrides) -> Config:
    """The default Config for a teaching step, with ``overrides`` applied on top."""
    return Config(**{"model": model, **RECIPES.get(model, {}), **overrides})


def stored_settings(config: dict) -> dict:
    """A Config dict saved by a run or sweep, read as today's code reads it (``utils.settings.stored``)."""
    return stored(config, Config)


def saved_config(config: dict) -> Config:
    """The Config of a saved run, as this version trains it; a RunError saying what does not fit."""
    config = stored_settings(config)
    unknown = sorted(set(config) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        raise RunError(f"another version of the course made it: its config has settings this one does not know: "
                       f"{', '.join(unknown)}")
    try:
        return Config(**config)
    except RunError as exc:
        raise RunError(f"its config is not valid: {exc}") from None


# --------------------------------------------------------------------------------------------------
# The machine
# --------------------------------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    """The device ``auto``, ``cpu``, ``cuda`` or ``mps`` names here; a RunError when it is not available."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RunError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not mps:
        raise RunError("--device mps was asked for, but MPS is not available; use --device cpu or auto")
    if name not in DEVICES:
        raise RunError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


ALLOCATOR = {"setting": "as the system set it"}  # what reuse_freed_memory did to this process, for its record


def reuse_freed_memory() -> str:
    """Keep the memory a training step frees inside the process, for the next step to reuse.

    glibc's malloc hands large freed blocks back to the operating system (mmap and trim thresholds), so
    every step of a small CNN faults the same few megabytes in again: ~1,000 page faults per step here.
    Raising the two thresholds (process-wide, like any allocator setting) removes them: the arithmetic is
    untouched, and one epoch ran 1.17x faster (AMD EPYC, 2 threads, median of three). A no-op, said so,
    where the C library is not glibc. Returns the setting, which a run's metrics record."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        version = libc.gnu_get_libc_version().decode()
    except (OSError, AttributeError):
        ALLOCATOR["setting"] = "as the system set it (not glibc: nothing to change)"
        return ALLOCATOR["setting"]
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    if libc.mallopt(m_mmap_threshold, 1 << 30) == 1 and libc.mallopt(m_trim_threshold, 1 << 31) == 1:
        ALLOCATOR["setting"] = f"glibc {version}: freed memory kept (mmap threshold 1 GiB, trim threshold 2 GiB)"
    return ALLOCATOR["setting"]


def versions() -> dict:
    """Plain strings (torch.__version__ is a str subclass that weights_only loading refuses)."""
    out = {"python": platform.python_version(), "torch": str(torch.__version__)}
    try:
        import torchvision

        out["torchvision"] = str(torchvision.__version__)
    except Exception:
        out["torchvision"] = None
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def cpu_name(cpuinfo: str | None = None) -> str:
    """The CPU model (from /proc/cpuinfo on Linux), which decides bit-for-bit reproducibility on CPU.

    Some virtual machines name only the line ("AMD EPYC"), which hides Zen 4 from Zen 5: a name
    without a model number gets its family and model numbers, so stored results tell hosts apart."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            if fields:  # the first processor's block is enough
                break
            continue
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name")
    if not name:
        return platform.processor() or platform.machine()
    if not any(ch.isdigit() for ch in name) and "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']}, model {fields['model']})"
    return name


def peak_memory_mb() -> float | None:
    """This process's peak resident memory, in MB: ``VmHWM`` of /proc/self/status on Linux (``ru_maxrss`` would
    also count the process that launched it, when that one used vfork), else ``ru_maxrss``; None without either."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux
