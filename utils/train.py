"""Training, top to bottom: the data on the device, the optimizer and its schedule, one epoch, BatchNorm
recalibration, evaluation, ``train()`` (the epoch loop), and ``python -m utils.train`` (``--help``).

The settings of a run are ``utils.config.Config`` (the final recipe) and ``RECIPES`` (the steps). The images
are one tensor on the device, batches are taken by index and augmented there, batched (``utils.augment``).
The test set is scored after every epoch for the curves; nothing in training depends on it, and the result
is the final epoch. What a run writes and how ``--resume`` continues it: ``utils.runs``, through one door.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from . import GOAL, augment, runs
from .config import RECIPES, Config, recipe, reuse_freed_memory
from .data import MEAN, STD, MNISTDataError, load_mnist, normalize
from .models import build_model
from .progress import epoch_line, make_progress
from .settings import (
    Parser,
    flag,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    seed_int,
    sigterm_as_interrupt,
)

EVAL_BATCH = 2000  # images per forward pass when scoring; it changes the speed, not the numbers to report
SIDE_SET = 10_000  # training images BatchNorm is recalibrated on, and as many others the network is scored on
BACKGROUND = (0.0 - MEAN) / STD  # a black pixel after normalisation: what augmentation fills in at the edges


@dataclass
class DeviceData:
    """Normalised images (N, 1, 28, 28) float32 and labels (N,) int64, already on the device."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None

    def side_sets(self) -> tuple[slice, slice]:
        """Two disjoint sets of clean training images, up to SIDE_SET each, half the training images each in a
        small run: the first ones, on which BatchNorm is recalibrated, and the last ones, on which the network is
        scored as on the test set (eval mode, no augmentation): the train side of an honest generalisation gap."""
        n = self.train_x.shape[0]
        scored = max(1, min(SIDE_SET, n // 2))
        return slice(0, max(1, min(SIDE_SET, n - scored))), slice(n - scored, n)


def load_device_data(cfg: Config, device: torch.device) -> DeviceData:
    """Load verified MNIST, normalise once, apply holdout / subset, move everything to ``device``."""
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
    warmup, total = cfg.warmup, cfg.epochs * steps
    if warmup * total == 1:
        # torch's OneCycleLR divides by zero when its warm-up is exactly one step (a 4-step run, e.g.
        # --train-subset 512 --epochs 1): warm up over two steps instead (one and a half in a 2-step run).
        warmup = min(2, total - 0.5) / total
    # foreach: one multi-tensor kernel per update instead of a Python loop over the parameter tensors
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                          weight_decay=cfg.weight_decay, foreach=True)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps,
                                                pct_start=warmup, base_momentum=cfg.min_momentum,
                                                max_momentum=cfg.momentum)
    return opt, sched


def schedule(cfg: Config, steps: int) -> dict[str, list[float]]:
    """The LR and the momentum at every optimisation step of a run with ``cfg``, from the real scheduler."""
    opt, sched = make_optimizer(cfg, torch.nn.Linear(1, 1), steps)
    seen: dict[str, list[float]] = {"lr": [], "momentum": []}
    for _ in range(cfg.epochs * steps):
        for key in seen:
            seen[key].append(opt.param_groups[0][key])
        opt.step()
        sched.step()
    return seen


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Full batches only (a random few images sit out each epoch); at least one batch."""
    return max(1, n_train // batch_size)


def epoch_seed(seed: int, epoch: int) -> int:
    """Each epoch draws its shuffle, augmentation and dropout from its own seed, so a resumed run
    replays exactly the randomness an uninterrupted run would have used. Wrapped into the range
    torch's generators take; small seeds never wrap, so their runs are unchanged."""
    return (seed * 100_003 + epoch) % 2**63


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
                                      translate=cfg.translate, scale=cfg.scale).contiguous(
                                          memory_format=torch.channels_last)
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
    """Train ``cfg`` into the run folder ``out`` (or continue ``resume``; ``cfg`` may then be None, or ask for
    another device or data root); return the metrics. ``model``: a network, or a function (a class will do)
    that builds one after seeding, to train an architecture utils.models does not define. ``progress``:
    see utils.progress. ``overwrite`` replaces a run of the same step in ``out``, once every check has passed."""
    run = runs.open_run(cfg, out, resume=resume, overwrite=overwrite)  # checked; a saved run read once
    cfg = run.cfg
    if run.complete:
        return run.reopen(log)
    if cfg.reuse_memory:
        reuse_freed_memory()  # fewer page faults per step; the numbers do not change
    torch.manual_seed(cfg.seed)  # the initial weights follow the seed
    if model is None or not isinstance(model, torch.nn.Module):
        model = build_model(cfg.model, cfg.dropout) if model is None else model()
    model = model.to(run.device).to(memory_format=torch.channels_last)
    data = load_device_data(cfg, run.device)  # a data problem stops the run before the folder is touched,
    n_steps = steps_per_epoch(data.train_x.shape[0], cfg.batch_size)
    opt, sched = make_optimizer(cfg, model, n_steps)
    run.load_state(model, opt, sched)  # and so does a saved state that does not fit
    with run.claim(log):  # the folder is locked until the run ends
        bar = make_progress(progress, cfg.model, cfg.epochs, n_steps, len(run.history))
        try:
            for epoch in range(len(run.history) + 1, cfg.epochs + 1):
                t0 = time.perf_counter()
                lr = opt.param_groups[0]["lr"]  # at the epoch's first step
                train_loss, train_acc = train_epoch(model, opt, sched, data, cfg, epoch, bar)  # running, training mode
                recalibration, scored = data.side_sets()
                if cfg.recalibrate_bn:
                    recalibrate_batchnorm(model, data.train_x[recalibration])
                clean = evaluate(model, data.train_x[scored], data.train_y[scored])  # as the test set is scored
                test = evaluate(model, data.test_x, data.test_y)
                row = {"epoch": epoch, "train_loss": train_loss, "train_accuracy": train_acc,
                       "clean_train_loss": clean["loss"], "clean_train_accuracy": clean["accuracy"],
                       "test_loss": test["loss"], "test_accuracy": test["accuracy"], "lr": lr}
                if data.val_x is not None:
                    val = evaluate(model, data.val_x, data.val_y)
                    row.update(val_loss=val["loss"], val_accuracy=val["accuracy"])
                row["seconds"] = time.perf_counter() - t0
                run.save(row, model, opt, sched)
                line = epoch_line(row, cfg.epochs, "val" if data.val_x is not None else "test")
                bar.write(line) if bar is not None else log(line)
        finally:
            if bar is not None:
                bar.close()
    return run.metrics


