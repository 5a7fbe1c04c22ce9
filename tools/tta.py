"""Test-time shifts, measured on the validation split: does averaging a trained network's predictions
over the image and its four one-pixel shifts beat a single pass? (results/tuning.md; not in the recipe)

    python -m tools.tta runs/tune3/base-s1 runs/tune3/base-s2    # run folders trained with --holdout

Each run is scored on its own validation split (the last ``holdout`` training images), once plainly
and once with the shifts; the test set is not read.
"""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

from utils import augment, runs
from utils.config import Config
from utils.predict import load_network
from utils.settings import Parser, RunError
from utils.train import BACKGROUND, load_device_data

SHIFTS = ((1, 0), (-1, 0), (0, 1), (0, -1))  # (x, y) in pixels


def shifted_views(x: torch.Tensor, fill: float) -> list[torch.Tensor]:
    """``x`` and its four one-pixel shifts; pixels shifted in take the value ``fill``."""
    n = x.shape[0]
    views = [x]
    for dx, dy in SHIFTS:
        theta = augment.affine_theta(torch.zeros(n), torch.tensor([[float(dx), float(dy)]]).expand(n, 2),
                                     torch.ones(n), x.shape[-1])
        shifted = augment.apply_affine(x, theta.to(x.device), fill=fill)
        views.append(shifted.contiguous(memory_format=torch.channels_last))
    return views


@torch.inference_mode()
def accuracy(model, views: list[torch.Tensor], y: torch.Tensor, batch_size: int = 2000) -> float:
    """Accuracy % of the class with the highest softmax probability averaged over ``views``."""
    model.eval()
    probs = sum(torch.cat([F.softmax(model(v[i:i + batch_size]), 1) for i in range(0, v.shape[0], batch_size)])
                for v in views)
    return 100.0 * (probs.argmax(1) == y).float().mean().item()


@functools.cache
def validation_views(holdout: int, data_root: str) -> tuple[list[torch.Tensor], torch.Tensor]:
    """The plain and shifted views of a validation split, and its labels: made once per split, not per run."""
    dd = load_device_data(Config(holdout=holdout, data_root=data_root), torch.device("cpu"))
    return shifted_views(dd.val_x, BACKGROUND), dd.val_y


def score(run: Path) -> tuple[float, float]:
    """(plain, shifted) validation accuracy % of the run in ``run``."""
    state = runs.read_checkpoint(run)  # refuses, among others, a network utils.models does not define
    cfg = state["config"]
    if not cfg.holdout:
        raise RunError(f"{run} trained without --holdout: it has no validation split to score "
                         "(this tool never reads the test set)")
    model = load_network(run, state).to(memory_format=torch.channels_last)
    views, y = validation_views(cfg.holdout, cfg.data_root)
    return accuracy(model, views[:1], y), accuracy(model, views, y)


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m tools.tta", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders trained with --holdout")
    args = parser.parse_args(argv)
    rows = []
    try:
        for run in args.runs:
            rows.append(score(Path(run)))
            print(f"{run}: validation {rows[-1][0]:.2f}% plain, {rows[-1][1]:.2f}% with test-time shifts", flush=True)
    except RunError as exc:
        parser.error(str(exc))
    plain, shifted = zip(*rows, strict=True)
    print(f"mean over {len(rows)} runs: {sum(plain) / len(rows):.3f}% plain, {sum(shifted) / len(rows):.3f}% shifted "
          f"(lowest {min(plain):.2f}% and {min(shifted):.2f}%)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
