"""What a trained run predicts: for your own images (``predict``), and on the test set with its
confusion matrix (``evaluate_checkpoint``, the command line).

    python -m utils.predict runs/final-seed1-20261124-120000      # a run folder
    python -m utils.predict path/to/checkpoint.pt                  # or the checkpoint itself

This is where images from outside the course enter a network, so this is where they are checked:
a model itself trusts its input. MNIST is read from --data-root (default: this repository's data/),
never from the path stored in the checkpoint, which may name another machine's folder.
"""
from __future__ import annotations

import torch

from . import data
from .cli import Parser, one_line
from .models import INPUT_SHAPE, build_model
from .runs import DEVICES, RunError, load_weights, resolve_device
from .train import evaluate, load_checkpoint


def check_input(x) -> None:
    """Refuse anything that is not a float32 batch of 1x28x28 finite images, with a message that says why.

    Other float types are refused rather than converted: the weights are float32, and torch's own
    error for the mismatch does not say what to do. A NaN would pass through silently and, in
    train mode, poison BatchNorm's running statistics for good."""
    expected = "float32 tensor of shape (N, 1, 28, 28)"
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"expected a {expected}, got {type(x).__name__}")
    if not x.is_floating_point():
        raise ValueError(f"expected a {expected}, got dtype {x.dtype}; convert with x.float()")
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
        raise ValueError("the input holds NaN or infinite values; clean the images first (normalised "
                         "MNIST pixels lie between -0.42 and 2.82)")


@torch.inference_mode()
def predict(model: torch.nn.Module, images: torch.Tensor) -> torch.Tensor:
    """The digit ``model`` sees in each of ``images`` (normalised, (N, 1, 28, 28) float32), in eval mode."""
    check_input(images)
    model.eval()
    device = next(model.parameters()).device
    return model(images.to(device)).argmax(1)


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
    """Rebuild the model named in the checkpoint, load its weights, evaluate on the 10k test images
    of the MNIST under ``data_root``."""
    state = load_checkpoint(path)
    dev = resolve_device(device)
    model = build_model(state["model"])
    load_weights(model, state, path)
    model = model.to(dev).to(memory_format=torch.channels_last)
    mnist = data.load_mnist(data_root)
    test_x = data.normalize(mnist.test_images).to(dev).contiguous(memory_format=torch.channels_last)
    test_y = mnist.test_labels.to(dev)
    result = evaluate(model, test_x, test_y)
    result["confusion"] = confusion_matrix(result["predictions"], test_y)
    result["model"] = state["model"]
    result["epochs"] = len(state["history"])
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
    except (RunError, ValueError, data.MNISTDataError, OSError) as exc:
        parser.error(one_line(exc))
    print(f"model {r['model']} after {r['epochs']} epochs: test accuracy {r['accuracy']:.2f}% "
          f"(loss {r['loss']:.4f}, {int(r['confusion'].trace())}/{int(r['confusion'].sum())} correct)")
    print(format_confusion(r["confusion"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
