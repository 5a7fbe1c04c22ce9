"""A checkpoint is untrusted input: nothing in it runs or is read before it is used, every part of it is checked
before training uses it, and the MNIST folder it names is never used."""
import json
import math
import zipfile

import pytest
import torch
from hardening_helpers import edited_checkpoint, small, snapshot
from helpers import one_error_line, without_timing

from utils import predict, runs
from utils.train import main as train_main


@pytest.fixture
def finished(one_cpu_thread, tiny_run):
    """One complete small run: (run folder, returned metrics), shared by the session. Tests work on copies."""
    return tiny_run(small())


@pytest.fixture
def half(stopped_run, tmp_path):
    """A run of two epochs stopped after the first: what --resume continues (this test's own copy)."""
    return stopped_run(small(), tmp_path / "half")


def test_resume_reads_mnist_here_not_at_the_checkpoints_data_root(finished, half, tmp_path, capsys):
    elsewhere = tmp_path / "another-machine" / "data"
    state = torch.load(half / "checkpoint.pt", weights_only=True)
    edited_checkpoint(half, config={**state["config"], "data_root": str(elsewhere)})
    assert train_main(["--resume", str(half), "--no-progress"]) == 0
    assert not elsewhere.parent.exists(), "nothing written where the checkpoint's machine kept MNIST"
    resumed = json.loads((half / "metrics.json").read_text())
    assert without_timing(resumed["history"]) == without_timing(finished[1]["history"])


def momentum_of_another_shape(state):
    opt = state["optimizer_state"]
    return {**opt, "state": {**opt["state"], 0: {"momentum_buffer": torch.zeros(3)}}}


CRAFTED = {  # what the probe planted -> the entry to change
    "history [1]": lambda s: {"history": [1]},
    "history [{}]": lambda s: {"history": [{}]},
    "history with an infinite loss": lambda s: {"history": [{**s["history"][0], "train_loss": math.inf}]},
    "metrics {}": lambda s: {"metrics": {}},
    "metrics of another run": lambda s: {"metrics": {**s["metrics"], "history": s["history"] * 2, "epochs": 2}},
    "a momentum buffer of the wrong shape": lambda s: {"optimizer_state": momentum_of_another_shape(s)},
    "a momentum buffer for no weight": lambda s: {"optimizer_state": {**s["optimizer_state"], "state": {
        **s["optimizer_state"]["state"], 99: {"momentum_buffer": torch.zeros(3)}}}},
    "_schedule_phases garbage": lambda s: {"scheduler_state": {**s["scheduler_state"], "_schedule_phases": "garbage"}},
    "a scheduler entry torch does not have": lambda s: {"scheduler_state": {**s["scheduler_state"], "get_lr": 1}},
    "lr 'abc'": lambda s: {"optimizer_state": {**s["optimizer_state"], "param_groups": [
        {**s["optimizer_state"]["param_groups"][0], "lr": "abc"}]}},
    "wall_seconds inf": lambda s: {"wall_seconds": math.inf},
    "NaN weights": lambda s: {"model_state": {k: torch.full_like(v, math.nan) if v.is_floating_point() else v
                                              for k, v in s["model_state"].items()}},
    "an unknown entry": lambda s: {"note": "hello"},
}


@pytest.mark.parametrize("kind", CRAFTED)
def test_a_crafted_checkpoint_is_refused_at_load_in_one_line(half, capsys, monkeypatch, kind):
    state = torch.load(half / "checkpoint.pt", weights_only=True)
    edited_checkpoint(half, **CRAFTED[kind](state))
    before = snapshot(half)
    monkeypatch.setattr("utils.train.train_epoch", lambda *a: pytest.fail("trained from a crafted checkpoint"))
    one_error_line(capsys, train_main, ["--resume", str(half), "--no-progress"], str(half / "checkpoint.pt"))
    assert snapshot(half) == before


def test_a_crafted_complete_checkpoint_is_refused_too(finished, tmp_path, capsys):
    run = tmp_path / "complete"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((finished[0] / "checkpoint.pt").read_bytes())
    edited_checkpoint(run, metrics={})
    one_error_line(capsys, train_main, ["--resume", str(run), "--no-progress"], "metrics")
    one_error_line(capsys, predict.main, [str(run), "--device", "cpu"], "metrics")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt"], "no metrics.json written from it"


def deflated(path, extra_name, extra_bytes):
    """``path`` rewritten as a zip whose entries are compressed, plus an ``extra_name`` entry of zeros:
    a small file that would unpack to a large one."""
    with zipfile.ZipFile(path) as src:
        entries = [(info.filename, src.read(info)) for info in src.infolist()]
    prefix = entries[0][0].split("/")[0]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for name, data in entries:
            dst.writestr(name, data)
        with dst.open(f"{prefix}/{extra_name}", "w", force_zip64=True) as fh:
            for _ in range(extra_bytes // 2**20):
                fh.write(bytes(2**20))


@pytest.mark.parametrize("how, why", [("an extra tensor", "unknown entries: blob"),
                                      ("a compressed entry of zeros", "compressed")])
def test_a_checkpoint_holding_more_than_a_run_writes_is_refused_without_reading_it(finished, tmp_path, capsys, how,
                                                                                    why):
    """torch.load(mmap=True) maps tensors instead of reading them, so a large tensor costs nothing until used; an
    entry the run did not write is refused, and so is a compressed one, which would unpack to 64 MB (or be mapped
    as raw bytes)."""
    run = tmp_path / "large"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes((finished[0] / "checkpoint.pt").read_bytes())
    if how == "an extra tensor":
        edited_checkpoint(run, blob=torch.zeros(2**20))  # 4 MB; a real network here needs ~0.1 MB
    else:
        deflated(run / "checkpoint.pt", "data/999", 64 * 2**20)
        assert (run / "checkpoint.pt").stat().st_size < 2**20, "small on disk"
    line = one_error_line(capsys, predict.main, [str(run), "--device", "cpu"], str(run / "checkpoint.pt"))
    assert why in line
    one_error_line(capsys, train_main, ["--resume", str(run), "--no-progress"], why)
