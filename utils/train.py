"""Training, top to bottom: the settings, the data on the device, the optimizer and its schedule, one
epoch, BatchNorm recalibration, evaluation, and ``train()``, the epoch loop. ``python -m utils.train --help``.

The images are one tensor on the device, batches are taken by index and augmented there, batched
(``utils.augment``). The test set is scored after every epoch for the curves; nothing in training
depends on it, and the result is the final epoch. What a run writes and how ``--resume`` continues
it: ``utils.runs``; the command line: ``utils.cli``.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import augment, runs, settings
from .augment import DEGREES, TRANSLATE
from .data import DEFAULT_ROOT, MEAN, STD, TRAIN_SIZE, load_mnist, normalize
from .models import MODELS, build_model
from .progress import epoch_line, make_progress
from .runs import DEVICES, resolve_device
from .settings import SEED_LIMIT, RunError, setting
from .summary import count_parameters


@dataclass
class Config:
    """Everything that defines a run. The defaults are the final recipe; RECIPES adjusts the earlier steps."""

    model: str = setting("final", "the teaching step (utils/models.py)", "choice", choices=tuple(MODELS), run=True)
    epochs: int = setting(15, "passes over the training images (10 lost the margin on validation)", "count")
    batch_size: int = setting(128, "images per SGD step", "count")
    lr: float = setting(0.1, "peak LR: one-cycle starts at lr/25, peaks here, ends near 0", "positive",
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
    augment: bool = setting(True, "random rotation, shift and scale of every training image", "switch")
    degrees: float = setting(DEGREES, "augmentation: rotation range, +-degrees", "range", low=0, high=180)
    translate: float = setting(TRANSLATE, "augmentation: shift range, a fraction of the image size",
                               "range", low=0, high=0.5)
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


# Every step trains with the final recipe. Steps 1-4 only switch augmentation off, so each step differs
# from the one before by the one change it teaches, and step 5 differs from step 4 by augmentation alone.
RECIPES: dict[str, dict] = {
    "baseline": dict(augment=False),
    "batchnorm": dict(augment=False),
    "dropout": dict(augment=False),
    "gap": dict(augment=False),
    "final": dict(),
}
EVAL_BATCH = 2000  # images per forward pass when scoring; it changes the speed, not the numbers to report
RECALIBRATION_IMAGES = 10_000
BACKGROUND = (0.0 - MEAN) / STD  # a black pixel after normalisation: what augmentation fills in at the edges


def recipe(model: str, **overrides) -> Config:
    """The default Config for a teaching step, with ``overrides`` applied on top."""
    return Config(**{"model": model, **RECIPES[model], **overrides})


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
    check_holdout(cfg)  # also here: tools and tests load data without train()
    mnist = load_mnist(cfg.data_root)
    x, y = mnist.train_images, mnist.train_labels
    val_x = val_y = None
    if cfg.holdout:
        x, y, val_x, val_y = x[: -cfg.holdout], y[: -cfg.holdout], x[-cfg.holdout :], y[-cfg.holdout :]
    if cfg.train_subset:
        x, y = x[: cfg.train_subset], y[: cfg.train_subset]

    def put(images):
        return normalize(images).to(device).contiguous(memory_format=torch.channels_last)

    return DeviceData(train_x=put(x), train_y=y.to(device), test_x=put(mnist.test_images),
                      test_y=mnist.test_labels.to(device), val_x=None if val_x is None else put(val_x),
                      val_y=None if val_y is None else val_y.to(device))


def make_optimizer(cfg: Config, model: torch.nn.Module, steps: int):
    """SGD with (Nesterov) momentum and weight decay, and the one-cycle schedule over ``steps`` per epoch:
    the LR from lr/25 up to lr over the warm-up, then down to lr/25/1e4; the momentum the other way."""
    warmup = cfg.warmup
    if warmup * cfg.epochs * steps == 1:
        # torch's OneCycleLR divides by zero when its warm-up is exactly one step (a 4-step run,
        # e.g. --train-subset 512 --epochs 1): warm up over two steps instead.
        warmup = 0.5
    # foreach: one multi-tensor kernel per update instead of a Python loop over the parameter tensors
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps,
                                                pct_start=warmup, base_momentum=cfg.min_momentum,
                                                max_momentum=cfg.momentum)
    return opt, sched


def lr_curve(cfg: Config, steps: int) -> list[float]:
    """The LR at every optimisation step of a run with ``cfg``, computed by the real scheduler."""
    opt, sched = make_optimizer(cfg, torch.nn.Linear(1, 1), steps)
    lrs = []
    for _ in range(cfg.epochs * steps):
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


def batches(data: DeviceData, cfg: Config, epoch: int):
    """The epoch's mini-batches (x, y): a fresh shuffle, and each image augmented by its own random draw."""
    torch.manual_seed(epoch_seed(cfg.seed, epoch))  # dropout's draws
    gen = torch.Generator(device=data.train_x.device).manual_seed(epoch_seed(cfg.seed, epoch))
    n = data.train_x.shape[0]
    batch = min(cfg.batch_size, n)
    order = torch.randperm(n, generator=gen, device=data.train_x.device)
    for step in range(steps_per_epoch(n, batch)):
        idx = order[step * batch : (step + 1) * batch]
        x, y = data.train_x[idx], data.train_y[idx]
        if cfg.augment:
            x = augment.random_affine(x, fill=BACKGROUND, generator=gen, degrees=cfg.degrees,
                                      translate=cfg.translate).contiguous(memory_format=torch.channels_last)
        yield x, y


