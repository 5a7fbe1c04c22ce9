"""Model selection on a validation split: train a candidate trunk on 50,000 training images and
score it on the other 10,000 (``--holdout 10000``). The test set plays no part here: this script
prints validation numbers only. results/tuning.md's trunk rows come from its output, its recipe
rows from ``python -m utils.train --holdout 10000``.

    python -m tools.tune "q10 12 16 d 16 16 d" --seed 1            # one candidate, one seed
    python -m tools.tune "q10 12 16 d 16 16 d" --seed 1 --batch-size 64
    python -m tools.tune --time "q10 12 16 d 16 16 d" "q8 12 16 d 16 16 d"   # training-step cost only

A candidate trunk is a string of tokens, read left to right from the 1x28x28 input:

    N     3x3 convolution (no padding) to N channels -> BatchNorm -> ReLU
    qN    3x3 convolution to N channels -> 2x2 max-pool -> BatchNorm -> ReLU (pool first: 4x less work)
    1xN   1x1 convolution to N channels -> BatchNorm -> ReLU
    p     2x2 max-pool
    d     Dropout (rate --dropout)

followed by the GAP head of utils.models (global average pooling, 1x1 convolution to 10 classes).
``"q10 12 16 d 16 16 d"`` builds exactly ``utils.models.build_model("final")`` (a test checks it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch import nn

from tools.parallel import interrupted_in_one_line
from utils import REPO_ROOT
from utils.config import Config
from utils.data import MNISTDataError
from utils.models import DROPOUT, MnistNet
from utils.runs import CHECKPOINT
from utils.settings import (
    Parser,
    SettingsDiffer,
    argument_type,
    fraction,
    non_negative_float,
    positive_float,
    positive_int,
    seed_int,
)
from utils.train import train

validation_size = argument_type(int, "a positive integer", "at least 1: a candidate is judged on the validation "
                                "split (10000 is the usual)", lambda v: v > 0)


def conv_block(cin: int, cout: int, *, batchnorm: bool, kernel: int = 3, pool: bool = False) -> list[nn.Module]:
    """Convolution without padding -> [2x2 max-pool] -> [BatchNorm] -> ReLU, as in utils.models' steps
    (which write every layer out instead, so that their diffs stay readable)."""
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, kernel, bias=not batchnorm)]
    if pool:
        layers.append(nn.MaxPool2d(2))
    if batchnorm:
        layers.append(nn.BatchNorm2d(cout))
    layers.append(nn.ReLU())
    return layers


def gap_head(channels: int = 16) -> nn.Sequential:
    """The step-4 head for a trunk ending in ``channels`` maps: GAP, then a 1x1 convolution to 10 classes."""
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, 10, 1), nn.Flatten())


MAX_WIDTH = 1024  # channels; the course's networks use at most 16, and 1024 already makes a 1M-parameter layer


def width(token: str, digits: str, spec: str) -> int:
    """The channel count a convolution token asks for: a whole number from 1 to MAX_WIDTH."""
    if not digits.isdigit() or not 1 <= int(digits) <= MAX_WIDTH:
        raise ValueError(f"token {token!r} in {spec!r} needs a channel count from 1 to {MAX_WIDTH}, e.g. 'q10', '16', "
                         "'1x8'; see `python -m tools.tune --help`")
    return int(digits)


def build(spec: str, dropout: float = DROPOUT) -> MnistNet:
    """The candidate network for ``spec`` (see the module docstring), with the final model's GAP head."""
    layers: list[nn.Module] = []
    channels = 1
    for token in spec.split():
        if token == "p":
            layers.append(nn.MaxPool2d(2))
        elif token == "d":
            layers.append(nn.Dropout(dropout))
        elif token.startswith("1x"):
            out = width(token, token[2:], spec)
            layers += conv_block(channels, out, batchnorm=True, kernel=1)
            channels = out
        elif token.startswith("q"):
            out = width(token, token[1:], spec)
            layers += conv_block(channels, out, batchnorm=True, pool=True)
            channels = out
        elif token.isdigit():
            out = width(token, token, spec)
            layers += conv_block(channels, out, batchnorm=True)
            channels = out
        else:
            raise ValueError(f"unknown token {token!r} in {spec!r}; see `python -m tools.tune --help`")
    return MnistNet(nn.Sequential(*layers), gap_head(channels))


