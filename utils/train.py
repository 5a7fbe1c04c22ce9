"""Fast, deterministic training: the whole of MNIST lives as tensors on the device.

    python -m utils.train --model final --epochs 15 --seed 1 --out runs/final-seed1

No DataLoader, no PIL: the normalised images are one tensor on the device, mini-batches are
taken by index, and augmentation runs batched on the device (``utils.augment``). Every epoch
writes ``metrics.json`` and ``checkpoint.pt`` atomically; ``--resume RUN_DIR`` continues a
killed run to the same final numbers. The test set is evaluated every epoch for the curves,
but nothing in training or in any choice depends on it: the reported result is the final epoch.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import hashlib
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import augment, data
from .augment import DEGREES, TRANSLATE
from .cli import (
    DEVICES,
    GOAL,
    SEED_LIMIT,
    Parser,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed_int,
)
from .fsutil import atomic_write, atomic_write_json, ensure_writable_dir
from .models import MODELS, build_model, values_checked_on_load
from .summary import count_parameters

REPO_ROOT = Path(__file__).resolve().parent.parent
SETTINGS = ("model", "epochs", "batch_size", "lr", "weight_decay", "norm_decay", "schedule", "augment", "degrees",
            "translate", "clean_epochs", "label_smoothing", "recalibrate_bn", "ema", "seed", "device", "train_subset",
            "holdout", "data_root")  # fields with a flag
SWITCHES = ("norm_decay", "augment", "recalibrate_bn")  # on/off fields: --name and --no-name


@dataclass
class Config:
    """Everything that defines a run. Defaults are the final recipe; RECIPES adjusts the earlier steps."""

    model: str = "final"
    epochs: int = 15  # 10 lost the margin on validation (results/tuning.md, recipe v2, second round)
    batch_size: int = 128
    optimizer: str = "sgd"  # SGD with Nesterov momentum 0.9
    lr: float = 0.1  # the peak LR for "onecycle", the fixed LR for "constant"
    weight_decay: float = 5e-4
    norm_decay: bool = True  # decay BatchNorm weights and biases too (off: only convolution and linear weights)
    schedule: str = "onecycle"  # "onecycle" or "constant"
    augment: bool = True
    degrees: float = DEGREES  # augmentation: rotation range, +-degrees
    translate: float = TRANSLATE  # augmentation: shift range, fraction of the image size
    clean_epochs: int = 0  # the last N epochs train on un-augmented images (0: augment every epoch)
    label_smoothing: float = 0.0
    recalibrate_bn: bool = True  # recompute BatchNorm statistics on clean training images before each evaluation
    ema: float = 0.0  # decay of an exponential moving average of the weights (0: off); if on, it is the final model
    seed: int = 1
    device: str = "auto"
    train_subset: int = 0  # use only the first N training images (0: all 60,000); for quick runs
    holdout: int = 0  # keep the last N training images out of training, as a validation set
    eval_batch_size: int = 2000
    data_root: str = str(data.DEFAULT_ROOT)


# Every step trains with the final recipe (the Config defaults: optimizer, schedule, peak LR, batch size,
# epochs). Steps 1-4 only switch augmentation off, so each step differs from the one before by the one
# change it teaches, and step 5 differs from step 4 by augmentation alone.
RECIPES: dict[str, dict] = {
    "baseline": dict(augment=False),
    "batchnorm": dict(augment=False),
    "dropout": dict(augment=False),
    "gap": dict(augment=False),
    "final": dict(),
}


def recipe(model: str, **overrides) -> Config:
    """The default Config for a teaching step, with ``overrides`` applied on top."""
    return Config(**{"model": model, **RECIPES[model], **overrides})


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("--device mps was asked for, but MPS is not available; use --device cpu or auto")
    if name not in ("cpu", "cuda", "mps"):
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


@dataclass
class DeviceData:
    """Normalised images (N, 1, 28, 28) float32 and labels (N,) int64, already on the device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None


def load_device_data(cfg: Config, device: torch.device) -> DeviceData:
    """Load verified MNIST, normalise once, apply holdout / subset, move everything to ``device``."""
    check_holdout(cfg)  # also here: tools and tests load data without a full validate()
    mnist = data.load_mnist(cfg.data_root)
    x, y = mnist.train_images, mnist.train_labels
    val_x = val_y = None
    if cfg.holdout:
        x, y, val_x, val_y = x[: -cfg.holdout], y[: -cfg.holdout], x[-cfg.holdout :], y[-cfg.holdout :]
    if cfg.train_subset:
        x, y = x[: cfg.train_subset], y[: cfg.train_subset]

    def put(images):
        return data.normalize(images).to(device).contiguous(memory_format=torch.channels_last)

    return DeviceData(
        train_x=put(x),
        train_y=y.to(device),
        test_x=put(mnist.test_images),
        test_y=mnist.test_labels.to(device),
        val_x=None if val_x is None else put(val_x),
        val_y=None if val_y is None else val_y.to(device),
    )


