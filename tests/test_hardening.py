"""Bad input and faults: each ends in one clear error and loses no file.

Each case ends in one clear error (``prog: error: ...`` for the command lines) and loses no file.
The command lines run in-process through their ``main()`` where that suffices (no torch start-up
per case); the one-line error rule is the same either way.
"""
import dataclasses
import json
import math

import pytest
import torch
from hardening_helpers import copy_run, edited_checkpoint, small, snapshot
from helpers import copy_of_mnist, one_error_line, quiet, without_timing

from utils import data, predict, runs
from utils.config import Config
from utils.models import build_model
from utils.runs import read_checkpoint
from utils.train import epoch_seed, train, train_epoch
from utils.train import main as train_main


@pytest.fixture
def finished(one_cpu_thread, tiny_run):
    """One complete small run: (run folder, returned metrics), shared by the session. Tests work on copies."""
    return tiny_run(small())


# 1. A bad notebook parameter must not delete the previous run.
@pytest.mark.parametrize("bad", [dict(epochs=-3), dict(batch_size=0), dict(device="tpu")])
def test_a_bad_parameter_with_overwrite_keeps_the_previous_run(finished, tmp_path, bad):
    run = copy_run(finished, tmp_path)
    before = snapshot(run)
    with pytest.raises(runs.RunError):
        train(small(**bad), run, progress=False, overwrite=True, log=quiet)
    assert snapshot(run) == before


