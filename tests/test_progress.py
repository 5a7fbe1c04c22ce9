"""utils.progress: the notebook's one-line progress display."""
import IPython.display
import pytest

from utils.progress import NotebookProgress


class FakeHandle:
    """Stands in for IPython's DisplayHandle: records what a notebook would show."""

    def __init__(self, shown):
        self.shown = shown

    def update(self, obj, raw=False):
        self.shown.append(obj["text/plain"])


@pytest.fixture
def shown(monkeypatch):
    out = []

    def fake_display(obj, raw=False, display_id=False):
        out.append(obj["text/plain"])
        return FakeHandle(out) if display_id else None

    monkeypatch.setattr(IPython.display, "display", fake_display)
    return out


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