BACKGROUND = (0.0 - data.MEAN) / data.STD  # value of a black pixel after normalisation


def make_optimizer(cfg: Config, model: torch.nn.Module, steps_per_epoch: int):
    if cfg.optimizer != "sgd":
        raise ValueError(f"unknown optimizer {cfg.optimizer!r}; only 'sgd' is supported")
    params = list(model.parameters())
    if not cfg.norm_decay:  # decay only the tensors that multiply (conv/linear weights); no BatchNorm or bias
        params = [{"params": [p for p in params if p.ndim > 1]},
                  {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]
    # foreach: one multi-tensor kernel per update instead of a Python loop over the parameter tensors; the
    # same arithmetic (bit-identical weights: checked over a full run), about 2% less time per step on 2 cores
    opt = torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, nesterov=True, weight_decay=cfg.weight_decay, foreach=True)
    if cfg.schedule == "onecycle":
        pct_start = 0.25
        if pct_start * cfg.epochs * steps_per_epoch == 1:
            # torch's OneCycleLR divides by zero when its warm-up is exactly one step (a 4-step run,
            # e.g. --train-subset 512 --epochs 1): warm up over two steps instead.
            pct_start = 0.5
        sched = torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps_per_epoch, pct_start=pct_start
        )
    elif cfg.schedule == "constant":
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: 1.0)
    else:
        raise ValueError(f"unknown schedule {cfg.schedule!r}; choose onecycle or constant")
    return opt, sched


def make_average(cfg: Config, model: torch.nn.Module):
    """An exponential moving average of the weights (and BatchNorm statistics), updated after every step,
    or None when ``cfg.ema`` is 0. When on, the averaged network is the final model."""
    if not cfg.ema:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(cfg.ema), use_buffers=True)


def lr_curve(cfg: Config, steps_per_epoch: int) -> list[float]:
    """The LR at every optimisation step of a run with ``cfg``, computed by the real scheduler."""
    model = torch.nn.Linear(1, 1)
    opt, sched = make_optimizer(cfg, model, steps_per_epoch)
    lrs = []
    for _ in range(cfg.epochs * steps_per_epoch):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches only (a random few images sit out each epoch); at least one batch."""
    return max(1, n_train // batch_size)


def epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch draws its shuffle, augmentation and dropout from its own seed, so a resumed run
    replays exactly the randomness an uninterrupted run would have used. Wrapped into the range
    torch's generators take; small seeds never wrap, so their runs are unchanged."""
    return (seed * 100_003 + epoch) % SEED_LIMIT


def augmenting(cfg: Config, epoch: int) -> bool:
    """Whether epoch ``epoch`` (1-based) trains on augmented images: all but the last ``clean_epochs``."""
    return cfg.augment and epoch <= cfg.epochs - cfg.clean_epochs


def train_epoch(model, opt, sched, dd: DeviceData, cfg: Config, epoch: int, bar=None,
                average=None) -> tuple[float, float]:
    """One pass over the training tensors; returns (mean loss, accuracy %). One host sync, at the end."""
    model.train()
    device = dd.train_x.device
    torch.manual_seed(epoch_seed(cfg.seed, epoch))  # dropout
    gen = torch.Generator(device=device).manual_seed(epoch_seed(cfg.seed, epoch))
    n = dd.train_x.shape[0]
    batch = min(cfg.batch_size, n)
    order = torch.randperm(n, generator=gen, device=device)
    loss_sum = torch.zeros((), device=device)
    correct = torch.zeros((), device=device, dtype=torch.long)
    seen = 0
    for step in range(steps_per_epoch(n, batch)):
        idx = order[step * batch : (step + 1) * batch]
        x, y = dd.train_x[idx], dd.train_y[idx]
        if augmenting(cfg, epoch):
            x = augment.random_affine(x, fill=BACKGROUND, generator=gen, degrees=cfg.degrees,
                                      translate=cfg.translate).contiguous(memory_format=torch.channels_last)
        with values_checked_on_load():  # batches of verified MNIST: no NaN test, no host sync per step
            logits = model(x)
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if average is not None:
            average.update_parameters(model)
        loss_sum += loss.detach() * y.shape[0]
        correct += (logits.argmax(1) == y).sum()
        seen += y.shape[0]
        if bar is not None:
            bar.update(1)
    return (loss_sum / seen).item(), 100.0 * correct.item() / seen


