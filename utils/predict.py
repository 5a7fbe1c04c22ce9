"""What a trained run predicts: for your own images (``predict``), and on the test set with its
confusion matrix (``evaluate_checkpoint``, the command line).

    python -m utils.predict runs/final-seed1-20261124-120000      # a run folder
    python -m utils.predict path/to/checkpoint.pt                  # or the checkpoint itself

This is where images from outside the course enter a network, so this is where they are checked:
a model itself trusts its input. MNIST is read from --data-root (default: this repository's data/),
never from the path stored in the checkpoint, which may name another machine's folder.
"""
from __future__ import annotations

from pathlib import Path

import torch

from . import data, runs
from .config import DEVICES, resolve_device
from .models import INPUT_SHAPE, MODELS
from .settings import Parser, RunError
from .train import EVAL_BATCH, evaluate

PAPER, INK = (0 - data.MEAN) / data.STD, (1 - data.MEAN) / data.STD  # a normalised pixel lies between these
NORMALISED = f"normalised MNIST pixels lie between {PAPER:.2f} (paper) and {INK:.2f} (ink)"
HOW = "pass raw 0-255 pixels, uint8 (N, 28, 28), through utils.data.normalize"


def check_input(x) -> None:
    """Refuse anything that is not a float32 batch of 1x28x28 normalised images, with a message that says why.

    Other float types are refused rather than converted: the weights are float32, and torch's own error for
    the mismatch does not say what to do. Values outside the normalised range, or images without a pixel of
    paper (a [0, 1] image has none below 0), are raw or differently scaled pixels, on which the network
    answers wrongly without a word; a NaN would pass through silently."""
    expected = "float32 tensor of shape (N, 1, 28, 28)"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"expected a {expected} of normalised pixels, got dtype {x.dtype}; {HOW}")
    if x.dtype != torch.float32:
        raise ValueError(f"expected a {expected} (the weights are float32), got dtype {x.dtype}; "
                         "convert with x.float()")
    if x.ndim != 4:
        raise ValueError(f"expected a {expected}, got {x.ndim} dimensions {tuple(x.shape)}")
    if x.shape[1] != INPUT_SHAPE[0]:
        raise ValueError(f"expected 1 input channel (N, 1, 28, 28), got {x.shape[1]} channels {tuple(x.shape)}")
    if tuple(x.shape[2:]) != INPUT_SHAPE[1:]:
        raise ValueError(f"expected 28x28 images (N, 1, 28, 28), got {x.shape[2]}x{x.shape[3]} {tuple(x.shape)}")
    if not torch.isfinite(x).all():
        raise ValueError(f"the input holds NaN or infinite values; clean the images first ({NORMALISED})")
    low, high = float(x.min()), float(x.max())
    if low < PAPER - 0.01 or high > INK + 0.01:
        raise ValueError(f"the images hold values from {low:.4g} to {high:.4g}, but {NORMALISED}; {HOW}")
    unpapered = (x.amin(dim=(1, 2, 3)) >= 0).nonzero().flatten()
    if len(unpapered):
        raise ValueError(f"image {int(unpapered[0])} has no pixel below 0, where a normalised image has its paper "
                         f"({NORMALISED}): it looks scaled to [0, 1] without the normalisation; {HOW}")


def load_network(path: str | Path, state: dict | None = None) -> torch.nn.Module:
    """The trained network of a run folder or a ``checkpoint.pt`` (``state``: its checkpoint, already read), in
    eval mode on the CPU; one line naming the file for anything that is not a checkpoint of a step of the course."""
    state = runs.read_checkpoint(path) if state is None else state
    if state["network"] is None:
        raise RunError(f"{runs.checkpoint_file(path)} holds a '{state['model']}' network, which utils/models.py does "
                       f"not define (its steps: {', '.join(MODELS)}); load it with the code that built it")
    return state["network"].eval()