def check_spec(spec: str) -> None:
    """Refuse a candidate that cannot train: no layers, a bad token, or a trunk that shrinks the 28x28
    image to nothing (tried on a blank batch)."""
    if not spec.split():
        raise ValueError("an empty candidate has no layers; give a trunk such as \"q10 12 16 d 16 16 d\"")
    model = build(spec).eval()
    try:
        with torch.no_grad():
            model(torch.zeros(2, 1, 28, 28))
    except RuntimeError:
        raise ValueError(f"{spec!r} shrinks the 28x28 image to nothing before the head; use fewer "
                         "convolutions or pools") from None


def time_steps(specs: list[str], batch_size: int, rounds: int = 5, steps: int = 10) -> dict[str, float]:
    """Milliseconds per training step of each candidate (``utils.exercises.time_training_steps``)."""
    from utils.exercises import time_training_steps

    return time_training_steps({spec: build(spec) for spec in specs}, batch_size, rounds, steps)


def candidate_run(cfg: Config, out: Path, spec: str) -> dict:
    """Train ``spec`` with ``cfg`` into ``out``: continued (or reused) when ``out`` holds this candidate with these
    settings, replaced when it holds it with others; never another step's run (utils.runs.check_replaceable)."""
    def builder():
        return build(spec, cfg.dropout)

    quiet = lambda *_: None  # noqa: E731 - the row printed at the end is the output
    if (out / CHECKPOINT).exists():
        try:
            return train(cfg, out, model=builder, resume=out, progress=False, log=quiet)
        except SettingsDiffer:
            pass
    return train(cfg, out, model=builder, progress=False, overwrite=True, log=quiet)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.tune", description=__doc__.split("\n\n")[0],
                    formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("spec", nargs="+", help='candidate trunk, e.g. "q10 12 16 d 16 16 d" (several with --time)')
    parser.add_argument("--time", action="store_true", help="only time a training step of each candidate")
    parser.add_argument("--seed", type=seed_int, default=1)
    parser.add_argument("--dropout", type=fraction, default=Config.dropout)
    parser.add_argument("--lr", type=positive_float, default=Config.lr)
    parser.add_argument("--batch-size", type=positive_int, default=Config.batch_size)
    parser.add_argument("--weight-decay", type=non_negative_float, default=Config.weight_decay)
    parser.add_argument("--epochs", type=positive_int, default=Config.epochs)
    parser.add_argument("--holdout", type=validation_size, default=10_000)
    parser.add_argument("--recalibrate-bn", action=argparse.BooleanOptionalAction, default=Config.recalibrate_bn)
    parser.add_argument("--threads", type=positive_int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", default=None, help="run folder (default: runs/tune/<spec>-<settings>)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        for spec in args.spec:
            check_spec(spec)
    except ValueError as exc:
        parser.error(str(exc))
    if args.time:
        for spec, ms in time_steps(args.spec, args.batch_size).items():
            params = sum(p.numel() for p in build(spec).parameters())
            print(f"{spec:<28} {params:>6,} parameters  {ms:6.1f} ms per step of {args.batch_size} "
                  f"({torch.get_num_threads()} threads) -> {ms * 60_000 / args.batch_size / 1000:5.1f} s "
                  "per 60k images")
        return 0
    if len(args.spec) != 1:
        parser.error("train one candidate at a time (several only with --time)")
    args.spec = args.spec[0]
    name = (f"{args.spec.replace(' ', '_')}-seed{args.seed}-drop{args.dropout:g}-lr{args.lr:g}"
            f"-bs{args.batch_size}-wd{args.weight_decay:g}")
    out = Path(args.out) if args.out is not None else REPO_ROOT / "runs" / "tune" / name
    with interrupted_in_one_line(parser.prog, f"the epochs saved in {out} are kept: the same command continues "
                                 "from them"):
        try:
            cfg = Config(model="candidate", epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         weight_decay=args.weight_decay, dropout=args.dropout, seed=args.seed, device="cpu",
                         holdout=args.holdout, recalibrate_bn=args.recalibrate_bn)
            metrics = candidate_run(cfg, out, args.spec)
        except (ValueError, MNISTDataError, OSError) as exc:  # RunError is a ValueError
            parser.error(str(exc))
    last = metrics["history"][-1]
    row = {"spec": args.spec, "seed": args.seed, "dropout": args.dropout, "lr": args.lr,
           "batch_size": args.batch_size, "weight_decay": args.weight_decay, "params": metrics["params"],
           "val_accuracy": last["val_accuracy"], "val_loss": last["val_loss"], "epochs": metrics["epochs"]}
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