def train_epoch(model, opt, sched, data: DeviceData, cfg: Config, epoch: int, bar=None) -> tuple[float, float]:
    """One pass over the training images; returns (mean loss, accuracy %). One host sync, at the end."""
    model.train()  # Dropout drops, BatchNorm normalises with each batch's own statistics
    loss_sum = torch.zeros((), device=data.train_x.device)
    correct = torch.zeros((), device=data.train_x.device, dtype=torch.long)
    seen = 0
    for x, y in batches(data, cfg, epoch):
        logits = model(x)  # forward: 10 class scores per image
        loss = F.cross_entropy(logits, y)  # softmax + negative log-likelihood of the true digit, batch mean
        opt.zero_grad(set_to_none=True)  # forget the previous step's gradients
        loss.backward()  # d loss / d weight for every weight
        opt.step()  # weight -= lr * momentum-smoothed (gradient + weight_decay * weight)
        sched.step()  # the next step's LR and momentum
        loss_sum += loss.detach() * y.shape[0]
        correct += (logits.argmax(1) == y).sum()
        seen += y.shape[0]
        if bar is not None:
            bar.update(1)
    return (loss_sum / seen).item(), 100.0 * correct.item() / seen


@torch.no_grad()
def recalibrate_batchnorm(model: torch.nn.Module, x: torch.Tensor, batch_size: int = EVAL_BATCH) -> None:
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
def evaluate(model, x: torch.Tensor, y: torch.Tensor, batch_size: int = EVAL_BATCH) -> dict:
    """Loss, accuracy % and predictions over (x, y), in eval mode (no dropout; BatchNorm uses its running
    statistics) and without gradients."""
    model.eval()
    loss_sum = torch.zeros((), device=x.device)
    preds = []
    for i in range(0, x.shape[0], batch_size):
        logits = model(x[i : i + batch_size])
        loss_sum += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum")
        preds.append(logits.argmax(1))
    pred = torch.cat(preds)
    return {"loss": loss_sum.item() / len(y), "accuracy": 100.0 * (pred == y).sum().item() / len(y),
            "predictions": pred}


def train(cfg: Config | None = None, out: str | Path | None = None, *, model=None,
          resume: str | Path | None = None, progress=True, overwrite: bool = False, log=print) -> dict:
    """Train ``cfg`` into the run folder ``out`` (or continue ``resume``; ``cfg`` may then be None or ask for
    another device or data root); return the metrics. ``model``: a network, or a function (a class will do)
    that builds one after seeding, to train an architecture utils.models does not define. ``progress``:
    see utils.progress. ``overwrite`` replaces a run in ``out``, once every check has passed."""
    cfg, out, saved, device = begin(cfg, out, resume, overwrite, named_model=model is None)
    start = time.perf_counter()
    if cfg.reuse_memory:
        runs.reuse_freed_memory()  # fewer page faults per step; the numbers do not change
    torch.manual_seed(cfg.seed)  # the initial weights follow the seed
    if model is None or not isinstance(model, torch.nn.Module):
        model = build_model(cfg.model) if model is None else model()
    model = model.to(device).to(memory_format=torch.channels_last)
    arch = runs.architecture_id(model)
    history, wall_before = [], 0.0
    if saved is not None:
        runs.load_weights(model, saved, out, arch)  # the same network, or a RunError
        history, wall_before = saved["history"], saved["wall_seconds"]
        if len(history) >= cfg.epochs:
            return runs.reopen_complete(saved, out, log)
    data = load_device_data(cfg, device)  # a data problem stops the run before the folder is touched,
    n_steps = steps_per_epoch(data.train_x.shape[0], cfg.batch_size)
    opt, sched = make_optimizer(cfg, model, n_steps)
    if saved is not None:
        runs.load_training_state(saved, opt, sched, out)  # and so does a saved state that does not fit
    params = count_parameters(model)
    with runs.claim_folder(out, saved, overwrite, cfg.model) as folder:  # locked until the run ends
        if saved is not None:
            log(f"resuming {out} after epoch {len(history)}/{cfg.epochs}")
        log(f"model {cfg.model}: {params:,} parameters | device {runs.device_name(device)} | "
            f"run folder {runs.shown_path(out)}")
        bar = make_progress(progress, cfg.model, cfg.epochs, n_steps, len(history))
        metrics = {}
        try:
            for epoch in range(len(history) + 1, cfg.epochs + 1):
                t0 = time.perf_counter()
                lr = opt.param_groups[0]["lr"]  # at the epoch's first step
                train_loss, train_acc = train_epoch(model, opt, sched, data, cfg, epoch, bar)
                if cfg.recalibrate_bn:
                    recalibrate_batchnorm(model, data.train_x[:RECALIBRATION_IMAGES])
                test = evaluate(model, data.test_x, data.test_y)
                row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                       "test_loss": test["loss"], "test_accuracy": test["accuracy"], "lr": lr}
                if data.val_x is not None:
                    val = evaluate(model, data.val_x, data.val_y)
                    row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
                runs.check_finite(row, cfg.lr, out)
                row["seconds"] = time.perf_counter() - t0
                history.append(row)
                wall = wall_before + time.perf_counter() - start
                metrics = runs.make_metrics(cfg, params, history, wall, device, out, arch)
                folder.save(model, opt, sched, cfg, history, metrics)
                line = epoch_line(row, cfg.epochs, "val" if data.val_x is not None else "test")
                bar.write(line) if bar is not None else log(line)
        finally:
            if bar is not None:
                bar.close()
    return metrics