class Payload:
    """What a hostile 'checkpoint' holds: unpickling it would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.mkdir, (str(self.marker),)


# 2. A checkpoint must not be able to run code.
def test_a_pickle_payload_is_refused_without_running(tmp_path, capsys):
    marker = tmp_path / "payload-ran"
    run = tmp_path / "hostile"
    run.mkdir()
    torch.save({"model": "final", "model_state": Payload(marker)}, run / "checkpoint.pt")
    with pytest.raises(runs.RunError, match="checkpoint.pt"):
        read_checkpoint(run)
    one_error_line(capsys, predict.main, [str(run / "checkpoint.pt"), "--device", "cpu"], "checkpoint.pt")
    one_error_line(capsys, train_main, ["--resume", str(run), "--no-progress"], "checkpoint.pt")
    assert not marker.exists(), "the payload ran"


# 3. A kill between (or during) the two saves of the last epoch must not leave a stale result.
KILL_POINTS = ["while writing checkpoint.pt", "between checkpoint.pt and metrics.json", "while writing metrics.json"]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_a_kill_at_any_write_of_the_last_epoch_is_repaired_on_resume(finished, tmp_path, monkeypatch, point):
    ref_dir, ref = finished
    cut = tmp_path / "cut"
    real_write, real_write_json = runs.atomic_write, runs.atomic_write_json
    checkpoints = []

    def killed(path):
        """What a SIGKILL in the middle of a write leaves: a half temporary file, nothing renamed."""
        (path.parent / f".{path.name}.killed.tmp").write_bytes(b"half a file")
        raise KeyboardInterrupt(f"killed {point}")

    def write_checkpoint(path, write):
        checkpoints.append(path)
        if len(checkpoints) == 2 and point == KILL_POINTS[0]:
            killed(path)
        return real_write(path, write)

    def write_metrics(path, obj):
        if obj["epochs"] == 2 and point == KILL_POINTS[1]:
            raise KeyboardInterrupt(f"killed {point}")
        if obj["epochs"] == 2 and point == KILL_POINTS[2]:
            killed(path)
        return real_write_json(path, obj)

    with monkeypatch.context() as patch:
        patch.setattr(runs, "atomic_write", write_checkpoint)
        patch.setattr(runs, "atomic_write_json", write_metrics)
        with pytest.raises(KeyboardInterrupt):
            train(small(), cut, progress=False, log=quiet)
    assert json.loads((cut / "metrics.json").read_text())["epochs"] == 1, "metrics.json still says epoch 1"

    resumed = train(None, resume=cut, progress=False, log=quiet)
    on_disk = json.loads((cut / "metrics.json").read_text())
    assert on_disk == resumed
    assert resumed["complete"] and resumed["epochs"] == 2
    assert resumed["final_test_accuracy"] == resumed["history"][-1]["test_accuracy"]
    assert without_timing(resumed["history"]) == without_timing(ref["history"])
    assert resumed["final_test_accuracy"] == ref["final_test_accuracy"]
    state = torch.load(cut / "checkpoint.pt", weights_only=True)
    assert len(state["history"]) == 2 and all(torch.equal(state["model_state"][k], v)
                                              for k, v in torch.load(ref_dir / "checkpoint.pt")["model_state"].items())
    assert sorted(p.name for p in cut.iterdir()) == ["checkpoint.pt", "metrics.json"], "no leftovers"


# 4. The output folder is checked before any training.
@pytest.mark.parametrize("where", ["a file", "inside a file"])
def test_the_out_folder_is_checked_before_training(tmp_path, monkeypatch, capsys, where):
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    out = blocker if where == "a file" else blocker / "run"

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking --out")

    monkeypatch.setattr("utils.train.train_epoch", no_training)
    one_error_line(capsys, train_main, ["--train-subset", "256", "--epochs", "1", "--device", "cpu", "--no-progress",
                                    "--out", str(out)], str(out))
    assert blocker.read_text() == "not a folder"


# 5. File-system errors in the data layer are the project's one clear data error.
def test_file_system_errors_are_one_clear_data_error(tmp_path, monkeypatch, capsys):
    raw = copy_of_mnist(tmp_path / "dir-for-file")
    victim = raw / "t10k-labels-idx1-ubyte"
    victim.unlink()
    victim.mkdir()
    (victim / "something").write_text("x")
    with pytest.raises(data.MNISTDataError, match="t10k-labels-idx1-ubyte"):
        data.load_mnist(tmp_path / "dir-for-file")  # IsADirectoryError / ENOTEMPTY underneath
    assert (victim / "something").read_text() == "x", "nothing of the user's is deleted"

    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    with pytest.raises(data.MNISTDataError, match="a-file"):
        data.load_mnist(a_file)  # NotADirectoryError underneath
    one_error_line(capsys, train_main, ["--data-root", str(a_file), "--epochs", "1", "--train-subset", "256",
                                    "--device", "cpu", "--no-progress", "--out", str(tmp_path / "run")], "a-file")

    # A read-only data folder missing a file (root ignores permissions, so the refusal is simulated).
    raw = copy_of_mnist(tmp_path / "read-only")
    (raw / "t10k-images-idx3-ubyte").unlink()

    def read_only(path, *_):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(data, "atomic_write_bytes", read_only)
    with pytest.raises(data.MNISTDataError, match="Permission denied"):
        data.load_mnist(tmp_path / "read-only")


# 6. utils.predict reads MNIST from --data-root, never from the path inside the checkpoint.
def test_predict_reads_mnist_from_data_root_not_from_the_checkpoint(finished, tmp_path, capsys):
    run = copy_run(finished, tmp_path)
    elsewhere = tmp_path / "elsewhere"
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    edited_checkpoint(run, config={**state["config"], "data_root": str(elsewhere)})
    result = predict.evaluate_checkpoint(run, "cpu")
    assert result["accuracy"] == finished[1]["final_test_accuracy"]
    assert predict.main([str(run), "--device", "cpu", "--data-root", str(data.DEFAULT_ROOT)]) == 0
    assert f"test accuracy {finished[1]['final_test_accuracy']:.2f}%" in capsys.readouterr().out
    assert not elsewhere.exists(), "nothing downloaded to the checkpoint's path"


# 7. Foreign or mismatched files: one line naming the file, for utils.predict and for --resume.
FOREIGN = {
    "a plain state_dict": lambda state: state["model_state"],
    "a dict from another program": lambda state: {"epoch": 3, "weights": torch.zeros(3)},
    "an unknown model name": lambda state: {**state, "model": "resnet"},
    "a missing key": lambda state: {k: v for k, v in state.items() if k != "optimizer_state"},
    "weights of another network": lambda state: {**state, "model_state": build_model("baseline").state_dict()},
    "a config from another version": lambda state: {**state, "config": {**state["config"], "warp_factor": 0.8}},
}


@pytest.mark.parametrize("kind", FOREIGN)
def test_foreign_or_mismatched_checkpoints_give_one_line(finished, tmp_path, capsys, kind):
    run = copy_run(finished, tmp_path)
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    torch.save(FOREIGN[kind](state), run / "checkpoint.pt")
    before = snapshot(run)
    one_error_line(capsys, predict.main, [str(run), "--device", "cpu"], str(run / "checkpoint.pt"))
    one_error_line(capsys, train_main, ["--resume", str(run), "--no-progress"], str(run / "checkpoint.pt"))
    assert snapshot(run) == before


@pytest.mark.parametrize("damage", ["deleted", "cut in half"])
def test_a_finished_run_with_a_lost_metrics_json_is_repaired(finished, tmp_path, capsys, damage):
    run = copy_run(finished, tmp_path)
    metrics = run / "metrics.json"
    if damage == "deleted":
        metrics.unlink()
    else:
        metrics.write_text(metrics.read_text()[: len(metrics.read_text()) // 2])
    assert train_main(["--resume", str(run), "--no-progress"]) == 0
    assert f"final test accuracy {finished[1]['final_test_accuracy']:.2f}%" in capsys.readouterr().out
    assert json.loads(metrics.read_text()) == finished[1]


# 8. --resume honours what is safe to change and refuses the rest with one line.
def test_resume_honours_device_and_refuses_other_changes(finished, stopped_run, tmp_path, monkeypatch, capsys):
    ref_dir, ref = finished
    run = stopped_run(small(), tmp_path / "half")
    state = torch.load(run / "checkpoint.pt", weights_only=True)
    edited_checkpoint(run, config={**state["config"], "device": "cuda"})  # as if saved on a GPU machine
    before = snapshot(run)
    for flag, value in [("--epochs", "5"), ("--lr", "0.5"), ("--batch-size", "64"), ("--seed", "7"),
                        ("--train-subset", "512"), ("--holdout", "1000"), ("--no-augment", None)]:
        argv = ["--resume", str(run), "--no-progress", "--device", "cpu", flag] + ([value] if value else [])
        one_error_line(capsys, train_main, argv, flag)
        assert snapshot(run) == before, flag

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # this machine has no GPU
    assert train_main(["--resume", str(run), "--no-progress", "--device", "cpu", "--epochs", "2"]) == 0
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["complete"] and resumed["config"]["device"] == "cpu" and resumed["device"].startswith("cpu")
    assert without_timing(resumed["history"]) == without_timing(ref["history"])


# 9. Divergence stops the run with a clear error; every metrics.json stays strict JSON.
def test_divergence_stops_with_a_clear_error_and_keeps_the_last_good_epoch(tmp_path, monkeypatch):
    real_epoch = train_epoch

    def diverge_in_epoch_2(model, opt, sched, dd, cfg, epoch, *rest):
        loss, acc = real_epoch(model, opt, sched, dd, cfg, epoch, *rest)
        return (math.nan, acc) if epoch == 2 else (loss, acc)

    monkeypatch.setattr("utils.train.train_epoch", diverge_in_epoch_2)
    run = tmp_path / "diverged"
    with pytest.raises(runs.RunError, match="lower --lr"):
        train(small(), run, progress=False, log=quiet)
    metrics = json.loads((run / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c))
    assert metrics["epochs"] == 1 and len(torch.load(run / "checkpoint.pt", weights_only=True)["history"]) == 1

    with pytest.raises(ValueError):
        runs.atomic_write_json(tmp_path / "nan.json", {"loss": math.nan})
    assert not (tmp_path / "nan.json").exists()


def test_a_huge_learning_rate_ends_in_one_line(tmp_path, capsys, one_cpu_thread):
    argv = ["--model", "baseline", "--lr", "1000", "--epochs", "1", "--train-subset", "512", "--device", "cpu",
            "--no-progress", "--out", str(tmp_path / "run")]
    one_error_line(capsys, train_main, argv, "lower --lr")


# 10. The smaller ones.
@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_other_float_dtypes_are_refused_clearly(dtype):
    with pytest.raises(ValueError, match=r"float32.*x\.float\(\)"):
        predict.predict(build_model("final"), torch.zeros(2, 1, 28, 28, dtype=dtype))


def test_nan_input_is_refused_before_it_reaches_batchnorm():
    model = build_model("final").train()
    running = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.zeros(4, 1, 28, 28)
    x[1, 0, 3, 3] = math.nan
    with pytest.raises(ValueError, match="NaN"):
        predict.predict(model, x)
    assert all(torch.equal(running[k], v) for k, v in model.state_dict().items()), "running statistics untouched"


def test_seed_out_of_range_is_named(capsys, tmp_path):
    one_error_line(capsys, train_main, ["--seed", "99999999999999999999", "--out", str(tmp_path / "r")], "--seed")
    one_error_line(capsys, train_main, ["--seed", "-1", "--out", str(tmp_path / "r")], "--seed")
    with pytest.raises(runs.RunError, match="seed"):
        train(small(seed=2**64), tmp_path / "r", progress=False, log=quiet)
    assert not (tmp_path / "r").exists()
    big = 2**63 - 1  # the largest seed allowed: every epoch's seed must still fit torch's generator
    for epoch in (1, 15):
        torch.Generator().manual_seed(epoch_seed(big, epoch))
    assert epoch_seed(1, 3) == 100_006, "small seeds keep their epoch seeds (runs stay reproducible)"


def test_a_batch_larger_than_the_training_set_is_refused(capsys, tmp_path):
    with pytest.raises(runs.RunError, match="batch size 300 .* 256 training images"):
        train(small(batch_size=300), tmp_path / "r", progress=False, log=quiet)
    one_error_line(capsys, train_main, ["--batch-size", "100000", "--out", str(tmp_path / "r")], "--batch-size",
                   "60,000")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("field", ["train_subset", "holdout"])
def test_negative_subset_or_holdout_is_refused(tmp_path, field):
    with pytest.raises(runs.RunError, match=field):
        train(small(**{field: -5}), tmp_path / "r", progress=False, log=quiet)
    assert not (tmp_path / "r").exists()


# 11. Our checkpoint, loaded the way other people will: plain torch.load and torchvision's pipeline.
def test_plain_torch_load_and_torchvision_pipeline_agree(finished):
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    ref_dir, ref = finished
    state = torch.load(ref_dir / "checkpoint.pt")  # PyTorch's default: weights_only=True
    model = build_model(state["model"])
    model.load_state_dict(state["model_state"])
    model.eval()
    tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((data.MEAN,), (data.STD,))])
    test_set = datasets.MNIST(str(data.DEFAULT_ROOT), train=False, transform=tf)
    correct = 0
    with torch.inference_mode():
        for x, y in DataLoader(test_set, batch_size=1000):
            correct += (model(x).argmax(1) == y).sum().item()
    theirs = 100.0 * correct / len(test_set)
    assert theirs == ref["final_test_accuracy"] == predict.evaluate_checkpoint(ref_dir, "cpu")["accuracy"]
    assert dataclasses.asdict(Config(**state["config"])) == state["config"]


# Hardening v2 (issue 17); the run-folder lock, checkpoints and the tools have files of their own:
# test_run_folder_lock.py, test_checkpoint_checks.py, test_tools_bad_input.py.

# 12. overwrite replaces a run of the same step only (case 2).
def test_overwrite_refuses_the_run_of_another_step(finished, tmp_path, capsys):
    from tools import tune

    run = copy_run(finished, tmp_path)  # a 'final' run
    before = snapshot(run)
    with pytest.raises(runs.RunError, match=f"{run} holds a 'final' run, and overwrite replaces only"):
        train(small(model="batchnorm"), run, progress=False, overwrite=True, log=quiet)
    one_error_line(capsys, tune.main, ["q10 12 16 d 16 16 d", "--epochs", "1", "--out", str(run)], "'final' run")
    assert snapshot(run) == before
    again = train(small(seed=2), run, progress=False, overwrite=True, log=quiet)  # its own step: replaced
    assert json.loads((run / "metrics.json").read_text()) == again and again["seed"] == 2


def test_overwrite_refuses_a_checkpoint_it_cannot_read(tmp_path):
    run = tmp_path / "foreign"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"someone else's file")
    with pytest.raises(runs.RunError, match="not a run of this course"):
        train(small(), run, progress=False, overwrite=True, log=quiet)
    assert (run / "checkpoint.pt").read_bytes() == b"someone else's file"


# 13. A full disk is one line; the files stay intact and the run resumes to the same numbers (case 4).
def test_a_full_disk_is_one_line_and_the_run_resumes(finished, tmp_path, capsys, monkeypatch):
    from utils import fsutil

    run, real_save = tmp_path / "full", torch.save

    def disk_fills_in_epoch_2(obj, f, *args, **kwargs):
        """torch.save on a full device: it writes what fits, then fails with a message that names no disk."""
        if len(obj.get("history", ())) < 2:
            return real_save(obj, f, *args, **kwargs)
        f.write_bytes(b"PK\x03\x04 as much as fitted")
        raise RuntimeError("[enforce fail at inline_container.cc:671] . unexpected pos 64 vs 0")

    with monkeypatch.context() as patch:
        patch.setattr(torch, "save", disk_fills_in_epoch_2)
        patch.setattr(fsutil.shutil, "disk_usage", lambda path: shutil_usage(total=100_000, used=100_000, free=0))
        one_error_line(capsys, train_main, ["--train-subset", "256", "--epochs", "2", "--device", "cpu",
                                        "--no-progress", "--out", str(run)],
                       f"no space left on the device of {run} while saving epoch 2", f"--resume {run}")
    assert sorted(p.name for p in run.iterdir()) == ["checkpoint.pt", "metrics.json"]
    assert json.loads((run / "metrics.json").read_text())["epochs"] == 1
    resumed = train(None, resume=run, progress=False, log=quiet)
    assert without_timing(resumed["history"]) == without_timing(finished[1]["history"])


def shutil_usage(**sizes):
    import shutil

    return shutil._ntuple_diskusage(**sizes)


def test_a_full_tmpfs_is_one_line_and_the_run_resumes(finished, tmp_path, capsys):
    """The real thing: a 100 kB tmpfs holds one checkpoint (80 kB) but not the next one beside it."""
    import shutil
    import subprocess

    mount = tmp_path / "M"
    mount.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=100k", "tmpfs", str(mount)], capture_output=True,
                       text=True)
    if r.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here ({r.stderr.strip()}); "
                    "test_a_full_disk_is_one_line_and_the_run_resumes simulates the full disk instead")
    try:
        one_error_line(capsys, train_main, ["--train-subset", "256", "--epochs", "2", "--device", "cpu",
                                        "--no-progress", "--out", str(mount)], "no space left", f"--resume {mount}")
        assert sorted(p.name for p in mount.iterdir()) == ["checkpoint.pt", "metrics.json"]
        shutil.copytree(mount, tmp_path / "moved")
    finally:  # lazily if a file there is still open (a failing run's traceback can hold one)
        if subprocess.run(["umount", str(mount)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)
    resumed = train(None, resume=tmp_path / "moved", progress=False, log=quiet)
    assert without_timing(resumed["history"]) == without_timing(finished[1]["history"])


# 14. An empty path is not the current folder (case 14).
def test_empty_paths_are_refused(finished, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    common = ["--train-subset", "256", "--epochs", "1", "--device", "cpu", "--no-progress"]
    one_error_line(capsys, train_main, [*common, "--data-root", "", "--out", str(tmp_path / "r")], "--data-root")
    one_error_line(capsys, train_main, [*common, "--out", ""], "--out ''")
    one_error_line(capsys, train_main, ["--resume", ""], "no such run folder")
    one_error_line(capsys, predict.main, [str(finished[0]), "--data-root", ""], "empty MNIST folder")
    with pytest.raises(data.MNISTDataError, match="empty"):
        data.load_mnist("")
    assert list(tmp_path.iterdir()) == [], "nothing written in the working folder"


def test_an_empty_mnist_root_is_refused(tmp_path):
    import subprocess
    import sys

    from helpers import ROOT, cli_env

    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env = {**cli_env(), "MNIST_ROOT": "", "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-m", "utils.train", "--train-subset", "256", "--epochs", "1", "--device",
                        "cpu", "--no-progress", "--out", str(tmp_path / "run")], cwd=cwd, env=env,
                       capture_output=True, text=True, timeout=300)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and len(lines) == 1 and "$MNIST_ROOT" in lines[0], r.stderr
    assert list(cwd.iterdir()) == [] and not (tmp_path / "run").exists()


# 15. What a repair of MNIST cut short by a kill leaves is tidied by the next repair or load (case 15).
def test_mnist_temporaries_left_by_a_kill_are_removed(tmp_path):
    from utils import fsutil

    raw = copy_of_mnist(tmp_path / "d")
    (raw / "train-images-idx3-ubyte").unlink()
    stale = raw / ".train-images-idx3-ubyte.k1ll3d.tmp"
    stale.write_bytes(bytes(1000))
    (raw / "notes.tmp").write_text("the user's own file")
    data.load_mnist(tmp_path / "d")
    assert sorted(p.name for p in raw.iterdir()) == sorted([*data.FILES, "notes.tmp"])

    stale.write_bytes(bytes(1000))  # every file valid now: a load tidies, unless a repair is under way
    with fsutil.exclusive_lock(raw / data.DATA_LOCK):  # another process repairing: its file is not stale
        data.load_mnist(tmp_path / "d")
        assert stale.exists()
    data.load_mnist(tmp_path / "d")
    assert not stale.exists()


# 16. The notebook helpers on damaged results: one line naming the file and how to write it again (case 11).
@pytest.mark.parametrize("text", ['{"config": {"epochs": 15, "lr', "[]", '{"steps": [{}]}', '{"steps": 3}'])
def test_seed_tables_name_a_damaged_steps_json(tmp_path, capsys, text):
    from utils import course

    path = tmp_path / "steps.json"
    path.write_text(text)
    course.seed_table("02_batchnorm", path)
    course.show_steps(path)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2, lines  # one from each helper
    for line in lines:
        assert f"{path} is not a summary written by `python -m tools.steps`" in line and "`make steps`" in line


@pytest.mark.parametrize("text", ['{"model": "baseline", "params": 11', "[1, 2]", '{"params": 3}', "{}"])
def test_the_comparison_names_a_damaged_earlier_run(tmp_path, capsys, text):
    from utils import course

    (tmp_path / "01_baseline").mkdir()
    (tmp_path / "01_baseline" / "metrics.json").write_text(text)
    assert course.earlier_metrics(tmp_path / "02_batchnorm", "01_baseline") is None
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1 and "01_baseline/metrics.json is not a run's metrics" in lines[0], lines
    assert "execute 01_baseline.ipynb again" in lines[0]


@pytest.mark.parametrize("out_dir", [5, "", "  "])
def test_setup_refuses_an_out_dir_that_is_no_path(monkeypatch, out_dir):
    from utils import course

    monkeypatch.delenv(course.QUICK_ENV, raising=False)
    with pytest.raises(runs.RunError, match="out_dir must be a folder path") as refused:
        course.setup("01_baseline", out_dir=out_dir)
    assert len(refused.value._render_traceback_()) == 1, "a notebook shows the one line, not a traceback"


# 17. MNIST_COURSE_QUICK: the usual spellings of on and off, anything else refused (case 13).
@pytest.mark.parametrize("value, quick", [("1", True), ("yes", True), ("true", True), ("True", True), (" 1", True),
                                          ("on", True), ("0", False), ("false", False), ("no", False), ("", False)])
def test_quick_mode_takes_the_usual_spellings(monkeypatch, value, quick):
    from utils import course

    monkeypatch.setenv(course.QUICK_ENV, value)
    assert course.setup("01_baseline").quick is quick


@pytest.mark.parametrize("value", ["garbage", "2", "yes please"])
def test_quick_mode_refuses_anything_else(monkeypatch, value):
    from utils import course

    monkeypatch.setenv(course.QUICK_ENV, value)
    with pytest.raises(runs.RunError, match=f"MNIST_COURSE_QUICK={value!r} is neither on"):
        course.setup("01_baseline")