# --------------------------------------------------------------------------------------------------
# python -m utils.train: one flag per field of utils.config.Config
# --------------------------------------------------------------------------------------------------

FLAG_TYPES = {"count": positive_int, "size": non_negative_int, "positive": positive_float, "rate": positive_float,
              "non_negative": non_negative_float, "range": float, "seed": seed_int, "path": str}


def shown_default(value) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else f"{value:g}" if isinstance(value, float) \
        else str(value)


def build_parser() -> argparse.ArgumentParser:
    """A flag for every Config field, its help the field's own line. The settings default to None, so that
    main() knows which ones the user typed (--resume refuses a typed setting that differs from the saved run)."""
    p = Parser(prog="python -m utils.train", description="Train a teaching step on MNIST (default: the final "
               "recipe); every epoch is saved, and --resume continues a killed run to the same numbers.")
    for f in dataclasses.fields(Config):
        rule, value = f.metadata, f.default
        others: dict[str, list[str]] = {}  # another default -> the steps whose recipe sets it
        for step, changes in RECIPES.items():
            if f.name in changes:
                others.setdefault(shown_default(changes[f.name]), []).append(step)
        also = "".join(f"; {v} for {', '.join(steps)}" for v, steps in others.items())
        help = f"{rule['why']} (default: {shown_default(value)}{also})".replace("%", "%%")
        if rule["check"] == "switch":
            p.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help)
        elif "choices" in rule:
            p.add_argument(flag(f.name), choices=list(rule["choices"]), default=None, help=help)
        else:
            p.add_argument(flag(f.name), type=FLAG_TYPES[rule["check"]], default=None, help=help)
    p.add_argument("--out", default=None, metavar="RUN_DIR",
                   help="run folder (default: runs/<model>-seed<seed>-<time>)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue a killed run from its last epoch (only --device, --data-root and --reuse-memory "
                        "may change)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (there is none anyway when stderr is not a terminal, e.g. in CI logs)")
    return p


def main(argv: list[str] | None = None) -> int:
    """``python -m utils.train``: train, print every epoch, then the final result and the run folder."""
    parser = build_parser()
    args = parser.parse_args(argv)
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(Config) if getattr(args, f.name) is not None}
    # A bar redrawn with \r is noise in a log file or a pipe: show it only on a terminal.
    progress = not args.no_progress and sys.stderr.isatty()
    with sigterm_as_interrupt():
        try:
            cfg = given if args.resume is not None else recipe(given.pop("model", "final"), **given)
            metrics = train(cfg, args.out, resume=args.resume, progress=progress)
        except KeyboardInterrupt as exc:  # runs.Interrupted once the run holds its folder
            folder = args.resume or args.out
            said = str(exc) if isinstance(exc, runs.Interrupted) else "interrupted before the first epoch began; " + (
                f"{folder} is as it was" if folder else "nothing was written")
            print(f"{parser.prog}: {said}", file=sys.stderr)
            return 130
        except (ValueError, MNISTDataError, OSError) as exc:  # RunError is a ValueError
            parser.error(str(exc))
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
    raise SystemExit(main())