def validate(cfg: Config, *, named_model: bool = True) -> None:
    """Refuse a Config that cannot make a sensible run, with one message per problem (the rules are the
    fields' own, see ``utils.settings``). train() calls this before it touches the run folder."""
    settings.check_fields(cfg, skip=() if named_model else ("model",))
    check_holdout(cfg)
    n = min(TRAIN_SIZE - cfg.holdout, cfg.train_subset or TRAIN_SIZE)
    if cfg.batch_size > n:
        raise RunError(f"batch size {cfg.batch_size} (--batch-size) is larger than the {n:,} training images; "
                       f"use --batch-size {n} or less (the recipes use 128)")


def check_holdout(cfg: Config) -> None:
    if cfg.holdout >= TRAIN_SIZE:
        raise RunError(f"--holdout {cfg.holdout} leaves no training images: hold out fewer than the "
                       f"{TRAIN_SIZE:,} training images (10000 is the usual validation split)")


def stored_settings(config: dict) -> dict:
    """A Config dict saved by a run or sweep, read as today's code reads it (``utils.settings.stored``)."""
    return settings.stored(config, Config)


def load_checkpoint(path: str | Path) -> dict:
    """A run's checkpoint (``utils.runs.read_checkpoint``) whose settings this version can train with."""
    state = runs.read_checkpoint(path)
    config = stored_settings(state["config"])
    unknown = sorted(set(config) - {f.name for f in dataclasses.fields(Config)})
    try:
        if unknown:
            raise RunError(f"another version of the course made it: its config has settings this one does not "
                           f"know: {', '.join(unknown)}")
        validate(Config(**config))
    except RunError as exc:
        what = str(exc) if unknown else f"its config is not valid: {exc}"
        raise runs.not_ours(runs.checkpoint_file(path), what) from exc
    return {**state, "config": {**config, "data_root": str(DEFAULT_ROOT)}}  # this machine's MNIST, not the saver's


def begin(cfg: Config | None, out, resume, overwrite: bool, named_model: bool):
    """The settings, folder, saved state (None for a new run) and device of a run about to start, after
    every check that can refuse it: bad settings, changed settings on resume, a folder holding a run."""
    saved = None
    if resume is not None:
        out = runs.resume_dir(resume)  # a run folder no other process is writing
        saved = load_checkpoint(out)
        cfg, asked = Config(**saved["config"]), cfg
        if asked is not None and asked.model != cfg.model:
            raise RunError(f"--resume {out} holds a '{cfg.model}' run, not '{asked.model}'; drop --model or pick "
                           "another folder")
        cfg = settings.resumed(cfg, asked, runs.RESUME_MAY_CHANGE, f"--resume {out}")
    else:
        cfg = cfg or Config()
        out = runs.run_dir(out, cfg.model, cfg.seed)
    validate(cfg, named_model=named_model)
    device = resolve_device(cfg.device)
    if saved is None:
        runs.check_vacant(out, cfg.model, overwrite)  # checked again once the folder is locked
    return cfg, out, saved, device


if __name__ == "__main__":
    from .cli import main

    raise SystemExit(main())
