"""utils.progress: how training shows that it is running. train() drives any reporter with tqdm's three
methods; the notebook's one is a line updated in place (recorded by the conftest fixture ``shown``)."""
from utils.config import recipe
from utils.progress import NotebookProgress
from utils.train import train


def test_notebook_progress_updates_one_line_a_few_times_per_epoch(shown, capsys):
    bar = NotebookProgress("gap", epochs=2, steps_per_epoch=10, updates_per_epoch=5)
    for _ in range(20):
        bar.update(1)
    bar.write("epoch  2/2 ...")
    bar.close()
    assert shown[0] == "gap: epoch 1/2, step 0/10"
    assert shown[1:6] == [f"gap: epoch 1/2, step {s}/10" for s in (2, 4, 6, 8, 10)]
    assert shown[6:11] == [f"gap: epoch 2/2, step {s}/10" for s in (2, 4, 6, 8, 10)]
    assert shown[-1] == "gap: 2/2 epochs done" and len(shown) == 12
    assert capsys.readouterr().out == "epoch  2/2 ...\n"


def test_train_drives_a_pluggable_reporter(tmp_path):
    events = []

    class Recorder:
        def __init__(self, desc, epochs, steps_per_epoch, done_epochs):
            events.append(("start", desc, epochs, steps_per_epoch, done_epochs))

        def update(self, n):
            events.append(("update", n))

        def write(self, line):
            events.append(("write", line.split()[1]))

        def close(self):
            events.append(("close",))

    cfg = recipe("gap", epochs=2, train_subset=256, batch_size=64, device="cpu")
    train(cfg, tmp_path / "run", progress=Recorder, log=lambda *_: None)
    assert events[0] == ("start", "gap", 2, 4, 0)
    assert events[1:] == [("update", 1)] * 4 + [("write", "1/2")] + [("update", 1)] * 4 + [("write", "2/2"), ("close",)]