RECALIBRATION_IMAGES = 10_000


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor, batch_size: int = 2000) -> None:
    """Recompute every BatchNorm's running mean and variance as the plain average over ``x``.

    During training the running statistics follow the last few augmented mini-batches (momentum 0.1);
    the network is then judged on clean images. Averaging over clean training images, with dropout
    off, gives it the statistics of the images it is evaluated on. Weights are untouched."""
    norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    model.eval()
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over all batches
        m.train()
    for i in range(0, x.shape[0], batch_size):
        model(x[i : i + batch_size])
    for m, momentum in zip(norms, momenta, strict=True):
        m.momentum = momentum
    model.eval()


@torch.inference_mode()
def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = 2000) -> dict:
    """Loss, accuracy % and predictions over (x, y), in eval mode and large batches."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    preds = []
    for i in range(0, x.shape[0], batch_size):
        logits = model(x[i : i + batch_size])
        loss_sum += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum")
        preds.append(logits.argmax(1))
    pred = torch.cat(preds)
    return {
        "loss": loss_sum.item() / x.shape[0],
        "accuracy": 100.0 * (pred == y).sum().item() / x.shape[0],
        "predictions": pred,
    }


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


def peak_memory_mb() -> float | None:
    """This process's peak resident memory, in MB.

    On Linux, ``VmHWM`` from /proc/self/status: the high-water mark of this program alone.
    (``ru_maxrss`` would also count the process that launched it, when that one used vfork.)
    Elsewhere ``ru_maxrss``; None where neither exists."""
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


def default_run_dir(cfg: Config) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPO_ROOT / "runs" / f"{cfg.model}-seed{cfg.seed}-{stamp}"


def architecture_id(model: torch.nn.Module) -> str:
    """A short fingerprint of the layers (``repr(model)``): a run is resumed or reused only by the same network."""
    return hashlib.sha1(repr(model).encode()).hexdigest()[:12]


class RunError(ValueError):
    """A run cannot start as asked; the message says what to do instead."""


def option(name: str, value=None) -> str:
    """The command-line flag of a Config field (its name if it has none), for messages that API and
    CLI users both read."""
    if name not in SETTINGS:
        return name
    if name in SWITCHES and value is False:
        return "--no-" + name.replace("_", "-")
    return "--" + name.replace("_", "-")


def setting(name: str) -> str:
    """``epochs (--epochs)``: a Config field named both ways."""
    return f"{name} ({option(name)})" if name in SETTINGS else name


def training_images(cfg: Config) -> int:
    """How many images a run trains on, known before MNIST is loaded."""
    n = data.TRAIN_SIZE - cfg.holdout
    return min(n, cfg.train_subset) if cfg.train_subset else n


def check_holdout(cfg: Config) -> None:
    if cfg.holdout >= data.TRAIN_SIZE:
        raise RunError(f"--holdout {cfg.holdout} leaves no training images: hold out fewer than the "
                       f"{data.TRAIN_SIZE:,} training images (10000 is the usual validation split)")


def validate(cfg: Config, *, named_model: bool = True) -> None:
    """Refuse a Config that cannot make a sensible run, with one message per problem.

    train() calls this first, before it touches the run folder: a bad parameter must never cost
    the user an earlier run (``overwrite=True`` deletes only after this has passed)."""

    def whole(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)

    if named_model and cfg.model not in MODELS:
        raise RunError(f"unknown model {cfg.model!r}; choose one of: {', '.join(MODELS)}")
    for name in ("epochs", "batch_size", "eval_batch_size"):
        value = getattr(cfg, name)
        if not whole(value) or value <= 0:
            raise RunError(f"{setting(name)} must be a positive integer, got {value!r}")
    for name in ("train_subset", "holdout", "clean_epochs"):
        value = getattr(cfg, name)
        if not whole(value) or value < 0:
            raise RunError(f"{setting(name)} must be an integer >= 0 (0: none), got {value!r}")
    if cfg.clean_epochs > cfg.epochs:
        raise RunError(f"clean_epochs (--clean-epochs) {cfg.clean_epochs} is more than the {cfg.epochs} epochs of "
                       f"the run; use --clean-epochs {cfg.epochs} or less")
    if not number(cfg.lr) or cfg.lr <= 0:
        raise RunError(f"lr (--lr) must be a positive number, got {cfg.lr!r} (the final recipe peaks at 0.1)")
    if not number(cfg.weight_decay) or cfg.weight_decay < 0:
        raise RunError(f"{setting('weight_decay')} must be a number >= 0, got {cfg.weight_decay!r}")
    if cfg.optimizer != "sgd":
        raise RunError(f"unknown optimizer {cfg.optimizer!r}; only 'sgd' is supported")
    if cfg.schedule not in ("onecycle", "constant"):
        raise RunError(f"unknown schedule {cfg.schedule!r}; choose onecycle or constant")
    for name in SWITCHES:
        if not isinstance(getattr(cfg, name), bool):
            raise RunError(f"{name} must be True or False, got {getattr(cfg, name)!r}")
    for name, low, high in (("degrees", 0, 180), ("translate", 0, 0.5), ("label_smoothing", 0, 1), ("ema", 0, 1)):
        value = getattr(cfg, name)
        if not number(value) or not low <= value < high:
            raise RunError(f"{setting(name)} must be a number from {low} up to (not including) {high}, "
                           f"got {value!r}")
    if not whole(cfg.seed) or not 0 <= cfg.seed < SEED_LIMIT:
        raise RunError(f"seed (--seed) must be an integer from 0 to 2**63 - 1, got {cfg.seed!r}")
    if cfg.device not in DEVICES:
        raise RunError(f"unknown device {cfg.device!r}; choose {', '.join(DEVICES[:-1])} or {DEVICES[-1]}")
    check_holdout(cfg)
    n = training_images(cfg)
    if cfg.batch_size > n:
        raise RunError(f"batch size {cfg.batch_size} (--batch-size) is larger than the {n:,} training images; "
                       f"use --batch-size {n} or less (the recipes use 128)")


CHECKPOINT_TYPES = {"model": str, "architecture": str, "config": dict, "model_state": dict,
                    "optimizer_state": dict, "scheduler_state": dict, "history": list, "wall_seconds": (int, float)}


def checkpoint_file(path: str | Path) -> Path:
    path = Path(path)
    return path / "checkpoint.pt" if path.is_dir() else path


def load_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint written by this module, from a run folder or a ``checkpoint.pt`` path.

    Loaded with ``weights_only=True``: a pickle that would run code is refused unopened (students
    share checkpoints). Anything that is not our checkpoint -- a bare state_dict, another program's
    file, an unknown model or config -- is a RunError naming the file, never a KeyError later."""
    ckpt = checkpoint_file(path)
    if not ckpt.is_file():
        raise RunError(f"no checkpoint at {ckpt}; pass a run folder made by `python -m utils.train` "
                       "or its checkpoint.pt")
    try:
        state = torch.load(ckpt, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, foreign, or a pickle that wants to run code
        raise RunError(f"{ckpt} is not a checkpoint this course can load safely ({type(exc).__name__}); use a "
                       "checkpoint.pt written by `python -m utils.train`, or start a new run") from exc

    def refuse(what: str) -> RunError:
        return RunError(f"{ckpt} is not a checkpoint written by `python -m utils.train` ({what}); "
                        "pass a run folder made by it, or start a new run")

    if not isinstance(state, dict):
        raise refuse(f"it holds a {type(state).__name__}, not a checkpoint dict")
    for key, kind in CHECKPOINT_TYPES.items():
        if not isinstance(state.get(key), kind):
            raise refuse(f"no valid '{key}' entry" if key in state else f"no '{key}' entry")
    if not all(isinstance(v, torch.Tensor) for v in state["model_state"].values()):
        raise refuse("its model_state is not a state_dict of tensors")
    if state["model"] not in MODELS:
        raise refuse(f"unknown model {state['model']!r}; this version knows {', '.join(MODELS)}")
    unknown = sorted(set(state["config"]) - {f.name for f in dataclasses.fields(Config)})
    if unknown:
        raise refuse(f"its config has settings this version does not know: {', '.join(unknown)}")
    if state["config"].get("model") != state["model"]:
        raise refuse("its config names another model than the checkpoint")
    try:
        validate(Config(**state["config"]))
    except RunError as exc:
        raise refuse(f"its config is not valid: {exc}") from exc
    return state


def load_weights(model: torch.nn.Module, state: dict, where: str | Path, key: str = "model_state") -> None:
    """Put a checkpoint's weights (``state[key]``) into ``model``; weights of another network are a
    RunError, not a traceback."""
    try:
        model.load_state_dict(state[key])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunError(f"{checkpoint_file(where)}: its weights do not fit the '{state['model']}' network of "
                       f"utils/models.py ({first}); start a new run") from exc


def saved_metrics(state: dict, out: Path) -> dict | None:
    """The metrics that belong to this checkpoint.

    The checkpoint is the one commit point: it carries its own copy of the metrics, and
    metrics.json is derived from it (a kill between the two writes is repaired on resume). An older
    checkpoint without that copy trusts metrics.json only when its history agrees; else None."""
    if isinstance(state.get("metrics"), dict):
        return state["metrics"]
    on_disk = read_metrics_json(out)
    return on_disk if on_disk is not None and on_disk.get("history") == state["history"] else None


def read_metrics_json(out: Path) -> dict | None:
    try:
        on_disk = json.loads((out / "metrics.json").read_text())
    except (OSError, ValueError):  # missing, cut short or not JSON: it is rebuilt from the checkpoint
        return None
    return on_disk if isinstance(on_disk, dict) else None


def repair_metrics_json(out: Path, metrics: dict) -> None:
    """Make metrics.json say what the checkpoint says (after a kill between the two writes)."""
    if read_metrics_json(out) != metrics:
        atomic_write_json(out / "metrics.json", metrics)


RESUME_MAY_CHANGE = ("device", "data_root")  # where a run computes and reads MNIST, not what it computes


def stored_settings(config: dict) -> dict:
    """A Config dict saved by a run or sweep, as the code reads it now: a setting added since then takes
    its default, which is what that run trained with; a setting the code no longer has is kept as is."""
    return {**dataclasses.asdict(Config()), **config}


def resumed_config(saved: Config, asked: Config | None, out: Path) -> Config:
    """The saved Config, with only device and data root taken from ``asked``; other changes refused."""
    if asked is None:
        return saved
    if asked.model != saved.model:
        raise RunError(f"--resume {out} holds a '{saved.model}' run, not '{asked.model}'; drop --model or pick "
                       "another folder")
    for f in dataclasses.fields(Config):
        mine, theirs = getattr(asked, f.name), getattr(saved, f.name)
        if f.name not in RESUME_MAY_CHANGE and mine != theirs:
            raise RunError(f"--resume {out}: {option(f.name, mine)} asks for {f.name} {mine!r}, but the saved run has "
                           f"{theirs!r}; a resumed run keeps its settings (only --device and --data-root may "
                           f"change): drop {option(f.name, mine)}, or start a new run with another --out")
    return dataclasses.replace(saved, **{name: getattr(asked, name) for name in RESUME_MAY_CHANGE})


def prepare_run_folder(out: Path) -> None:
    """Fail now, not after an epoch of training, when the run folder cannot be written."""
    try:
        ensure_writable_dir(out)
    except OSError as exc:
        raise RunError(f"--out {out} cannot be used as a run folder ({exc.strerror or exc}); "
                       "choose a folder you can write to") from exc


def remove_leftovers(out: Path) -> None:
    """Delete temporary files of writes cut short by a kill; the real files are intact."""
    for leftover in out.glob(".*.tmp"):
        leftover.unlink()


def shown_path(path: str | Path) -> str:
    """``path`` as printed to a user: relative to the repository when it lies inside it, so logs and
    stored notebook outputs do not carry the folder layout of the machine that ran them."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def terminal_progress(desc: str, epochs: int, steps_per_epoch: int, done_epochs: int):
    """The CLI's progress bar: tqdm on stderr, removed when training ends (the epoch lines stay)."""
    from tqdm import tqdm

    return tqdm(total=epochs * steps_per_epoch, initial=done_epochs * steps_per_epoch, unit="step", leave=False,
                desc=desc, dynamic_ncols=True)


def make_progress(progress, desc: str, epochs: int, steps_per_epoch: int, done_epochs: int):
    """The progress reporter for ``train(progress=...)``: False/None -> none, True -> the terminal bar,
    a callable -> whatever it returns for these arguments (utils.course.NotebookProgress in notebooks).

    A reporter has tqdm's three methods: ``update(steps)``, ``write(line)`` for the per-epoch line, ``close()``."""
    if not progress:
        return None
    factory = terminal_progress if progress is True else progress
    return factory(desc, epochs, steps_per_epoch, done_epochs)


def train(cfg: Config | None = None, out: str | Path | None = None, *, model=None,
          resume: str | Path | None = None, progress=True, overwrite: bool = False, log=print) -> dict:
    """Train ``cfg`` into the run folder ``out`` (or continue ``resume``); return the metrics dict.

    ``model``: a network (an ``nn.Module``) or a zero-argument function that builds one, to try an
    architecture without adding it to ``utils.models.MODELS``; ``cfg.model`` then only names the run.
    A builder is called after seeding, so its weights follow ``cfg.seed``.
    ``progress``: True for the terminal bar, False for none, or a reporter factory (see make_progress).

    The whole Config is validated and the folder proved writable before anything in it changes;
    only then does ``overwrite=True`` replace an earlier run in ``out`` (the notebooks use it on
    re-execution). With ``resume``, ``cfg`` may be None (the saved settings) or the saved settings
    with another device / data root; any other difference is refused."""
    state = None
    if resume is not None:
        out = Path(resume)
        if not out.is_dir():
            raise RunError(f"--resume {out}: no such run folder")
        state = load_checkpoint(out)
        cfg = resumed_config(Config(**state["config"]), cfg, out)
    else:
        cfg = cfg or Config()
        out = Path(out) if out else default_run_dir(cfg)
    validate(cfg, named_model=model is None)
    device = resolve_device(cfg.device)
    if state is None and not overwrite and (out / "checkpoint.pt").exists():
        raise RunError(f"{out} already holds a run; continue it with --resume {out} or choose another --out")

    start = time.perf_counter()
    torch.manual_seed(cfg.seed)
    if model is None:
        model = build_model(cfg.model)
    elif not isinstance(model, torch.nn.Module):
        model = model()
    model = model.to(device).to(memory_format=torch.channels_last)
    arch = architecture_id(model)
    average = make_average(cfg, model)
    final_model = model if average is None else average.module  # what is evaluated and reported
    history: list[dict] = []
    wall_before = 0.0
    metrics = None
    if state is not None:
        if state["architecture"] != arch:
            raise RunError(f"--resume {out} was trained with another '{cfg.model}' network than utils/models.py "
                           "defines now; start a new run instead")
        # with weight averaging on, model_state is the average; training goes on from training_state
        load_weights(model, state, out, "training_state" if "training_state" in state else "model_state")
        if average is not None:
            load_weights(average, state, out, "average_state")
        history = state["history"]
        wall_before = state["wall_seconds"]
        metrics = saved_metrics(state, out)
        if len(history) >= cfg.epochs:
            if metrics is None:
                raise RunError(f"{out} is complete, but its metrics.json is missing or does not match its older "
                               "checkpoint.pt (which holds no copy of the metrics); start a new run")
            prepare_run_folder(out)
            remove_leftovers(out)
            repair_metrics_json(out, metrics)
            log(f"{out} is already complete ({len(history)}/{cfg.epochs} epochs); nothing to resume")
            return metrics
    dd = load_device_data(cfg, device)  # a data problem stops the run before the folder is made
    prepare_run_folder(out)  # and a folder problem stops it before an epoch of training
    if state is not None:
        remove_leftovers(out)
        if metrics is not None:
            repair_metrics_json(out, metrics)
    elif overwrite:  # only now: the settings are valid and the folder is writable
        for name in ("checkpoint.pt", "metrics.json"):
            (out / name).unlink(missing_ok=True)
    n_steps = steps_per_epoch(dd.train_x.shape[0], cfg.batch_size)
    opt, sched = make_optimizer(cfg, model, n_steps)
    if state is not None:
        try:
            opt.load_state_dict(state["optimizer_state"])
            sched.load_state_dict(state["scheduler_state"])
        except (ValueError, KeyError, TypeError) as exc:
            raise RunError(f"{checkpoint_file(out)}: its optimizer or scheduler state does not fit this run "
                           f"({type(exc).__name__}); start a new run") from exc
        log(f"resuming {out} after epoch {len(history)}/{cfg.epochs}")

    params = count_parameters(model)
    log(f"model {cfg.model}: {params:,} parameters | device {device_name(device)} | run folder {shown_path(out)}")
    bar = make_progress(progress, cfg.model, cfg.epochs, n_steps, len(history))
    metrics = {}
    try:
        for epoch in range(len(history) + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            lr = opt.param_groups[0]["lr"]
            train_loss, train_acc = train_epoch(model, opt, sched, dd, cfg, epoch, bar, average)
            if cfg.recalibrate_bn:
                recalibrate_batchnorm(final_model, dd.train_x[:RECALIBRATION_IMAGES], cfg.eval_batch_size)
            test = evaluate(final_model, dd.test_x, dd.test_y, cfg.eval_batch_size)
            row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                   "test_loss": test["loss"], "test_accuracy": test["accuracy"], "lr": lr}
            if dd.val_x is not None:
                val = evaluate(final_model, dd.val_x, dd.val_y, cfg.eval_batch_size)
                row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
            check_finite(row, cfg, out)
            row["seconds"] = time.perf_counter() - t0
            history.append(row)
            wall = wall_before + time.perf_counter() - start
            metrics = make_metrics(cfg, params, history, wall, device, out, arch)
            save_run(out, model, opt, sched, cfg, history, metrics, average)
            # Tuning on a validation split shows the validation numbers, not the test numbers: what is
            # not on screen cannot steer a choice. The test set is still scored into metrics.json.
            split = "val" if dd.val_x is not None else "test"
            line = (f"epoch {epoch:2d}/{cfg.epochs}  train loss {train_loss:.4f} acc {train_acc:6.2f}%  "
                    f"{split} loss {row[split + '_loss']:.4f} acc {row[split + '_accuracy']:6.2f}%  "
                    f"lr {lr:.4f}  {row['seconds']:.1f}s")
            bar.write(line) if bar is not None else log(line)
    finally:
        if bar is not None:
            bar.close()
    return metrics


def check_finite(row: dict, cfg: Config, out: Path) -> None:
    """Stop a diverged run before it saves: NaN weights are worth nothing, and NaN is not JSON."""
    bad = [key for key, value in row.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        epoch = row["epoch"]
        kept = f"{out} keeps the checkpoint of epoch {epoch - 1}" if epoch > 1 else "nothing was saved"
        raise RunError(f"training diverged in epoch {epoch} ({bad[0]} is {row[bad[0]]}); lower --lr (this run "
                       f"used {cfg.lr:g}) and start a new run; {kept}")


def make_metrics(cfg: Config, params: int, history: list[dict], wall: float, device: torch.device, out: Path,
                 architecture: str) -> dict:
    last = history[-1]
    return {
        "model": cfg.model,
        "architecture": architecture,
        "params": params,
        "epochs": len(history),
        "epochs_planned": cfg.epochs,
        "complete": len(history) == cfg.epochs,
        "final_test_accuracy": last["test_accuracy"],
        "final_test_loss": last["test_loss"],
        "final_train_accuracy": last["train_accuracy"],
        "best_train_accuracy": max(h["train_accuracy"] for h in history),
        "final_val_accuracy": last.get("val_accuracy"),
        "goal_met": last["test_accuracy"] >= GOAL,
        "history": history,
        "wall_seconds": wall,
        "peak_memory_mb": peak_memory_mb(),
        "device": device_name(device),
        "seed": cfg.seed,
        "versions": versions(),
        "config": dataclasses.asdict(cfg),
        "run_dir": str(out),
        "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def save_run(out: Path, model, opt, sched, cfg: Config, history: list[dict], metrics: dict, average=None) -> None:
    """Checkpoint first, then metrics, each atomically. The checkpoint is the commit point: it holds
    a copy of the metrics, so a kill between the two writes is repaired by --resume.

    ``model_state`` holds the weights that are evaluated and reported: the averaged ones when
    ``cfg.ema`` is on (the live training weights are then kept as ``training_state`` for --resume)."""
    def on_cpu(module: torch.nn.Module) -> dict:
        return {k: v.detach().cpu() for k, v in module.state_dict().items()}

    final = model if average is None else average.module
    ckpt = {
        "model": cfg.model,
        "architecture": metrics["architecture"],
        "config": dataclasses.asdict(cfg),
        "model_state": on_cpu(final),
        **({} if average is None else {"training_state": on_cpu(model), "average_state": on_cpu(average)}),
        "optimizer_state": opt.state_dict(),
        "scheduler_state": sched.state_dict(),
        "history": history,
        "wall_seconds": metrics["wall_seconds"],
        "metrics": metrics,
    }
    atomic_write(out / "checkpoint.pt", lambda tmp: torch.save(ckpt, tmp))
    atomic_write_json(out / "metrics.json", metrics)


def build_parser() -> argparse.ArgumentParser:
    """Run settings default to None, so that main() knows which ones the user typed (--resume
    refuses a typed setting that differs from the saved run instead of ignoring it)."""
    d = Config()
    p = Parser(prog="python -m utils.train", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", choices=list(MODELS), default=None, help="teaching step (default: final)")
    p.add_argument("--epochs", type=positive_int, default=None, help=f"default: {d.epochs}")
    p.add_argument("--batch-size", type=positive_int, default=None, help=f"default: the step's recipe ({d.batch_size})")
    p.add_argument("--lr", type=positive_float, default=None,
                   help=f"peak LR (onecycle) or fixed LR (constant); default: the step's recipe ({d.lr:g} for final)")
    p.add_argument("--weight-decay", type=non_negative_float, default=None, help=f"default: {d.weight_decay:g}")
    p.add_argument("--norm-decay", action=argparse.BooleanOptionalAction, default=None,
                   help="weight decay on BatchNorm weights and biases too; --no-norm-decay: on convolution and "
                        f"linear weights only (default: {'on' if d.norm_decay else 'off'})")
    p.add_argument("--schedule", choices=["onecycle", "constant"], default=None, help="default: the step's recipe")
    p.add_argument("--augment", action=argparse.BooleanOptionalAction, default=None, help="default: the step's recipe")
    p.add_argument("--degrees", type=float, default=None,
                   help=f"augmentation: rotation range, +-degrees (default: {d.degrees:g})")
    p.add_argument("--translate", type=float, default=None, metavar="FRACTION",
                   help=f"augmentation: shift range, a fraction of the image size (default: {d.translate:g})")
    p.add_argument("--clean-epochs", type=non_negative_int, default=None, metavar="N",
                   help=f"train the last N epochs on un-augmented images (default: {d.clean_epochs})")
    p.add_argument("--label-smoothing", type=float, default=None, metavar="EPS",
                   help=f"cross-entropy label smoothing (default: {d.label_smoothing:g})")
    p.add_argument("--recalibrate-bn", action=argparse.BooleanOptionalAction, default=None,
                   help="recompute BatchNorm statistics on 10,000 clean training images before each evaluation "
                        f"(default: {'on' if d.recalibrate_bn else 'off'})")
    p.add_argument("--ema", type=float, default=None, metavar="DECAY",
                   help=f"average the weights with this decay per step, 0 is off (default: {d.ema:g})")
    p.add_argument("--seed", type=seed_int, default=None, help=f"0 to 2**63 - 1 (default: {d.seed})")
    p.add_argument("--device", choices=DEVICES, default=None, help=f"default: {d.device}")
    p.add_argument("--train-subset", type=non_negative_int, default=None, metavar="N",
                   help="train on the first N images only (default: 0, all)")
    p.add_argument("--holdout", type=non_negative_int, default=None, metavar="N",
                   help="hold out the last N training images as a validation set, for tuning; never tune on test "
                        "(default: 0)")
    p.add_argument("--data-root", default=None, metavar="DIR", help="where MNIST is kept (default: data/)")
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="run folder (default: runs/<model>-seed<seed>-<time>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue a killed run from its last epoch (only --device and --data-root may change)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal, e.g. in CI logs)")
    return p


def settings_given(args) -> dict:
    """The Config fields the user typed on the command line."""
    return {name: getattr(args, name) for name in SETTINGS if getattr(args, name) is not None}


def config_from_args(args) -> Config:
    given = settings_given(args)
    return recipe(given.pop("model", "final"), **given)


def one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n"))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.resume is None:
            cfg = config_from_args(args)
        else:
            if not Path(args.resume).is_dir():
                parser.error(f"--resume {args.resume}: no such run folder")
            if args.out is not None and Path(args.out).resolve() != Path(args.resume).resolve():
                parser.error(f"--resume continues {args.resume} in place; drop --out {args.out}")
            given = settings_given(args)  # typed settings are checked against the saved run by train()
            cfg = dataclasses.replace(Config(**load_checkpoint(args.resume)["config"]), **given) if given else None
        # A bar redrawn with \r is noise in a log file or a pipe: show it only on a terminal.
        progress = not args.no_progress and sys.stderr.isatty()
        metrics = train(cfg, args.out, resume=args.resume, progress=progress)
    except (RunError, ValueError, data.MNISTDataError, OSError) as exc:
        parser.error(one_line(exc))
    if metrics.get("final_val_accuracy") is not None:  # a tuning run (--holdout): no test number on screen
        outcome = (f"final validation accuracy {metrics['final_val_accuracy']:.2f}% at epoch {metrics['epochs']} "
                   f"(the last {metrics['config']['holdout']:,} training images, never trained on; the test "
                   "accuracy is in metrics.json, not for tuning)")
    else:
        verdict = "meets" if metrics["goal_met"] else "misses"
        outcome = (f"final test accuracy {metrics['final_test_accuracy']:.2f}% at epoch {metrics['epochs']} "
                   f"({verdict} the {GOAL:.2f}% goal)")
    print(f"{outcome} | {metrics['params']:,} parameters | wall {metrics['wall_seconds']:.1f}s")
    print(f"run folder: {args.resume or metrics['run_dir']}")  # a resumed folder may have been moved
    return 0


if __name__ == "__main__":
    sys.exit(main())
