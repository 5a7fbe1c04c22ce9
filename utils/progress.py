"""How training shows that it is running: a tqdm bar on a terminal, one line updated in place in a notebook.

A reporter has tqdm's three methods: ``update(steps)``, ``write(line)`` for the per-epoch line and
``close()``. ``train(progress=...)`` takes False (none), True (the terminal bar) or a factory called
with ``(desc, epochs, steps_per_epoch, done_epochs)``, such as :class:`NotebookProgress`.
"""
from __future__ import annotations


def terminal_progress(desc: str, epochs: int, steps_per_epoch: int, done_epochs: int):
    """The CLI's progress bar: tqdm on stderr, removed when training ends (the epoch lines stay)."""
    from tqdm import tqdm

    return tqdm(total=epochs * steps_per_epoch, initial=done_epochs * steps_per_epoch, unit="step", leave=False,
                desc=desc, dynamic_ncols=True)


def make_progress(progress, desc: str, epochs: int, steps_per_epoch: int, done_epochs: int):
    """The reporter for ``train(progress=...)``: False/None -> None, True -> the terminal bar, a callable ->
    whatever it returns for these arguments."""
    if not progress:
        return None
    factory = terminal_progress if progress is True else progress
    return factory(desc, epochs, steps_per_epoch, done_epochs)


class NotebookProgress:
    """Training progress in a notebook: one plain-text line such as ``baseline: epoch 3/10, step
    120/390``, replaced in place a few times per epoch through an IPython display handle, so it
    works in JupyterLab and Colab without widgets and leaves no stale bar or stderr behind."""

    def __init__(self, desc: str, epochs: int, steps_per_epoch: int, done_epochs: int = 0, updates_per_epoch: int = 5):
        from IPython.display import display

        self.desc, self.epochs, self.steps = desc, epochs, steps_per_epoch
        self.done = done_epochs * steps_per_epoch
        self.every = max(1, steps_per_epoch // updates_per_epoch)
        self.handle = display(self.status(), raw=True, display_id=True)

    def status(self) -> dict:
        epoch = max(1, -(-self.done // self.steps))  # the epoch the last finished step belongs to
        step = self.done - (epoch - 1) * self.steps
        return {"text/plain": f"{self.desc}: epoch {epoch}/{self.epochs}, step {step}/{self.steps}"}

    def update(self, steps: int = 1) -> None:
        self.done += steps
        if self.done % self.every == 0 or self.done % self.steps == 0:
            self.handle.update(self.status(), raw=True)

    def write(self, line: str) -> None:
        print(line, flush=True)

    def close(self) -> None:
        """Replace the live line by what was done, so nothing in the output claims to be running."""
        finished = self.done // self.steps
        self.handle.update({"text/plain": f"{self.desc}: {finished}/{self.epochs} epochs done"}, raw=True)


def epoch_line(row: dict, epochs: int, split: str) -> str:
    """The line printed after each epoch. ``running train``: counted while the epoch trains, in training mode
    (Dropout on, augmented images when the recipe augments), on weights that change from batch to batch;
    ``clean train``: training images scored after the epoch exactly as the ``split`` is (eval mode, no
    augmentation), the train side of the generalisation gap. ``start lr``: the learning rate of the epoch's first
    step (one-cycle changes it at every step). A tuning run (``--holdout``) shows the validation numbers, not the
    test numbers: what is not on screen cannot steer a choice (metrics.json still scores the test set)."""
    return (f"epoch {row['epoch']:2d}/{epochs}  running train {row['train_accuracy']:6.2f}% (loss "
            f"{row['train_loss']:.4f})  clean train {row['clean_train_accuracy']:6.2f}%  {split} "
            f"{row[split + '_accuracy']:6.2f}% (loss {row[split + '_loss']:.4f})  start lr {row['lr']:.4f}  "
            f"{row['seconds']:.1f}s")
