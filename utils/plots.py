"""Figures for the notebooks and the README. Each function returns a matplotlib Figure."""
from __future__ import annotations

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "ipympl", "widget", "qt", "tk", "macosx")):
    matplotlib.use("Agg")  # no display (CI, papermill): draw off-screen
import matplotlib.pyplot as plt
import torch

from . import augment, data

DPI = 72


def _figure(*args, **kwargs):
    kwargs.setdefault("dpi", DPI)
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)


def sample_grid(images: torch.Tensor, labels: torch.Tensor, n: int = 32, cols: int = 8, title: str | None = None):
    """The first ``n`` uint8 or float images with their labels."""
    rows = (n + cols - 1) // cols
    fig, axes = _figure(rows, cols, figsize=(cols * 0.9, rows * 1.0))
    for ax, img, label in zip(axes.flat, images[:n], labels[:n]):
        ax.imshow(img.squeeze().float().cpu(), cmap="gray_r")
        ax.set_title(str(int(label)), fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    return fig


def class_balance(train_labels: torch.Tensor, test_labels: torch.Tensor):
    """Images per digit in the training and test sets."""
    fig, ax = _figure(figsize=(6, 2.6))
    x = torch.arange(10)
    ax.bar(x - 0.2, torch.bincount(train_labels, minlength=10) / len(train_labels) * 100, 0.4, label="train (60k)")
    ax.bar(x + 0.2, torch.bincount(test_labels, minlength=10) / len(test_labels) * 100, 0.4, label="test (10k)")
    ax.set_xticks(x.tolist())
    ax.set_xlabel("digit")
    ax.set_ylabel("% of images")
    ax.legend(fontsize=8)
    return fig


def training_curves(history: list[dict], title: str = "", others: dict[str, list[dict]] | None = None):
    """Loss and accuracy per epoch, train vs test; ``others`` adds earlier runs' test accuracy, dashed."""
    fig, (ax_loss, ax_acc) = _figure(1, 2, figsize=(9, 3))
    epochs = [h["epoch"] for h in history]
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["test_loss"] for h in history], "o-", label="test")
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("cross-entropy")
    ax_acc.plot(epochs, [h["train_accuracy"] for h in history], "o-", label="train")
    ax_acc.plot(epochs, [h["test_accuracy"] for h in history], "o-", label="test")
    for name, other in (others or {}).items():
        ax_acc.plot([h["epoch"] for h in other], [h["test_accuracy"] for h in other], "--", label=f"test, {name}")
    ax_acc.axhline(99.4, color="gray", lw=0.8, ls=":")
    ax_acc.set_ylim(97, 100)
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy (%)")
    for ax in (ax_loss, ax_acc):
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    return fig


def lr_schedule(lrs: list[float], steps_per_epoch: int):
    """The learning rate at every optimisation step, with epochs on the x axis."""
    fig, ax = _figure(figsize=(6, 2.6))
    ax.plot([i / steps_per_epoch for i in range(len(lrs))], lrs)
    ax.set_xlabel("epoch")
    ax.set_ylabel("learning rate")
    ax.grid(alpha=0.3)
    return fig


def augmentation_preview(images: torch.Tensor, draws: int = 8, seed: int = 0):
    """Each row: one digit, then ``draws`` independent random affine draws of it."""
    gen = torch.Generator().manual_seed(seed)
    base = images.float().unsqueeze(1) / 255.0 if images.dtype == torch.uint8 else images
    rows = base.shape[0]
    fig, axes = _figure(rows, draws + 1, figsize=((draws + 1) * 0.9, rows * 0.95))
    axes = axes.reshape(rows, draws + 1)
    for r in range(rows):
        variants = augment.random_affine(base[r : r + 1].repeat(draws, 1, 1, 1), generator=gen)
        axes[r, 0].imshow(base[r, 0], cmap="gray_r")
        axes[r, 0].set_title("original" if r == 0 else "", fontsize=8)
        for c in range(draws):
            axes[r, c + 1].imshow(variants[c, 0], cmap="gray_r")
    for ax in axes.flat:
        ax.axis("off")
    return fig


def misclassified(images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor, n: int = 24, cols: int = 8):
    """The first ``n`` test images the model gets wrong, titled true -> predicted."""
    wrong = (predictions.cpu() != labels.cpu()).nonzero().flatten()[:n]
    rows = max(1, (len(wrong) + cols - 1) // cols)
    fig, axes = _figure(rows, cols, figsize=(cols * 0.95, rows * 1.1), squeeze=False)
    for ax, i in zip(axes.flat, wrong.tolist()):
        ax.imshow(images[i].squeeze().float().cpu(), cmap="gray_r")
        ax.set_title(f"{int(labels[i])}→{int(predictions[i])}", fontsize=9, color="crimson")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"{int((predictions.cpu() != labels.cpu()).sum())} misclassified test images (true→predicted)")
    return fig


def confusion(matrix: torch.Tensor):
    """The confusion matrix with counts; the diagonal dominates, so colour uses a log scale."""
    from matplotlib.colors import LogNorm

    fig, ax = _figure(figsize=(4.6, 4))
    ax.imshow(matrix.float() + 1, cmap="Blues", norm=LogNorm())
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            v = int(matrix[i, j])
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if i == j else "black")
    ax.set_xticks(range(10))
    ax.set_yticks(range(10))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    return fig


def architecture(model: torch.nn.Module):
    """The layer table drawn as a diagram: one box per convolution/pooling layer, sized by channels."""
    from .summary import layer_table

    rows = [r for r in layer_table(model) if r.kind in ("Conv2d", "Linear", "MaxPool2d", "AdaptiveAvgPool2d")]
    fig, ax = _figure(figsize=(10, 2.8))
    for i, r in enumerate(rows):
        ch = r.output_shape[0]
        side = r.output_shape[-1] if len(r.output_shape) == 3 else 1
        h = 0.25 + 0.7 * side / 28
        ax.add_patch(plt.Rectangle((i - 0.35, -h / 2), 0.7, h, color="#4c72b0" if r.kind == "Conv2d" else "#dd8452",
                                   alpha=0.25 + 0.75 * min(ch, 20) / 20))
        label = {"Conv2d": "conv", "MaxPool2d": "max-pool", "AdaptiveAvgPool2d": "GAP", "Linear": "linear"}[r.kind]
        ax.text(i, h / 2 + 0.08, f"{label}\n{'x'.join(map(str, r.output_shape))}", ha="center", va="bottom", fontsize=8)
        ax.text(i, -h / 2 - 0.08, f"RF {r.receptive_field}\n{r.params:,} p", ha="center", va="top", fontsize=7)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(-0.9, 1.0)
    ax.axis("off")
    total = sum(p.numel() for p in model.parameters())
    ax.set_title(f"{type(model).__name__}: {total:,} parameters (BatchNorm included); RF = receptive field in pixels",
                 fontsize=9)
    return fig


def save(fig, path) -> None:
    """Save a figure atomically (temporary file, then rename)."""
    from .fsutil import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], dpi=DPI))
