"""Figures for the notebooks. Every function returns a matplotlib Figure and draws nothing else.

Backend: a notebook kernel (Jupyter, papermill, nbval) sets ``MPLBACKEND`` to the inline backend,
and that choice is kept. Only a plain Python process on a machine without a display (CI, tests)
is switched to the off-screen Agg backend, and only if pyplot was not imported before.
"""
from __future__ import annotations

import math
import os
import sys

import matplotlib

if ("matplotlib.pyplot" not in sys.modules and "MPLBACKEND" not in os.environ
        and sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))):
    matplotlib.use("Agg")  # no display: draw off-screen
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from . import (
    GOAL,  # noqa: E402
    augment,  # noqa: E402
)
from .summary import layer_table  # noqa: E402

DPI = 110  # legible at the width of a book page; each executed notebook stays under about 1 MB


def _figure(*args, **kwargs):
    kwargs.setdefault("dpi", DPI)
    kwargs.setdefault("layout", "constrained")
    return plt.subplots(*args, **kwargs)


def _image(img: torch.Tensor):
    """(28, 28) or (1, 28, 28), any dtype or device -> a (28, 28) float32 numpy array, for imshow."""
    return img.detach().squeeze().float().cpu().numpy()


def _epochs(epochs: list[int]) -> str:
    """[1, 2, 3, 5] -> "1-3, 5": the epochs a note names."""
    parts, start = [], None
    for i, e in enumerate(epochs):
        start = e if start is None else start
        if i + 1 == len(epochs) or epochs[i + 1] != e + 1:
            parts.append(str(e) if start == e else f"{start}-{e}")
            start = None
    return ", ".join(parts)


def _accuracy_axis(ax, later: list[float], points, floor: float, ylabel: str = "accuracy (%)") -> str | None:
    """Zoom ``ax`` on the top few percent (down to ``floor``, lower only if the ``later`` values need it), with the
    goal line. ``points``: (label, epoch, value) of everything drawn; those the axis leaves out are named in the
    note returned (None when none is), so that no reader takes them as missing."""
    low = min(floor, math.floor(min(later))) if later else floor
    ax.axhline(GOAL, color="gray", lw=0.8, ls=":", label=f"goal {GOAL:.2f}%")
    ax.set_ylim(low, 100)
    ax.set_ylabel(ylabel)
    below: dict[str, set[int]] = {}
    for label, epoch, value in points:
        if value is not None and value < low:
            below.setdefault(label, set()).add(epoch)
    if not below:
        return None
    named = [f"{label + ' ' if label else ''}epoch{'s' if len(e) > 1 else ''} {_epochs(sorted(e))}"
             for label, e in below.items()]
    return f"below {low:g}%, off the axis: " + "; ".join(named)


def sample_grid(images: torch.Tensor, labels: torch.Tensor, n: int = 32, cols: int = 8, title: str | None = None):
    """The first ``n`` images (uint8 or float, (N, 28, 28) or (N, 1, 28, 28)), each titled with its label."""
    n = min(n, len(images))
    return image_grid(images[:n], [str(int(label)) for label in labels[:n]], cols=cols, title=title, size=0.85,
                      fontsize=9)


def class_balance(train_labels: torch.Tensor, test_labels: torch.Tensor):
    """Share of each digit in the training and the test set (bars in % of each set)."""
    fig, ax = _figure(figsize=(6, 2.4))
    x = torch.arange(10)
    for offset, labels, name in ((-0.2, train_labels, "train"), (0.2, test_labels, "test")):
        share = torch.bincount(labels.cpu().long(), minlength=10).double() / len(labels) * 100
        ax.bar((x + offset).tolist(), share.tolist(), 0.4, label=f"{name} ({len(labels):,} images)")
    ax.set_xticks(x.tolist())
    ax.set_xlabel("digit")
    ax.set_ylabel("% of the set")
    ax.legend(fontsize=8, loc="lower right")
    return fig