@torch.inference_mode()
def predict(model: torch.nn.Module | str | Path, images: torch.Tensor) -> torch.Tensor:
    """The digit the network sees in each of ``images`` (normalised, (N, 1, 28, 28) float32), in eval mode, scored
    EVAL_BATCH images at a time. ``model``: a network, or a run folder or ``checkpoint.pt`` to load it from."""
    if isinstance(model, (str, Path)):
        model = load_network(model)
    if not isinstance(model, torch.nn.Module):
        what = "a state_dict, weights without their network" if isinstance(model, dict) else type(model).__name__
        raise ValueError(f"predict takes a network (a torch.nn.Module) or a run folder, got {what}: load the weights "
                         "into a network first (net = build_model('final'); net.load_state_dict(weights)), or pass "
                         "the run folder or its checkpoint.pt")
    check_input(images)
    model.eval()
    device = next(model.parameters()).device
    return torch.cat([model(images[i : i + EVAL_BATCH].to(device)).argmax(1)
                      for i in range(0, len(images), EVAL_BATCH)]) if len(images) else torch.zeros(0, dtype=torch.long)


def confusion_matrix(pred: torch.Tensor, target: torch.Tensor, num_classes: int = 10) -> torch.Tensor:
    """Counts of (true class, predicted class) as a (num_classes, num_classes) int64 tensor:
    row = true digit, column = predicted digit; the diagonal holds the correct answers."""
    pred, target = pred.detach().long().cpu().flatten(), target.detach().long().cpu().flatten()
    if pred.shape != target.shape:
        raise ValueError(f"pred and target differ in length: {tuple(pred.shape)} vs {tuple(target.shape)}")
    if len(pred) and (min(pred.min(), target.min()) < 0 or max(pred.max(), target.max()) >= num_classes):
        raise ValueError(f"class labels must lie in [0, {num_classes})")
    return torch.bincount(target * num_classes + pred, minlength=num_classes**2).reshape(num_classes, num_classes)


def format_confusion(matrix: torch.Tensor) -> str:
    n = matrix.shape[0]
    lines = ["true \\ pred " + "".join(f"{j:>6}" for j in range(n))]
    for i in range(n):
        lines.append(f"{i:>11} " + "".join(f"{int(v):>6}" for v in matrix[i]))
    return "\n".join(lines)


def evaluate_checkpoint(path, device: str = "auto", data_root=data.DEFAULT_ROOT) -> dict:
    """Rebuild the network of the checkpoint, load its weights, evaluate on the 10k test images of the MNIST
    under ``data_root``."""
    state = runs.read_checkpoint(path)
    dev = resolve_device(device)
    model = load_network(path, state)
    model = model.to(dev).to(memory_format=torch.channels_last)
    mnist = data.load_mnist(data_root)
    test_x = data.normalize(mnist.test_images).to(dev).contiguous(memory_format=torch.channels_last)
    test_y = mnist.test_labels.to(dev)
    result = evaluate(model, test_x, test_y)
    result["confusion"] = confusion_matrix(result["predictions"], test_y)
    result["model"], result["epochs"] = state["model"], len(state["history"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="python -m utils.predict", description=__doc__.split("\n\n")[0])
    parser.add_argument("run", metavar="RUN_DIR_OR_CHECKPOINT")
    parser.add_argument("--device", choices=DEVICES, default="auto", help="default: auto")
    parser.add_argument("--data-root", default=str(data.DEFAULT_ROOT), metavar="DIR",
                        help="where MNIST lives (default: data/, or $MNIST_ROOT)")
    args = parser.parse_args(argv)
    try:
        r = evaluate_checkpoint(args.run, args.device, args.data_root)
    except (ValueError, data.MNISTDataError, OSError) as exc:  # RunError is a ValueError
        parser.error(str(exc))
    print(f"model {r['model']} after {r['epochs']} epochs: test accuracy {r['accuracy']:.2f}% "
          f"(loss {r['loss']:.4f}, {int(r['confusion'].trace())}/{int(r['confusion'].sum())} correct)")
    print(format_confusion(r["confusion"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