def training_curves(history: list[dict], title: str = "", others: dict[str, list[dict]] | None = None):
    """Loss (log scale) and accuracy per epoch from ``metrics["history"]``: the test images and the clean training
    images, both scored after each epoch in eval mode (their distance is the generalisation gap), and, dotted, the
    running training figures counted during the epoch in training mode.

    ``others`` maps a label to an earlier run's history; its clean-train and test curves are drawn dashed.
    The accuracy axis zooms on the top few percent; early epochs below it run off the bottom.
    """
    fig, (ax_loss, ax_acc) = _figure(1, 2, figsize=(9, 3.2))
    runs = [("", history, "-")] + [(f", {name}", h, "--") for name, h in (others or {}).items()]
    series = {"running train": ("train", ":"), "clean train": ("clean_train", None), "test": ("test", None)}
    for i, (suffix, hist, style) in enumerate(runs):
        epochs = [h["epoch"] for h in hist]
        for j, (label, (key, own_style)) in enumerate(series.items()):
            if i and label == "running train":
                continue
            colour = f"C{j}" if i == 0 else f"C{2 * i + j + 1}"
            for ax, measure in ((ax_loss, "loss"), (ax_acc, "accuracy")):
                values = [h.get(f"{key}_{measure}") for h in hist]  # a stored curve (steps.json) has no losses
                if None not in values:
                    ax.plot(epochs, values, own_style or style, marker="o", ms=3, lw=1 if own_style else 1.5,
                            color=colour, label=label + suffix)
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy")
    later = [h[f"{key}_accuracy"] for _, hist, _ in runs for h in hist[len(hist) // 3:]
             for key in ("clean_train", "test") if f"{key}_accuracy" in h]
    points = [("", h["epoch"], h.get(f"{key}_accuracy")) for _, hist, _ in runs for h in hist
              for key in ("clean_train", "test", "train")]
    note = _accuracy_axis(ax_acc, later, points, floor=97.0)
    if note:  # above the panel, where no legend can cover it
        ax_acc.set_title(note, fontsize=7, color="0.3")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def augmentation_preview(images: torch.Tensor, draws: int = 8, seed: int = 0):
    """Each row: one digit, then ``draws`` independent draws of ``utils.augment.random_affine``.

    The draws come from a ``torch.Generator`` seeded with ``seed``, so the figure is reproducible.
    """
    gen = torch.Generator().manual_seed(seed)
    base = images.detach().cpu()
    base = base.float() / 255.0 if base.dtype == torch.uint8 else base.float()
    if base.ndim == 3:
        base = base.unsqueeze(1)
    rows = base.shape[0]
    fig, axes = _figure(rows, draws + 1, figsize=((draws + 1) * 0.85, rows * 0.95), squeeze=False)
    for r in range(rows):
        variants = augment.random_affine(base[r : r + 1].repeat(draws, 1, 1, 1), generator=gen)
        axes[r, 0].imshow(_image(base[r]), cmap="gray_r")
        for c in range(draws):
            axes[r, c + 1].imshow(_image(variants[c]), cmap="gray_r")
    axes[0, 0].set_title("original", fontsize=8)
    for c in range(draws):
        axes[0, c + 1].set_title(f"draw {c + 1}", fontsize=8)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def misclassified(images: torch.Tensor, labels: torch.Tensor, predictions: torch.Tensor, split: str, n: int = 24,
                  cols: int = 8):
    """The first ``n`` images of the ``split`` ("test", "validation") the model gets wrong, titled true→predicted."""
    labels, predictions = labels.cpu(), predictions.cpu()
    wrong_all = (predictions != labels).nonzero().flatten()
    wrong = wrong_all[:n]
    rows = max(1, math.ceil(len(wrong) / cols))
    fig, axes = _figure(rows, cols, figsize=(cols * 0.85, rows * 1.0), squeeze=False)
    for ax, i in zip(axes.flat, wrong.tolist(), strict=False):  # the grid may have spare cells
        ax.imshow(_image(images[i]), cmap="gray_r")
        ax.set_title(f"{int(labels[i])}→{int(predictions[i])}", fontsize=9, color="crimson")
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle(f"{len(wrong)} of the {len(wrong_all)} misclassified {split} images (true→predicted)", fontsize=10)
    return fig


def confusion(matrix: torch.Tensor, title: str = ""):
    """Draw a confusion matrix (rows: true, columns: predicted) with its counts; log colour scale,
    because the diagonal is a thousand times larger than the mistakes."""
    from matplotlib.colors import LogNorm

    n = matrix.shape[0]
    fig, ax = _figure(figsize=(4.4, 3.9))
    ax.imshow(matrix.double().numpy() + 1, cmap="Blues", norm=LogNorm())
    dark = (float(matrix.max()) + 1) ** 0.5  # the middle of the log colour scale
    for i in range(n):
        for j in range(n):
            v = int(matrix[i, j])
            if v:
                ax.text(j, i, str(v), ha="center", va="center", fontsize=7, color="white" if v + 1 > dark else "black")
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    correct, total = int(matrix.trace()), int(matrix.sum())
    ax.set_title(title or f"{correct:,} of {total:,} correct", fontsize=10)
    return fig


def step_accuracy(summary: dict):
    """Final test accuracy per step over seeds (from results/steps.json): one dot per seed, the mean
    as a bar with ± one standard deviation, so a change can be read against the seed-to-seed spread."""
    steps = summary["steps"]
    fig, ax = _figure(figsize=(7, 3.0))
    for i, step in enumerate(steps):
        accs = [r["final_test_accuracy"] for r in step["runs"]]
        ax.scatter([i] * len(accs), accs, s=14, color="C0", alpha=0.6, zorder=3,
                   label="one seed" if i == 0 else None)
        acc = step["test_accuracy"]
        ax.errorbar([i + 0.18], [acc["mean"]], yerr=[acc["std"]], fmt="D", ms=5, color="C3", capsize=4, zorder=4,
                    label="mean ± std" if i == 0 else None)
    ax.axhline(GOAL, color="gray", lw=0.8, ls=":", label=f"goal {GOAL:.2f}%")
    ax.set_xticks(range(len(steps)))
    ax.set_xticklabels([f"{s['notebook']}\n{s['params']:,} params" for s in steps], fontsize=7)
    ax.set_ylabel("final test accuracy (%)")
    ax.set_title(f"{len(summary['seeds'])} seeds per step, {summary['config']['epochs']} epochs, final epoch",
                 fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3, axis="y")
    return fig


def step_curves(summary: dict):
    """Test accuracy per epoch of every step on one plot (from results/steps.json): the mean over the
    seeds as a line, the band from the lowest to the highest seed shaded."""
    fig, ax = _figure(figsize=(7, 3.4))
    later, points = [], []
    for i, step in enumerate(summary["steps"]):
        curves = [r["test_accuracy_curve"] for r in step["runs"]]
        epochs = list(range(1, min(len(c) for c in curves) + 1))
        per_epoch = [[c[e - 1] for c in curves] for e in epochs]
        mean = [sum(v) / len(v) for v in per_epoch]
        ax.plot(epochs, mean, marker="o", ms=3, color=f"C{i}", label=f"{step['notebook']} (mean)")
        ax.fill_between(epochs, [min(v) for v in per_epoch], [max(v) for v in per_epoch], color=f"C{i}", alpha=0.15)
        later += mean[len(mean) // 3:]
        points += [(step["notebook"], e, min(v)) for e, v in zip(epochs, per_epoch, strict=True)]  # the band's foot
    note = _accuracy_axis(ax, later, points, floor=98.0, ylabel="test accuracy (%)")
    if note:  # the title is taken: at the foot of the axis, under the legend's empty top
        ax.text(0.99, 0.02, note, transform=ax.transAxes, ha="right", va="bottom", fontsize=7, color="0.3")
    ax.set_xlabel("epoch")
    ax.set_title(f"every step, {len(summary['seeds'])} seeds: mean (line) and lowest to highest seed (band)",
                 fontsize=9)
    ax.legend(fontsize=7, loc="upper left", ncol=2)  # the top is empty; what runs off the axis is noted below
    ax.grid(alpha=0.3)
    return fig


SHORT_NAMES = {"Conv2d": "conv", "MaxPool2d": "max-pool", "BatchNorm2d": "BN", "ReLU": "ReLU", "Dropout": "dropout",
               "AdaptiveAvgPool2d": "GAP", "Linear": "linear", "Flatten": "flatten"}


def architecture(model: torch.nn.Module, title: str = ""):
    """The network as a row of blocks: one per convolution of ``model.features`` (with the layers that
    follow it), then ``model.head``. Drawn from ``utils.summary.layer_table``: a block's height is its
    output's spatial size; its labels give the layers, output shape, parameters and receptive field."""
    modules = dict(model.named_modules())
    groups: list[list] = []
    for row in layer_table(model):
        in_head = row.name.startswith("head.")
        if (not groups or (row.kind == "Conv2d" and not in_head)
                or (in_head and not groups[-1][0].name.startswith("head."))):
            groups.append([row])
        else:
            groups[-1].append(row)

    def label(row) -> str:
        name = SHORT_NAMES.get(row.kind, row.kind)
        if row.kind == "Conv2d":
            k = modules[row.name].kernel_size
            name = f"{k[0]}x{k[1]} {name}"
        return name

    fig, ax = _figure(figsize=(1.3 * (len(groups) + 1), 3.0))
    ax.text(0, 0, "input\n1x28x28", ha="center", va="center", fontsize=7)
    x = 0.0
    for group in groups:
        x += 1.3
        last = group[-1]
        side = last.output_shape[-1] if len(last.output_shape) == 3 else 1
        height = 0.2 + 2.0 * side / 28
        head = group[0].name.startswith("head.")
        ax.add_patch(plt.Rectangle((x - 0.45, -height / 2), 0.9, height, facecolor="#fdd0a2" if head else "#c6dbef",
                                   edgecolor="#333333", lw=0.8))
        ax.annotate("", xy=(x - 0.47, 0), xytext=(x - 0.83, 0), arrowprops=dict(arrowstyle="->", lw=0.8))
        ax.text(x, height / 2 + 0.06, "\n".join(label(r) for r in group), ha="center", va="bottom", fontsize=6.5)
        shape = "x".join(str(d) for d in last.output_shape)
        ax.text(x, -height / 2 - 0.06, f"{shape}\n{sum(r.params for r in group):,} params\nRF {last.receptive_field}",
                ha="center", va="top", fontsize=6.5)
    ax.set_xlim(-0.6, x + 0.6)
    ax.set_ylim(-2.0, 2.1)
    ax.axis("off")
    total = sum(p.numel() for p in model.parameters())
    ax.set_title(title or f"{total:,} parameters. Block height: output size; RF: receptive field in input pixels",
                 fontsize=8)
    return fig


def save(fig, path, dpi: int = DPI) -> None:
    """Save a figure atomically (temporary file, then rename), in the format of the file's suffix."""
    from .fsutil import atomic_write

    atomic_write(path, lambda tmp: fig.savefig(tmp, format=str(path).rsplit(".", 1)[-1], dpi=dpi))


# --------------------------------------------------------------------------------------------------
# The concept sections' figures (computed by utils.lessons)
# --------------------------------------------------------------------------------------------------

def image_grid(images, titles=None, cols: int = 8, title: str | None = None, signed=False,
               size: float = 0.95, fontsize: float = 7, shared: bool = False):
    """Small images in a grid, each with its title. ``signed``: a red-blue scale centred on 0 (kernels,
    feature maps, differences), one scale per image, or one for all of them (``shared``, to compare sizes
    across images; white to red from 0 when no image has a value below 0); else grey, ink dark. A list of
    booleans, one per image, mixes the two (digits in grey above their signed maps)."""
    images = list(images)
    titles = list(titles) if titles is not None else [""] * len(images)
    signs = list(signed) if isinstance(signed, (list, tuple)) else [signed] * len(images)
    signed_images = [img for img, sign in zip(images, signs, strict=True) if sign] or images
    rows = max(1, math.ceil(len(images) / cols))
    fig, axes = _figure(rows, cols, figsize=(cols * size, rows * (size + 0.15)), squeeze=False)
    common = max(max(abs(float(_image(img).min())), abs(float(_image(img).max()))) for img in signed_images)
    negative = any(float(_image(img).min()) < 0 for img in signed_images)
    for ax, img, label, sign in zip(axes.flat, images, titles, signs, strict=False):  # the grid may have spare cells
        values = _image(img)
        if sign and shared and not negative:  # one scale for values >= 0 (ReLU maps): all of it from 0 up
            ax.imshow(values, cmap="Reds", vmin=0, vmax=max(common, 1e-12))
        elif sign:
            top = max(common if shared else max(abs(float(values.min())), abs(float(values.max()))), 1e-12)
            ax.imshow(values, cmap="RdBu_r", vmin=-top, vmax=top)
        else:
            ax.imshow(values, cmap="gray_r")
        ax.set_title(label, fontsize=fontsize)
    for ax in axes.flat:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=fontsize + 2)
    return fig


def pixel_histograms(before: torch.Tensor, after: torch.Tensor):
    """Pixel values of the training images as stored (scaled to [0, 1]) and after normalisation."""
    fig, axes = _figure(1, 2, figsize=(8, 2.3))
    for ax, values, name in ((axes[0], before, "scaled to [0, 1]"), (axes[1], after, "normalised")):
        flat = values.flatten().float()
        ax.hist(flat.numpy(), bins=50, color="C0")
        ax.set_yscale("log")
        ax.set_title(f"{name}: mean {float(flat.mean()):.4f}, std {float(flat.std()):.4f}", fontsize=9)
        ax.set_xlabel("pixel value")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("pixels (log scale)")
    return fig


def receptive_fields(image: torch.Tensor, boxes: dict[str, tuple[int, int, int, int]]):
    """A digit with the input box each layer's centre output sees: ``{label: (top, left, height, width)}``."""
    fig, ax = _figure(figsize=(6.4, 4))
    ax.imshow(_image(image), cmap="gray_r")
    for i, (label, (top, left, height, width)) in enumerate(boxes.items()):
        ax.add_patch(plt.Rectangle((left - 0.5, top - 0.5), width, height, fill=False, lw=1.6, color=f"C{i}",
                                   label=f"{label}: {height}x{width}"))
    ax.set_xlim(-0.5, image.shape[-1] - 0.5)
    ax.set_ylim(image.shape[-2] - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(fontsize=9, loc="upper left", bbox_to_anchor=(1.02, 1), title="receptive field of the centre output",
              title_fontsize=9)
    return fig


def schedule_curves(curves: dict[str, list[float]], steps_per_epoch: int):
    """The LR and the momentum at every step (from ``utils.lessons.schedule``), epochs on the x axis."""
    fig, axes = _figure(1, len(curves), figsize=(4 * len(curves), 2.4), squeeze=False)
    for ax, (name, values) in zip(axes[0], curves.items(), strict=True):
        ax.plot([i / steps_per_epoch for i in range(len(values))], values)
        ax.set_xlabel("epoch")
        ax.set_title(name, fontsize=10)
        ax.grid(alpha=0.3)
    return fig


def activation_histograms(stats: dict[str, list]):
    """Per network (one panel each), the distribution of the values entering each ReLU of the trunk
    (``utils.lessons.activation_stats``), one line per layer, first layer lightest."""
    fig, axes = _figure(1, len(stats), figsize=(4.4 * len(stats), 3.0), squeeze=False)
    for ax, (name, rows) in zip(axes[0], stats.items(), strict=True):
        for i, row in enumerate(rows):
            values = row.values.float().flatten()
            counts = torch.histc(values, bins=80, min=-4, max=4)  # values beyond +-4 fall in no bin
            centres = torch.linspace(-4, 4, 81)[:-1] + 0.05
            beyond = float((values.abs() > 4).float().mean())
            ax.plot(centres.numpy(), (counts / len(values)).numpy(), color=plt.cm.viridis(i / max(1, len(rows) - 1)),
                    label=f"{row.name}: std {float(row.values.std()):.3f}"
                          + (f", {beyond:.0%} beyond ±4" if beyond >= 0.005 else ""))
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("value entering the ReLU")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("share of the values")
    return fig


def layer_scales(stats: dict[str, list]):
    """Per layer, for each network: the spread of the values entering the ReLU, the spread of the loss
    gradient flowing back into it, and the convolution's gradient against its weights (log scales)."""
    panels = (("values entering the ReLU: std", lambda r: float(r.values.std())),
              ("gradient flowing back: std", lambda r: r.grad_std),
              ("conv weights: std(grad) / std(weight)", lambda r: r.weight_grad_ratio))
    fig, axes = _figure(1, 3, figsize=(10, 2.6))
    for ax, (label, value) in zip(axes, panels, strict=True):
        for name, rows in stats.items():
            ax.plot(range(1, len(rows) + 1), [value(r) for r in rows], marker="o", ms=3, label=name)
        ax.set_yscale("log")
        ax.set_xticks(range(1, len(next(iter(stats.values()))) + 1))
        ax.set_xlabel("convolution layer")
        ax.set_title(label, fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    return fig


def update_ratios(recorders: dict, steps_per_epoch: int):
    """One panel per network: each convolution's update:data ratio at every optimisation step (the size of the
    step against the size of its weights, ``utils.lessons.DynamicsRecorder``), log scale, epochs on the x axis;
    the dotted line is 1e-3, where Karpathy's rule of thumb (makemore, part 3) puts a healthy ratio."""
    fig, axes = _figure(1, len(recorders), figsize=(4.6 * len(recorders), 2.9), squeeze=False, sharey=True)
    for ax, (name, rec) in zip(axes[0], recorders.items(), strict=True):
        steps = [i / steps_per_epoch for i in range(len(rec.ratios))]
        for j in range(len(rec.ratios[0])):
            ax.plot(steps, [max(r[j], 1e-9) for r in rec.ratios], lw=1, color=plt.cm.viridis(j / 4),
                    label=f"conv {j + 1}")
        ax.axhline(1e-3, color="gray", ls=":", lw=1)
        ax.set_yscale("log")
        ax.set_ylim(1e-7, 1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("std(update) / std(weights)")
    axes[0, 0].legend(fontsize=7, ncol=2)
    return fig


def accuracy_by_batch_size(batch_sizes: list[int], train_mode: list[float], eval_mode: float, title: str = ""):
    """Accuracy when BatchNorm normalises each batch by its own statistics (training mode), by batch size,
    against evaluation mode (the running statistics: the same for any batch size)."""
    fig, ax = _figure(figsize=(5, 2.6))
    ax.plot(batch_sizes, train_mode, marker="o", label="BatchNorm in training mode (batch statistics)")
    ax.axhline(eval_mode, color="C1", ls="--", label=f"evaluation mode (running statistics): {eval_mode:.2f}%")
    ax.set_xscale("log", base=2)
    ax.set_xticks(batch_sizes, [str(b) for b in batch_sizes])
    ax.set_xlabel("images per batch")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def gap_by_seed(summary: dict, notebooks: list[str]):
    """The clean train - test gap of each seed, for two or more steps (results/steps.json), a line joining
    the runs of one seed: a change that moves every seed the same way is more than noise."""
    steps = {s["notebook"]: s for s in summary["steps"]}
    fig, ax = _figure(figsize=(4.6, 2.8))
    for run_index, seed in enumerate(summary["seeds"]):
        gaps = [steps[nb]["runs"][run_index]["gap"] for nb in notebooks]
        ax.plot(range(len(notebooks)), gaps, marker="o", ms=4, color="C0", alpha=0.6,
                label="one seed" if run_index == 0 else None)
        ax.annotate(f"seed {seed}", (len(notebooks) - 1, gaps[-1]), xytext=(4, 0), textcoords="offset points",
                    fontsize=6, va="center")
    ax.plot(range(len(notebooks)), [steps[nb]["gap"]["mean"] for nb in notebooks], marker="D", color="C3",
            label="mean")
    ax.set_xticks(range(len(notebooks)))
    ax.set_xticklabels(notebooks, fontsize=8)
    ax.set_xlim(-0.3, len(notebooks) - 0.5)
    ax.set_ylabel("clean train - test gap (points)")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    return fig


def parameters_by_layer(models: dict[str, torch.nn.Module]):
    """Parameters of every layer that has any, per network: where a network's budget goes."""
    fig, ax = _figure(figsize=(7, 2.8))
    tables = {name: [r for r in layer_table(m) if r.params] for name, m in models.items()}
    width = 0.8 / len(tables)
    for i, (name, rows) in enumerate(tables.items()):
        xs = [j + (i - (len(tables) - 1) / 2) * width for j in range(len(rows))]
        bars = ax.bar(xs, [r.params for r in rows], width, label=f"{name}: {sum(r.params for r in rows):,} in all")
        ax.bar_label(bars, [f"{r.params:,}" for r in rows], fontsize=6, rotation=90, padding=2)
    longest = max(tables.values(), key=len)
    ax.set_xticks(range(len(longest)))
    kinds = [" / ".join(dict.fromkeys(SHORT_NAMES.get(t[j].kind, t[j].kind) for t in tables.values() if j < len(t)))
             for j in range(len(longest))]
    ax.set_xticklabels([f"{kind}\n{r.name}" for kind, r in zip(kinds, longest, strict=True)], fontsize=6)
    ax.set_ylim(0, max(r.params for rows in tables.values() for r in rows) * 1.3)  # room for the labels
    ax.set_ylabel("parameters")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return fig


def class_maps(images: torch.Tensor, maps: torch.Tensor, labels: torch.Tensor):
    """For each digit: the image, then the class score at every position of the last 5x5 map (before the
    average) for its true class and for the other class that scores highest (the runner-up, or the class the
    network reads instead when it misreads the digit), under the outline of the digit's ink: position (i, j)
    scores the 20x20 window whose centre is at pixel (2i + 9.5, 2j + 9.5), so the 5x5 squares, 2 pixels each,
    sit at the centres of their windows. Each title gives the average over the positions: the class's logit.
    One red-blue scale per digit, with its colour bar, so that both maps of a digit compare."""
    n = len(images)
    fig, axes = _figure(n, 3, figsize=(3 * 1.9, n * 1.9), squeeze=False)
    extent = (8.5, 18.5, 18.5, 8.5)  # left, right, bottom, top of the 5x5 squares, in pixel coordinates
    for r in range(n):
        scores = maps[r].mean(dim=(1, 2))
        true = int(labels[r])
        other = int(scores.masked_fill(torch.arange(10) == true, -float("inf")).argmax())
        misread = bool(scores[other] > scores[true])
        top = float(maps[r, [true, other]].abs().max())
        image = _image(images[r])
        axes[r, 0].imshow(image, cmap="gray_r")
        axes[r, 0].set_title(f"digit {true}" + (f", read as {other}" if misread else ""), fontsize=8)
        for c, k in ((1, true), (2, other)):
            shown = axes[r, c].imshow(maps[r, k].numpy(), cmap="RdBu_r", vmin=-top, vmax=top, extent=extent)
            if float(image.max()) > float(image.min()):  # a blank image has no outline
                axes[r, c].contour(image, levels=[(float(image.min()) + float(image.max())) / 2], colors="k",
                                   linewidths=0.8)
            axes[r, c].set_xlim(-0.5, 27.5)
            axes[r, c].set_ylim(27.5, -0.5)
            role = "true class" if k == true else ("read as" if misread else "runner-up")
            axes[r, c].set_title(f"{role} {k}: mean {float(scores[k]):+.1f}", fontsize=8)
        fig.colorbar(shown, ax=axes[r, 1:], shrink=0.8, aspect=12).ax.tick_params(labelsize=6)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("score of each position's window, at its centre (red +, blue -), under the digit's outline",
                 fontsize=9)
    return fig


def seed_curves(runs: list[dict]):
    """Every seed of one recipe (results/seeds.json): test and clean-train accuracy and loss per epoch, the
    first seed drawn bold, the others thin, one legend entry per kind of curve rather than per seed."""
    fig, (ax_loss, ax_acc) = _figure(1, 2, figsize=(9, 3.4))
    later, points = [], []
    for i, run in enumerate(runs):
        epochs = [h["epoch"] for h in run["history"]]
        for key, label, colour in (("clean_train", "clean train", "C1"), ("test", "test", "C0")):
            for ax, measure in ((ax_loss, "loss"), (ax_acc, "accuracy")):
                values = [h.get(f"{key}_{measure}") for h in run["history"]]
                if None in values:
                    continue
                name = f"{label}, seed {run['seed']}" if i == 0 else (f"{label}, the other seeds" if i == 1 else None)
                ax.plot(epochs, values, color=colour, lw=1.8 if i == 0 else 0.8, alpha=1 if i == 0 else 0.4,
                        marker="o" if i == 0 else None, ms=3, label=name)
                if measure == "accuracy":
                    later += values[len(values) // 3:]
                    points += [(f"seed {run['seed']}", e, v) for e, v in zip(epochs, values, strict=True)]
    note = _accuracy_axis(ax_acc, later, points, floor=97.0)
    if note:  # above the panel, where no legend can cover it
        ax_acc.set_title(note, fontsize=7, color="0.3")
    ax_loss.set_yscale("log")
    ax_loss.set_ylabel("cross-entropy")
    for ax in (ax_loss, ax_acc):
        ax.set_xlabel("epoch")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(f"the final recipe, {len(runs)} seeds: seed {runs[0]['seed']} bold, the others thin", fontsize=10)
    return fig


def augmentation_strengths(images: torch.Tensor, strengths: dict[str, dict], seed: int = 0):
    """Each row: a digit, then for each strength (``{label: random_affine ranges}``) one random draw and
    its difference from the original (red: ink added, blue: ink taken away)."""
    gen = torch.Generator().manual_seed(seed)
    base = images.detach().cpu()
    base = (base.float() / 255.0 if base.dtype == torch.uint8 else base.float()).reshape(-1, 1, 28, 28)
    cols = 1 + 2 * len(strengths)
    fig, axes = _figure(len(base), cols, figsize=(cols * 0.95, len(base) * 1.05), squeeze=False)
    for r in range(len(base)):
        axes[r, 0].imshow(_image(base[r]), cmap="gray_r")
        for i, ranges in enumerate(strengths.values()):
            drawn = augment.random_affine(base[r : r + 1], generator=gen, **ranges)[0]
            axes[r, 1 + 2 * i].imshow(_image(drawn), cmap="gray_r")
            axes[r, 2 + 2 * i].imshow(_image(drawn - base[r]), cmap="RdBu_r", vmin=-1, vmax=1)
    axes[0, 0].set_title("original", fontsize=7)
    for i, label in enumerate(strengths):
        axes[0, 1 + 2 * i].set_title(label, fontsize=7)
        axes[0, 2 + 2 * i].set_title("difference", fontsize=7)
    for ax in axes.flat:
        ax.axis("off")
    return fig


def confusion_pairs(counts: dict[str, list[tuple[int, int, int]]], pairs: list[tuple[int, int]]):
    """How often each (true, predicted) pair occurs, for each network (``{label: utils.lessons.top_confusions}``
    with every pair), side by side."""
    fig, ax = _figure(figsize=(7, 2.6))
    width = 0.8 / len(counts)
    for i, (label, rows) in enumerate(counts.items()):
        found = {(t, p): c for t, p, c in rows}
        xs = [j + (i - (len(counts) - 1) / 2) * width for j in range(len(pairs))]
        ax.bar(xs, [found.get(pair, 0) for pair in pairs], width, label=label)
    ax.set_xticks(range(len(pairs)))
    ax.set_xticklabels([f"{t}→{p}" for t, p in pairs], fontsize=8)
    ax.set_xlabel("true → predicted")
    ax.set_ylabel("images")
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    return fig


def accuracy_against(values: list[float], accuracies: list[float], xlabel: str, title: str = "",
                     others: dict[str, list[float]] | None = None, label: str | None = None):
    """Accuracy (%) against one setting, e.g. the Dropout rate left on at evaluation; ``others``: more lines
    of the same kind, by label (then ``label`` names the first)."""
    fig, ax = _figure(figsize=(5, 2.6))
    ax.plot(values, accuracies, marker="o", label=label)
    for name, accs in (others or {}).items():
        ax.plot(values, accs, marker="s", ls="--", label=name)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    if others:
        ax.legend(fontsize=8)
    return fig
